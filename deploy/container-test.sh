#!/usr/bin/env bash
# Real container test of deploy/Dockerfile, without any registry: builds a static release
# binary on the host, builds the image's `prebuilt` stage FROM scratch around it, runs it with
# --network host, read-only, no capabilities, as 65532, against a fake upstream on 127.0.0.1,
# and checks /healthz, /readyz, one proxied request (token added, name resolved inside the
# image), that the image has no shell, and a clean SIGTERM exit.
#
#   sudo deploy/container-test.sh        # root: it starts its own dockerd when none answers
#
# Needs docker.io (installed with apt-get when missing). Not part of .ci/run: the static
# release build alone takes minutes on a 2-core machine (README, "Deploying").
# A private dockerd (own socket, data root and exec root under a temporary directory,
# --storage-driver=vfs --iptables=false --bridge=none) is started when DOCKER_HOST is unset
# and stopped again at the end; set DOCKER_HOST to use a daemon you run yourself.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=x86_64-unknown-linux-gnu
IMAGE=ims-proxy:container-test
work=$(mktemp -d /tmp/ims-proxy-container-test.XXXXXX)
dockerd_pid= upstream_pid= container=
log() { printf 'container-test: %s\n' "$*" >&2; }

cleanup() {
    set +e
    [ -n "$container" ] && docker rm -f "$container" >/dev/null 2>&1
    [ -n "$upstream_pid" ] && kill "$upstream_pid" 2>/dev/null
    if [ -n "$dockerd_pid" ]; then
        docker rmi -f "$IMAGE" >/dev/null 2>&1
        kill "$dockerd_pid" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.2; done
        # vfs layers and the exec root may hold mounts; unmount before removing.
        grep -o " $work/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# --- docker ----------------------------------------------------------------------------------
if ! command -v dockerd >/dev/null && [ -z "${DOCKER_HOST:-}" ]; then
    log "installing docker.io"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi
if [ -z "${DOCKER_HOST:-}" ]; then
    export DOCKER_HOST="unix://$work/docker.sock"
    mkdir -p "$work/data" "$work/exec"
    dockerd --host "$DOCKER_HOST" --data-root "$work/data" --exec-root "$work/exec" \
        --pidfile "$work/docker.pid" --storage-driver=vfs --iptables=false --bridge=none \
        >"$work/dockerd.log" 2>&1 &
    dockerd_pid=$!
    for _ in $(seq 100); do docker info >/dev/null 2>&1 && break; sleep 0.3; done
    docker info >/dev/null 2>&1 || { cat "$work/dockerd.log" >&2; log "dockerd did not start"; exit 1; }
fi

# --- static binary ---------------------------------------------------------------------------
# --target keeps crt-static off build scripts and proc macros.
log "building the static release binary"
t0=$(date +%s)
RUSTFLAGS='-C target-feature=+crt-static' cargo build --quiet --release --locked \
    --target "$TARGET" --bin ims-proxy
bin="target/$TARGET/release/ims-proxy"
if readelf -l "$bin" | grep -q 'program interpreter'; then log "$bin is dynamically linked"; exit 1; fi
install -D -m 0555 "$bin" deploy/dist/ims-proxy
log "binary ready in $(( $(date +%s) - t0 ))s ($(du -h deploy/dist/ims-proxy | cut -f1))"

# --- image -----------------------------------------------------------------------------------
# The legacy builder (DOCKER_BUILDKIT=0) needs no buildx plugin and, with --target prebuilt,
# never touches the stages that need the builder image.
t0=$(date +%s)
DOCKER_BUILDKIT=0 docker build --quiet -f deploy/Dockerfile --target prebuilt \
    --build-arg RUNTIME_IMAGE=scratch -t "$IMAGE" . >"$work/build.log" 2>&1 \
    || { cat "$work/build.log" >&2; log "docker build failed"; exit 1; }
log "image built in $(( $(date +%s) - t0 ))s"
user=$(docker image inspect -f '{{.Config.User}}' "$IMAGE")
[ "$user" = "65532:65532" ] || { log "image user is '$user', want 65532:65532"; exit 1; }
if docker run --rm --network none --entrypoint /bin/sh "$IMAGE" -c true >/dev/null 2>&1; then
    log "the image has a shell"; exit 1
fi

# --- fake upstream ---------------------------------------------------------------------------
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
up_port=$(free_port) proxy_port=$(free_port) admin_port=$(free_port)
cat >"$work/upstream.py" <<'EOF'
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"path": self.path, "headers": dict(self.headers.items())}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF
python3 "$work/upstream.py" "$up_port" &
upstream_pid=$!

