#!/usr/bin/env bash
# ims-proxy benchmark: the upstream directly, through nginx, through HAProxy and through
# ims-proxy, in one run on one machine, with the same load generator; to a plain-HTTP upstream,
# to an HTTPS one that speaks HTTP/1.1 only, and to an HTTPS one that offers h2 by ALPN (Adobe's
# case: ims-proxy and HAProxy speak h2 to it, nginx cannot and speaks HTTP/1.1), with HTTP/1.1
# clients (wrk) and HTTP/2 clients (h2load). Each point also records the CPU time the proxy
# process(es) spent, so CPU per request is compared, not only throughput; streaming (upload and
# download) through every proxy; RSS idle and with 1,000 connections served.
# A full run replaces its layout's section ("## Layout pinned" / "## Layout shared") of
# bench/RESULTS.md and leaves the rest of that file alone.
#
# usage: bench/run.sh            full run (about 30 minutes per layout with the defaults)
#        QUICK=1 bench/run.sh    one short run per point, to check the harness (report written
#                                to bench/target/quick-$LAYOUT.md, RESULTS.md left alone)
#        SOAK=1 bench/run.sh     soak only: SOAK_SECONDS (default 600) of steady load through an
#                                oauth credential with 30 s tokens while IMS fails every other
#                                SOAK_FAIL_EVERY (default 60s); SOAK_REFRESH_AT (default 0.8) sets
#                                the credential's refresh_at. Counts non-2xx, compares RSS at start
#                                and end, appends to bench/SOAK.md
# knobs: DURATION (s per point, default 10), RUNS (default 3, median reported), CONNS
#        ("16 256"), STREAM_BYTES (default 2 GiB), OUT (write the report there instead).
#        LAYOUT=pinned (default): each proxy one worker on core 0, wrk and the upstream on core 1;
#        LAYOUT=shared: nothing pinned, WORKERS (default: the core count) workers for each proxy
#        (nginx worker_processes, ims-proxy TOKIO_WORKER_THREADS). LAYOUT=both: pinned, then shared.
#        HTTP1=both (default) | hyper | lean: which of ims-proxy's HTTP/1.1 server paths
#        (`[server] http1`) get HTTP/1.1-client rows: "ims-proxy" is hyper's, "ims-proxy-lean"
#        the lean one's. A build that refuses `http1 = "lean"` has its lean rows skipped, with a
#        message (HTTP1=lean then stops). HTTP/2 callers are hyper's on both paths: one row.
#        BASELINE=/path/to/ims-proxy: also measure that build (say, main's) as "baseline", with
#        the same config, in the same runs: an A/B on a shared machine.
#        PROXY_BIN=/path/to/ims-proxy: measure that build as "ims-proxy" instead of this tree's.
#        H2=0: skip the HTTP/2 client (h2load) points; TLS=0: skip the HTTPS-upstream points.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
if [ "${LAYOUT:-}" = both ]; then
  LAYOUT=pinned "$0"
  exec env LAYOUT=shared "$0"
fi
DURATION=${DURATION:-10}
USER_RUNS=${RUNS:-}
RUNS=${RUNS:-3}
CONNS=${CONNS:-"16 256"}
HTTP1=${HTTP1:-both}
case $HTTP1 in both|hyper|lean) ;; *) echo "HTTP1=$HTTP1: expected both, hyper or lean" >&2; exit 2;; esac
STREAM_BYTES=${STREAM_BYTES:-2147483648}
if [ "${QUICK:-0}" = 1 ]; then DURATION=3; RUNS=${USER_RUNS:-1}; STREAM_BYTES=268435456; fi

need() { command -v "$1" >/dev/null 2>&1; }
if ! need wrk || ! need nginx || ! need haproxy || ! need h2load; then
  echo "installing wrk, nginx, haproxy and h2load from Debian's packages" >&2
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx haproxy nghttp2-client >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
H2=${H2:-1}; TLS=${TLS:-1}
CLK_TCK=$(getconf CLK_TCK)

# With PROXY_BIN the build under test is given: this tree is not built (a commit reruns build.rs).
if [ -z "${PROXY_BIN:-}" ]; then
  echo "building (release)" >&2
  cargo build --release --quiet
fi
(cd bench && cargo build --release --quiet)
PROXY=${PROXY_BIN:-"${CARGO_TARGET_DIR:-$ROOT/target}/release/ims-proxy"}
BIN="${CARGO_TARGET_DIR:-$ROOT/bench/target}/release"

WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# nginx's per-worker connections, callers and upstream ones together: enough for 256 HTTP/2
# callers with 8 streams each (nginx opens an upstream connection per stream beyond its
# keepalive cache), within the descriptors this shell has.
NOFILE=$(ulimit -n); [ "$NOFILE" = unlimited ] && NOFILE=65536
NGX_CONNECTIONS=$((NOFILE < 8192 ? NOFILE : 8192))

# Two cores: the proxy under test (nginx or ims-proxy, one worker each) gets core 0; the load
# generator and the upstream share core 1. On bigger machines the same split applies.
NCPU=$(nproc)
LAYOUT=${LAYOUT:-pinned}
if [ "$NCPU" -ge 2 ]; then PROXY_CPU=0; LOAD_CPU=1; else PROXY_CPU=0; LOAD_CPU=0; fi
if [ "$LAYOUT" = shared ]; then WORKERS=${WORKERS:-$NCPU}; else WORKERS=1; fi
# exec: every caller runs pin in a subshell (`&` or `$(...)`), and $! must be the program itself.
pin() { local cpu=$1; shift; if need taskset && [ "$LAYOUT" != shared ]; then exec taskset -c "$cpu" "$@"; else exec "$@"; fi; }

UP=127.0.0.1:19101; NGX=127.0.0.1:19102; IMSP=127.0.0.1:19103; OAUTHP=127.0.0.1:19105
SANDBOX=127.0.0.1:19106; UP_ANY=127.0.0.1:19107; BASEP=127.0.0.1:19108
HAP=127.0.0.1:19109; UP_TLS=127.0.0.1:19110; NGX_TLS=127.0.0.1:19111; HAP_TLS=127.0.0.1:19112
IMSP_TLS=127.0.0.1:19113; BASEP_TLS=127.0.0.1:19114; NGX_H2=127.0.0.1:19115; HAP_H2=127.0.0.1:19116
MEMP=127.0.0.1:19117; UP_ALPN=127.0.0.1:19118; NGX_ALPN=127.0.0.1:19119; NGX_ALPN_H2=127.0.0.1:19120
HAP_ALPN=127.0.0.1:19121; HAP_ALPN_H2=127.0.0.1:19122; IMSP_ALPN=127.0.0.1:19123
BASEP_ALPN=127.0.0.1:19124; LEANP=127.0.0.1:19125; LEANP_TLS=127.0.0.1:19126
LEANP_ALPN=127.0.0.1:19127; MEMP_LEAN=127.0.0.1:19128
TOKEN=bench-token-0123456789; KEY=bench-client-id