# --- run -------------------------------------------------------------------------------------
mkdir -p "$work/etc" "$work/secrets"
printf 'container-test-token\n' >"$work/secrets/access-token"
# "localhost", not 127.0.0.1: the name is resolved inside the image (static glibc, /etc/hosts).
cat >"$work/etc/proxy.toml" <<EOF
[server]
listen = "127.0.0.1:$proxy_port"
shutdown_grace = "5s"
[admin]
listen = "127.0.0.1:$admin_port"
[credentials.fake]
type = "static"
access_token_file = "/run/secrets/ims-proxy/access-token"
client_id = "container-test-client"
[[routes]]
prefix = "/up"
upstream = "http://localhost:$up_port/base"
credential = "fake"
EOF
chmod 0755 "$work/etc" "$work/secrets"
chmod 0644 "$work/etc/proxy.toml" "$work/secrets/access-token"

container=$(docker run -d --network host --read-only --cap-drop ALL \
    --security-opt no-new-privileges \
    -v "$work/etc:/etc/ims-proxy:ro" -v "$work/secrets:/run/secrets/ims-proxy:ro" "$IMAGE")

get() { python3 - "$@" <<'EOF'
import sys, urllib.request, urllib.error
try:
    r = urllib.request.urlopen(sys.argv[1], timeout=5)
    print(r.status); print(r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code); print(e.read().decode())
except Exception as e:
    print(0); print(e)
EOF
}
status=0
for _ in $(seq 50); do
    status=$(get "http://127.0.0.1:$admin_port/healthz" | sed -n 1p)
    [ "$status" = 200 ] && break
    sleep 0.2
done
if [ "$status" != 200 ]; then docker logs "$container" >&2; log "/healthz: $status"; exit 1; fi
ready=$(get "http://127.0.0.1:$admin_port/readyz" | sed -n 1p)
[ "$ready" = 200 ] || { docker logs "$container" >&2; log "/readyz: $ready"; exit 1; }
# The image's HEALTHCHECK command, run inside the container as Docker would.
docker exec "$container" /usr/local/bin/ims-proxy health --config /etc/ims-proxy/proxy.toml >/dev/null \
    || { docker logs "$container" >&2; log "the HEALTHCHECK command failed"; exit 1; }

out=$(get "http://127.0.0.1:$proxy_port/up/echo?x=1")
python3 - "$out" <<'EOF' || { docker logs "$container" >&2; exit 1; }
import json, sys
status, _, body = sys.argv[1].partition("\n")
assert status == "200", f"proxied request: {status} {body}"
seen = json.loads(body)
h = {k.lower(): v for k, v in seen["headers"].items()}
assert seen["path"] == "/base/echo?x=1", seen["path"]
assert h.get("authorization") == "Bearer container-test-token", h
assert h.get("x-api-key") == "container-test-client", h
EOF

pid=$(docker inspect -f '{{.State.Pid}}' "$container")
uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")
[ "$uid" = 65532 ] || { log "process runs as uid '$uid'"; exit 1; }

docker stop -t 20 "$container" >/dev/null
code=$(docker inspect -f '{{.State.ExitCode}}' "$container")
[ "$code" = 0 ] || { docker logs "$container" >&2; log "exit status after SIGTERM: $code"; exit 1; }

log "ok: FROM scratch image ($(docker image inspect -f '{{.Size}}' "$IMAGE") bytes), uid 65532," \
    "read-only, no capabilities, no shell; /healthz and /readyz 200, HEALTHCHECK command ok; proxied GET via" \
    "localhost got the bearer token; SIGTERM exit 0"