wait_port() { for _ in $(seq 1 500); do (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null && return 0; sleep 0.01; done; echo "nothing listens on $1" >&2; return 1; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
# CPU time (user + system, clock ticks) of the given processes and their children's threads:
# /proc/PID/stat fields 14 and 15 count every thread of the process.
cpu_ticks() { local t=0 p; for p in "$@"; do [ -r "/proc/$p/stat" ] && t=$((t + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}'))); done; echo "$t"; }

for port in $(seq 19101 19128); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "port $port is busy: stop what listens there first" >&2; exit 1; fi
done
pin "$LOAD_CPU" "$BIN/bench-upstream" "$UP" "$TOKEN" "$KEY" & PIDS+=($!)
wait_port "$UP"
CERT="$WORK/upstream.pem"
BENCH_TLS_CERT=$CERT pin "$LOAD_CPU" "$BIN/bench-upstream" "$UP_TLS" "$TOKEN" "$KEY" & PIDS+=($!)
wait_port "$UP_TLS"
# Adobe's case: an HTTPS upstream that offers h2 and HTTP/1.1 by ALPN (a certificate of its own).
CERT_ALPN="$WORK/upstream-alpn.pem"
BENCH_TLS_CERT=$CERT_ALPN BENCH_TLS_ALPN=h2 pin "$LOAD_CPU" "$BIN/bench-upstream" "$UP_ALPN" "$TOKEN" "$KEY" & PIDS+=($!)
wait_port "$UP_ALPN"

mkdir -p "$WORK/nginx"
cat > "$WORK/nginx/nginx.conf" <<NGX
worker_processes $WORKERS;
daemon off;
user root;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections $NGX_CONNECTIONS; }
http {
  # As many requests per connection as the other proxies (nginx's default closes at 1,000).
  keepalive_requests 1000000;
  access_log $WORK/nginx/access.log;
  # Idle upstream connections each worker keeps: enough for 256 HTTP/2 callers with 8 streams
  # each (2,048 requests in flight). With 256, nginx closed the rest after each request and
  # opened (and for HTTPS, handshook) a new one for the next: 147-186 µs/request at 256 HTTP/2
  # callers to the h2-offering upstream, its configuration measured rather than nginx.
  upstream adobe { server $UP; keepalive 2048; }
  upstream adobe_tls { server $UP_TLS; keepalive 2048; }
  upstream adobe_alpn { server $UP_ALPN; keepalive 2048; }
  server {
    listen $NGX;
    listen $NGX_H2 http2;
    location /campaign/ {
      proxy_pass http://adobe;
      include $WORK/nginx/common.conf;
    }
  }
  server {
    listen $NGX_TLS;
    location /campaign/ {
      proxy_pass https://adobe_tls;
      proxy_ssl_session_reuse on;
      proxy_ssl_verify on;
      proxy_ssl_trusted_certificate $CERT;
      proxy_ssl_name localhost;
      proxy_ssl_server_name on;
      include $WORK/nginx/common.conf;
    }
  }
  # The upstream that offers h2: nginx's proxy module speaks HTTP/1.1 to it (it has no h2 to
  # upstreams), as it would to Adobe.
  server {
    listen $NGX_ALPN;
    listen $NGX_ALPN_H2 http2;
    location /campaign/ {
      proxy_pass https://adobe_alpn;
      proxy_ssl_session_reuse on;
      proxy_ssl_verify on;
      proxy_ssl_trusted_certificate $CERT_ALPN;
      proxy_ssl_name localhost;
      proxy_ssl_server_name on;
      include $WORK/nginx/common.conf;
    }
  }
}
NGX
cat > "$WORK/nginx/common.conf" <<NGX
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "Bearer $TOKEN";
      proxy_set_header x-api-key "$KEY";
      proxy_request_buffering off;
      proxy_buffering off;
      client_max_body_size 0;
NGX
pin "$PROXY_CPU" "$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" & NGX_PID=$!; PIDS+=($NGX_PID)
wait_port "$NGX"

# HAProxy: connection reuse to the upstream (http-reuse always), TLS sessions reused (its
# default), an access log line per request (option httplog, to a file through stdout).
cat > "$WORK/haproxy.cfg" <<HAP
global
  nbthread $WORKERS
  maxconn 2000
  log stdout format raw local0
defaults
  mode http
  log global
  option httplog
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
frontend plain
  bind $HAP
  bind $HAP_H2 proto h2
  default_backend up
frontend tls
  bind $HAP_TLS
  default_backend up_tls
frontend alpn
  bind $HAP_ALPN
  bind $HAP_ALPN_H2 proto h2
  default_backend up_alpn
backend up
  http-request set-header Authorization "Bearer $TOKEN"
  http-request set-header x-api-key "$KEY"
  server s1 $UP
backend up_tls
  http-request set-header Authorization "Bearer $TOKEN"
  http-request set-header x-api-key "$KEY"
  server s1 $UP_TLS ssl verify required ca-file $CERT sni str(localhost) alpn http/1.1
# The upstream that offers h2: HAProxy speaks h2 to it, many streams on its connections.
backend up_alpn
  http-request set-header Authorization "Bearer $TOKEN"
  http-request set-header x-api-key "$KEY"
  server s1 $UP_ALPN ssl verify required ca-file $CERT_ALPN sni str(localhost) alpn h2 proto h2
HAP
pin "$PROXY_CPU" "$HAPROXY" -f "$WORK/haproxy.cfg" > "$WORK/haproxy.log" 2>&1 & HAP_PID=$!; PIDS+=($HAP_PID)
wait_port "$HAP"

# ims-proxy's configuration for one upstream; FILE LISTEN UPSTREAM [hyper|lean]. Its outbound
# client offers h2 and HTTP/1.1 by ALPN to every HTTPS upstream (no key for it): the upstream
# that offers h2 gets h2, as Adobe's do.
ims_toml() {
  {
    printf '[server]\nlisten = "%s"\n' "$2"
    # Named whenever the build knows the key, so that the rows say which server whatever
    # the build's default is.
    if [ "${HTTP1_KEY:-1}" = 1 ]; then printf 'http1 = "%s"\n' "${4:-hyper}"; fi
    case $3 in
      https://*:${UP_TLS#*:}/*) printf '[client]\nca_file = "%s"\n' "$CERT";;
      https://*:${UP_ALPN#*:}/*) printf '[client]\nca_file = "%s"\n' "$CERT_ALPN";;
    esac
    printf '[credentials.bench]\ntype = "static"\naccess_token = "%s"\nclient_id = "%s"\n' "$TOKEN" "$KEY"
    printf '[[routes]]\nprefix = "/campaign"\nupstream = "%s"\ncredential = "bench"\n' "$3"
  } > "$1"
}
U_PLAIN="http://$UP/campaign"; U_TLS="https://localhost:${UP_TLS#*:}/campaign"
U_ALPN="https://localhost:${UP_ALPN#*:}/campaign"
# start_ims NAME LISTEN UPSTREAM [hyper|lean] [BINARY]: starts it, waits for its port; its pid
# is in PID_<NAME> (NAME: letters and underscores).
start_ims() {
  ims_toml "$WORK/$1.toml" "$2" "$3" "${4:-hyper}"
  TOKIO_WORKER_THREADS=$WORKERS pin "$PROXY_CPU" "${5:-$PROXY}" --log-format json --config "$WORK/$1.toml" 2>"$WORK/$1.log" &
  PIDS+=($!); printf -v "PID_$1" %s "$!"
  wait_port "$2"
}
# Whether this build knows `server.http1` (builds before the lean server refuse it).
ims_toml "$WORK/key-check.toml" "$IMSP" "$U_PLAIN" hyper
if "$PROXY" check --config "$WORK/key-check.toml" >/dev/null 2>&1; then HTTP1_KEY=1; else HTTP1_KEY=0; fi
start_ims ims "$IMSP" "$U_PLAIN"; IMS_PID=$PID_ims
start_ims ims_tls "$IMSP_TLS" "$U_TLS"; IMS_TLS_PID=$PID_ims_tls
[ "$TLS" = 1 ] && { start_ims ims_alpn "$IMSP_ALPN" "$U_ALPN"; IMS_ALPN_PID=$PID_ims_alpn; }

# The lean HTTP/1.1 server path, if this build has it: `check` says whether the key is known.
LEAN=0
if [ "$HTTP1" != hyper ]; then
  ims_toml "$WORK/lean-check.toml" "$LEANP" "$U_PLAIN" lean
  if why=$("$PROXY" check --config "$WORK/lean-check.toml" 2>&1); then
    LEAN=1
    start_ims lean "$LEANP" "$U_PLAIN" lean; LEAN_PID=$PID_lean
    start_ims lean_tls "$LEANP_TLS" "$U_TLS" lean; LEAN_TLS_PID=$PID_lean_tls
    [ "$TLS" = 1 ] && { start_ims lean_alpn "$LEANP_ALPN" "$U_ALPN" lean; LEAN_ALPN_PID=$PID_lean_alpn; }
  else
    echo "ims-proxy lean: SKIPPED: $PROXY refuses [server] http1 = \"lean\":" >&2
    echo "$why" | head -n 3 | sed 's/^/  /' >&2
    if [ "$HTTP1" = lean ]; then echo "HTTP1=lean: nothing to measure" >&2; exit 1; fi
  fi
fi
IMS_H1=""
[ "$HTTP1" != lean ] && IMS_H1="ims-proxy"
[ "$LEAN" = 1 ] && IMS_H1="$IMS_H1 ims-proxy-lean"
PROXIES="nginx haproxy"
if [ -n "${BASELINE:-}" ]; then
  # The baseline as configured by default (it may predate `server.http1`).
  HTTP1_KEY=0 start_ims base "$BASEP" "$U_PLAIN" hyper "$BASELINE"; BASE_PID=$PID_base
  HTTP1_KEY=0 start_ims base_tls "$BASEP_TLS" "$U_TLS" hyper "$BASELINE"; BASE_TLS_PID=$PID_base_tls
  [ "$TLS" = 1 ] && { HTTP1_KEY=0 start_ims base_alpn "$BASEP_ALPN" "$U_ALPN" hyper "$BASELINE"; BASE_ALPN_PID=$PID_base_alpn; }
  PROXIES="$PROXIES baseline"
fi
# suffixed SUFFIX NAME...: each name with the suffix.
suffixed() { local s=$1 t; shift; for t in "$@"; do printf '%s%s ' "$t" "$s"; done; }
TARGETS="direct $PROXIES $IMS_H1 ims-proxy-oauth"
TLS_TARGETS="$(suffixed -tls direct $PROXIES $IMS_H1) $(suffixed -alpn direct $PROXIES $IMS_H1)"
H2_TARGETS="$(suffixed -h2 direct $PROXIES ims-proxy)"
[ "$TLS" = 1 ] && H2_TARGETS="$H2_TARGETS $(suffixed -alpn-h2 direct $PROXIES ims-proxy)"
[ "$TLS" = 1 ] && TARGETS="$TARGETS $TLS_TARGETS"
[ "$H2" = 1 ] && TARGETS="$TARGETS $H2_TARGETS"
sleep 1

PATH_Q="/campaign/profileAndServices/profile?_lineCount=1"

# The oauth target: tokens from the sandbox's IMS, short-lived so refreshes happen during
# every run (SOAK: 30 s tokens and an IMS that fails every other minute).
if [ "${SOAK:-0}" = 1 ]; then
  LIFETIME=30s; FAIL=(--fail 500 --fail-every "${SOAK_FAIL_EVERY:-60s}"); REFRESH_AT=${SOAK_REFRESH_AT:-0.8}
  # Millions of access-log lines would only fill the disk; token events stay on.
  PROXY_LOG="warn,ims_proxy::token=info"
else
  LIFETIME=4s; FAIL=(); REFRESH_AT=0.8; PROXY_LOG=info
fi
pin "$LOAD_CPU" "$PROXY" sandbox --listen "$SANDBOX" --credentials-dir "$WORK/sandbox" \
  --token-lifetime "$LIFETIME" "${FAIL[@]}" > "$WORK/sandbox.out" 2>"$WORK/sandbox.log" & PIDS+=($!)
wait_port "$SANDBOX"
field() { awk -v k="$1:" '$1 == k {print $2}' "$WORK/sandbox.out"; }
SB_ID=$(field client_id); SB_SECRET=$(field client_secret); SB_ORG=$(field org_id); SB_SCOPES=$(field scopes)
pin "$LOAD_CPU" "$BIN/bench-upstream" "$UP_ANY" - "$SB_ID" & PIDS+=($!)
wait_port "$UP_ANY"
SCOPES_TOML=$(echo "$SB_SCOPES" | awk -F, '{for(i=1;i<=NF;i++) printf "%s\"%s\"", (i>1?", ":""), $i}')
cat > "$WORK/oauth.toml" <<TOML
[server]
listen = "$OAUTHP"
[credentials.bench]
type = "oauth"
client_id = "$SB_ID"
client_secret = "$SB_SECRET"
org_id = "$SB_ORG"
scopes = [$SCOPES_TOML]
ims_url = "http://$SANDBOX"
refresh_at = $REFRESH_AT
[[routes]]
prefix = "/campaign"
upstream = "http://$UP_ANY/campaign"
credential = "bench"
TOML
RUST_LOG=$PROXY_LOG TOKIO_WORKER_THREADS=$WORKERS pin "$PROXY_CPU" "$PROXY" --log-format json --config "$WORK/oauth.toml" 2>"$WORK/oauth.log" & OAUTH_PID=$!; PIDS+=($OAUTH_PID)
wait_port "$OAUTHP"
for _ in $(seq 1 200); do curl -fsS -o /dev/null "http://$OAUTHP/campaign/x" 2>/dev/null && break; sleep 0.05; done

if [ "${SOAK:-0}" = 1 ]; then
  SOAK_SECONDS=${SOAK_SECONDS:-600}
  RSS0=$(rss_kib "$OAUTH_PID")
  line=$(pin "$LOAD_CPU" wrk -t1 -c16 -d"${SOAK_SECONDS}s" --latency -s bench/report.lua "http://$OAUTHP$PATH_Q" | tail -n 1)
  RSS1=$(rss_kib "$OAUTH_PID")
  REFRESH_OK=$(grep -c 'obtained an access token' "$WORK/oauth.log" || true)
  REFRESH_ERR=$(grep -c 'could not obtain an access token' "$WORK/oauth.log" || true)
  [ -f bench/SOAK.md ] || printf '# ims-proxy soak results\n' > bench/SOAK.md
  {
    echo
    echo "## $(date -u '+%Y-%m-%d %H:%M') UTC: IMS fails every other ${SOAK_FAIL_EVERY:-60s}, refresh_at $REFRESH_AT"
    echo
    echo "- $(nproc) cores; $("$PROXY" --version); $SOAK_SECONDS s of wrk -t1 -c16 through an oauth credential with 30 s tokens from the sandbox's IMS, which answers 500 during every other ${SOAK_FAIL_EVERY:-60s}"
    echo
    echo "| measure | value |"
    echo "|---|---:|"
    echo "| wrk summary | \`$line\` |"
    echo "| token fetches ok / failed | $REFRESH_OK / $REFRESH_ERR |"
    echo "| RSS start / end | $((RSS0/1024)) MiB / $((RSS1/1024)) MiB |"
  } | tee -a bench/SOAK.md
  exit 0
fi

# Where each target listens, and which processes to charge its CPU time to (the upstream and
# the load generator are not charged: they are the same for every target).
url_of() {
  case $1 in
    direct|direct-h2) echo "http://$UP";; direct-tls) echo "https://localhost:${UP_TLS#*:}";;
    direct-alpn|direct-alpn-h2) echo "https://localhost:${UP_ALPN#*:}";;
    nginx) echo "http://$NGX";; nginx-tls) echo "http://$NGX_TLS";; nginx-h2) echo "http://$NGX_H2";;
    nginx-alpn) echo "http://$NGX_ALPN";; nginx-alpn-h2) echo "http://$NGX_ALPN_H2";;
    haproxy) echo "http://$HAP";; haproxy-tls) echo "http://$HAP_TLS";; haproxy-h2) echo "http://$HAP_H2";;
    haproxy-alpn) echo "http://$HAP_ALPN";; haproxy-alpn-h2) echo "http://$HAP_ALPN_H2";;
    baseline|baseline-h2) echo "http://$BASEP";; baseline-tls) echo "http://$BASEP_TLS";;
    baseline-alpn|baseline-alpn-h2) echo "http://$BASEP_ALPN";;
    ims-proxy|ims-proxy-h2) echo "http://$IMSP";; ims-proxy-tls) echo "http://$IMSP_TLS";;
    ims-proxy-alpn|ims-proxy-alpn-h2) echo "http://$IMSP_ALPN";;
    ims-proxy-lean) echo "http://$LEANP";; ims-proxy-lean-tls) echo "http://$LEANP_TLS";;
    ims-proxy-lean-alpn) echo "http://$LEANP_ALPN";;
    ims-proxy-oauth) echo "http://$OAUTHP";;
    *) echo "url_of: no target $1" >&2; return 1;;
  esac
}
pids_of() {
  case $1 in
    direct*) ;;
    nginx*) echo "$NGX_PID $(pgrep -P "$NGX_PID" | tr '\n' ' ')";;
    haproxy*) echo "$HAP_PID";;
    baseline-tls) echo "$BASE_TLS_PID";; baseline-alpn*) echo "$BASE_ALPN_PID";; baseline*) echo "$BASE_PID";;
    ims-proxy-lean-tls) echo "$LEAN_TLS_PID";; ims-proxy-lean-alpn) echo "$LEAN_ALPN_PID";;
    ims-proxy-lean) echo "$LEAN_PID";;
    ims-proxy-tls) echo "$IMS_TLS_PID";; ims-proxy-alpn*) echo "$IMS_ALPN_PID";;
    ims-proxy-oauth) echo "$OAUTH_PID";; ims-proxy*) echo "$IMS_PID";;
  esac
}
rss_of() { local t=0 p; for p in "$@"; do [ -r "/proc/$p/status" ] && t=$((t + $(rss_kib "$p"))); done; echo "$t"; }

# Which protocol each proxy speaks to the upstream that offers h2 (its /version answers the
# version a request arrived in): said in the report, and a proxy that should speak h2 and does
# not is named here, before any point is measured.
declare -A UPSTREAM_PROTO
if [ "$TLS" = 1 ]; then
  for t in $(suffixed -alpn $PROXIES $IMS_H1); do
    UPSTREAM_PROTO[$t]=$(curl -sS --max-time 5 "$(url_of "$t")/campaign/version" 2>&1 || true)
    echo "$t speaks ${UPSTREAM_PROTO[$t]} to the upstream that offers h2" >&2
    case $t in nginx*) ;; *) [ "${UPSTREAM_PROTO[$t]}" = HTTP/2.0 ] || echo "WARNING: $t does not speak h2 to it" >&2;; esac
  done
fi

# One point: prints wrk's JSON line (h2load's numbers in the same shape for the -h2 targets).
load() { # target conns
  local url; url="$(url_of "$1")$PATH_Q"
  case $1 in
    *-h2)
      # h2load: h2c with prior knowledge (h2 by ALPN for direct-alpn-h2), -m 8 streams per
      # connection; percentiles from its per-request log (microseconds to the response's end).
      rm -f "$WORK/h2load.log"
      pin "$LOAD_CPU" h2load -t1 -c"$2" -m8 -D"$DURATION" --warm-up-time=1 --log-file="$WORK/h2load.log" \
        -H "Authorization: Bearer $TOKEN" -H "x-api-key: $KEY" "$url" 2>&1 | python3 -c '
import json, re, sys
out = sys.stdin.read()
rps = float(re.search(r"finished in [\d.]+\w*, ([\d.]+) req/s", out).group(1))
m = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
mean = re.search(r"time for request:\s+\S+\s+\S+\s+(\S+)", out).group(1)
us = float(re.sub(r"[a-z]+$", "", mean)) * {"us": 1, "ms": 1e3, "s": 1e6}[re.search(r"[a-z]+$", mean).group(0)]
done, ok = int(m.group(2)), int(m.group(3))
lat = []
for line in open(sys.argv[1]):
    f = line.split("\t")
    if len(f) >= 3:
        lat.append(float(f[2]))
lat.sort()
pct = lambda p: lat[min(len(lat) - 1, int(len(lat) * p / 100))] if lat else float("nan")
print(json.dumps({"requests": done, "rps": rps, "p50": pct(50), "p99": pct(99), "p999": pct(99.9), "max": lat[-1] if lat else float("nan"), "non2xx": done - ok, "socket_errors": int(m.group(4)) + int(m.group(5)), "mean": us}))
' "$WORK/h2load.log";;
    *)
      # Every target gets the same request, auth headers included (the proxies replace them).
      pin "$LOAD_CPU" wrk -t1 -c"$2" -d"${DURATION}s" --latency -s bench/report.lua \
        -H "Authorization: Bearer $TOKEN" -H "x-api-key: $KEY" "$url" | tail -n 1;;
  esac
}
# Requests the upstream offering h2 has had in each protocol: for the -alpn points, the share
# that arrived in h2 is recorded, so a proxy that fell back to HTTP/1.1 mid-run shows (the
# second count's own request, an HTTP/1.1 one, is taken off).
alpn_counts() {
  curl -sS --http1.1 --cacert "$CERT_ALPN" -H "Authorization: Bearer $TOKEN" -H "x-api-key: $KEY" \
    "https://localhost:${UP_ALPN#*:}/campaign/versions" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["http1"], d["h2"])'
}
RESULTS="$WORK/results.jsonl"
: > "$RESULTS"
for c in $CONNS; do
  for run in $(seq 1 "$RUNS"); do
    for target in $TARGETS; do
      read -ra pids <<< "$(pids_of "$target")"
      h2share=null
      case $target in *-alpn*) read -r a0 b0 <<< "$(alpn_counts)";; esac
      t0=$(cpu_ticks "${pids[@]}")
      line=$(load "$target" "$c")
      t1=$(cpu_ticks "${pids[@]}")
      case $target in *-alpn*) read -r a1 b1 <<< "$(alpn_counts)"; h2share=$(awk -v a=$((a1 - a0 - 1)) -v b=$((b1 - b0)) 'BEGIN {print (a + b) ? b / (a + b) : 0}');; esac
      echo "{\"target\":\"$target\",\"conns\":$c,\"run\":$run,\"cpu_s\":$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" 'BEGIN {print d / hz}'),\"upstream_h2\":$h2share,\"wrk\":$line}" >> "$RESULTS"
      echo "$target c=$c run=$run cpu_ticks=$((t1 - t0)) upstream_h2=$h2share $line" >&2
    done
  done
done

# RSS idle, and with 1,000 keep-alive connections each served a request and held open, in a
# proxy of its own (the ones measured above still hold the heap the load points left: freed,
# not yet trimmed back to the system). One client address opens them all, so the per-peer cap
# (server.limits.max_connections_per_peer, 256 by default) is off and max_connections above
# 1,000 here: otherwise the proxy refuses all but 256 and the point measures 256.
MEMORY="$WORK/memory.jsonl"
: > "$MEMORY"
MEM_TARGETS=""
declare -A MEM_PID
for t in $IMS_H1; do
  case $t in ims-proxy) addr=$MEMP name=mem mode=hyper;; ims-proxy-lean) addr=$MEMP_LEAN name=mem_lean mode=lean;; esac
  ims_toml "$WORK/$name.toml" "$addr" "$U_PLAIN" "$mode"
  printf '[server.limits]\nmax_connections = 2048\nmax_connections_per_peer = 0\n' >> "$WORK/$name.toml"
  TOKIO_WORKER_THREADS=$WORKERS pin "$PROXY_CPU" "$PROXY" --log-format json --config "$WORK/$name.toml" 2>"$WORK/$name.log" &
  MEM_PID[$t]=$!; PIDS+=($!)
  wait_port "$addr"
  MEM_TARGETS="$MEM_TARGETS $t:$addr"
done
sleep 1
for ta in $MEM_TARGETS; do
  t=${ta%%:*}; addr=${ta#*:}; pid=${MEM_PID[$t]}
  idle=$(rss_kib "$pid")
  pin "$LOAD_CPU" "$BIN/bench-conns" "$addr" "$PATH_Q" 1000 4 > "$WORK/conns.out" & CPID=$!
  peak=0
  while kill -0 "$CPID" 2>/dev/null; do r=$(rss_kib "$pid"); [ "$r" -gt "$peak" ] && peak=$r; sleep 0.1; done
  echo "{\"target\":\"$t\",\"idle\":$idle,\"peak\":$peak,\"conns\":\"$(cat "$WORK/conns.out")\"}" >> "$MEMORY"
  echo "$t memory: idle ${idle} KiB, peak ${peak} KiB, $(cat "$WORK/conns.out")" >&2
done
# What a burst leaves behind: RSS once those connections are gone and the heap trimmer (every
# 10 s) has run; the upstream pool keeps its idle connections for client.pool_idle_timeout.
sleep 12
declare -A SETTLED
for t in $IMS_H1; do SETTLED[$t]=$(rss_kib "${MEM_PID[$t]}"); done

# Streamed upload and download through every proxy (plain-HTTP upstream), RSS and CPU time of
# the proxy's process(es) sampled throughout.
stream() { # direction addr -> seconds
  if [ "$1" = up ]; then
    head -c "$STREAM_BYTES" /dev/zero | curl -sS -o /dev/null -w '%{time_total}' -T - \
      -H "Authorization: Bearer $TOKEN" -H "x-api-key: $KEY" "http://$2/campaign/sink"
  else
    curl -sS -o /dev/null -w '%{time_total}' \
      -H "Authorization: Bearer $TOKEN" -H "x-api-key: $KEY" "http://$2/campaign/source?bytes=$STREAM_BYTES"
  fi
}
STREAMS="$WORK/stream.jsonl"
: > "$STREAMS"
STREAM_TARGETS="direct $PROXIES $IMS_H1"
for dir in up down; do
  for t in $STREAM_TARGETS; do
    read -ra pids <<< "$(pids_of "$t")"
    before=$(rss_of "${pids[@]}"); peak=$before
    t0=$(cpu_ticks "${pids[@]}")
    ( pin "$LOAD_CPU" bash -c "$(declare -f stream); TOKEN=$TOKEN KEY=$KEY STREAM_BYTES=$STREAM_BYTES stream $dir $(url_of "$t" | sed 's|^http://||')" > "$WORK/stream.out" ) & SPID=$!
    while kill -0 "$SPID" 2>/dev/null; do r=$(rss_of "${pids[@]}"); [ "$r" -gt "$peak" ] && peak=$r; sleep 0.05; done
    wait "$SPID" || echo "$t: streaming $dir failed" >&2
    t1=$(cpu_ticks "${pids[@]}")
    secs=$(cat "$WORK/stream.out"); secs=${secs:-nan}
    echo "{\"target\":\"$t\",\"dir\":\"$dir\",\"secs\":$(python3 -c "import json,sys; print(json.dumps(float(sys.argv[1])))" "$secs" 2>/dev/null || echo NaN),\"rss_kib\":$((peak - before)),\"cpu_s\":$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" 'BEGIN {print d / hz}')}" >> "$STREAMS"
    echo "$t stream $dir: ${secs} s, RSS +$((peak - before)) KiB, cpu_ticks=$((t1 - t0))" >&2
  done
done

# Start-up to listening (no IMS call: static credential), median of 5.
ims_toml "$WORK/startup.toml" 127.0.0.1:19104 "$U_PLAIN"
STARTUP=$(for i in 1 2 3 4 5; do "$BIN/bench-startup" 127.0.0.1:19104 -- "$PROXY" --config "$WORK/startup.toml"; done | sort -n | sed -n 3p)

REFRESHES=$(grep -c 'obtained an access token' "$WORK/oauth.log" || true)
UPSTREAM_PROTOS=""
for t in "${!UPSTREAM_PROTO[@]}"; do UPSTREAM_PROTOS="$UPSTREAM_PROTOS$t=${UPSTREAM_PROTO[$t]};"; done
SETTLED_RSS=""
for t in "${!SETTLED[@]}"; do SETTLED_RSS="$SETTLED_RSS$t=${SETTLED[$t]};"; done
if [ -n "${OUT:-}" ]; then DEST=$OUT SPLICE=0
elif [ "${QUICK:-0}" = 1 ]; then DEST=bench/target/quick-$LAYOUT.md SPLICE=0
else DEST=bench/RESULTS.md SPLICE=1; fi
# The run's data stays in bench/target/run-$LAYOUT (until the next run of that layout), so the
# report can be written again without measuring again:
#   (set -a; . bench/target/run-pinned/env; OUT=/tmp/r.md python3 bench/report.py)
DATA=bench/target/run-$LAYOUT
rm -rf "$DATA"; mkdir -p "$DATA"
cp "$RESULTS" "$MEMORY" "$STREAMS" "$DATA/"
RESULTS=$DATA/results.jsonl MEMORY=$DATA/memory.jsonl STREAMS=$DATA/stream.jsonl
VARS="RESULTS MEMORY STREAMS REFRESHES UPSTREAM_PROTOS SETTLED_RSS STARTUP DEST SPLICE NCPU WORKERS LAYOUT
  PROXY_CPU LOAD_CPU DURATION RUNS CONNS TARGETS STREAM_BYTES PROXY NGINX HAPROXY HTTP1 LEAN BASELINE QUICK"
BASELINE=${BASELINE:-} QUICK=${QUICK:-0}
for v in $VARS; do printf '%s=%q\n' "$v" "${!v}"; done > "$DATA/env"
# shellcheck disable=SC2086
export $VARS
python3 bench/report.py
echo "report: $DEST" >&2
