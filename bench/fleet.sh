#!/usr/bin/env bash
# ims-proxy fleet run (issue 21): N proxy processes sharing one redis-server ([shared]), the
# sandbox as IMS and upstream (Campaign), callers offering more than the credential's quota.
# Measures, in one run:
#   1. token grants by the sandbox's IMS over the run, fleet vs one process's expectation;
#   2. requests reaching the upstream per second against the credential's quota;
#   3. the latency a shared decision adds: the same requests through one proxy with a quota
#      decided on Redis and decided in-process (p50/p99, client-observed, sequential);
#   4. the cost of a Redis outage: Redis SIGSTOPped for OUTAGE seconds under the offered load
#      (non-2xx that are not the quota's 429, slowest request, extra token grants).
# Appends a section to bench/RESULTS.md.
#
# usage: bench/fleet.sh
# knobs: N (proxies, 3), DURATION (s of offered load, 10), OFFERED (req/s over all proxies,
#        100), QUOTA (per second, 20), LIFETIME (token lifetime, 4s), OUTAGE (s, 5),
#        LATENCY_REQUESTS (2000), PROXY_BIN (a built ims-proxy; default: this tree, release).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
N=${N:-3}; DURATION=${DURATION:-10}; OFFERED=${OFFERED:-100}; QUOTA=${QUOTA:-20}
LIFETIME=${LIFETIME:-4s}; OUTAGE=${OUTAGE:-5}; LATENCY_REQUESTS=${LATENCY_REQUESTS:-2000}

bash tests/support/install-redis.sh
if [ -z "${PROXY_BIN:-}" ]; then
  echo "building (release)" >&2
  cargo build --release --quiet
fi
PROXY=${PROXY_BIN:-"${CARGO_TARGET_DIR:-$ROOT/target}/release/ims-proxy"}

WORK=$(mktemp -d)
PIDS=()
REDIS_PID=
cleanup() {
  [ -n "${KEEP:-}" ] && cp -r "$WORK" "$KEEP"
  [ -n "$REDIS_PID" ] && kill -CONT "$REDIS_PID" 2>/dev/null || true
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 400); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "nothing on port $1" >&2; exit 1; }

REDIS_PORT=$(free_port)
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --dir "$WORK" \
  --logfile "$WORK/redis.log" & REDIS_PID=$!; PIDS+=($REDIS_PID)
wait_port "$REDIS_PORT"

SB_PORT=$(free_port)
"$PROXY" sandbox --listen "127.0.0.1:$SB_PORT" --credentials-dir "$WORK/sandbox" \
  --token-lifetime "$LIFETIME" > "$WORK/sandbox.out" 2>"$WORK/sandbox.log" & PIDS+=($!)
wait_port "$SB_PORT"
field() { awk -v k="$1:" '$1 == k {print $2}' "$WORK/sandbox.out"; }
SB_ID=$(field client_id); SB_SECRET=$(field client_secret); SB_ORG=$(field org_id)
SB_SCOPES=$(field scopes); CAMPAIGN=$(field campaign_url)
SCOPES_TOML=$(echo "$SB_SCOPES" | awk -F, '{for(i=1;i<=NF;i++) printf "%s\"%s\"", (i>1?", ":""), $i}')
head -c 32 /dev/urandom > "$WORK/seal.key"
grants() { curl -fsS "http://127.0.0.1:$SB_PORT/_sandbox/stats" | python3 -c 'import json,sys; print(sum(json.load(sys.stdin)["grants"].values()))'; }

# proxy.toml for one process: listen port, quota per second, shared|local, key prefix.
config() {
  cat <<TOML
[server]
listen = "127.0.0.1:$1"
[credentials.bench]
type = "oauth"
client_id = "$SB_ID"
client_secret = "$SB_SECRET"
org_id = "$SB_ORG"
scopes = [$SCOPES_TOML]
ims_url = "http://127.0.0.1:$SB_PORT"
quota = { per_second = $2, burst = $2 }
[[routes]]
prefix = "/campaign"
upstream = "$CAMPAIGN"
credential = "bench"
queue_size = 0
TOML
  if [ "$3" = shared ]; then
    cat <<TOML
[shared]
url = "redis://127.0.0.1:$REDIS_PORT/0"
seal_key_file = "$WORK/seal.key"
key_prefix = "bench:$4"
timeout = "50ms"
replicas = $N
TOML
  fi
}
start_proxy() { # name port quota shared|local prefix
  config "$2" "$3" "$4" "${5:-$1}" > "$WORK/$1.toml"
  "$PROXY" --log-format json --config "$WORK/$1.toml" 2>"$WORK/$1.log" & PIDS+=($!)
  wait_port "$2"
}

# The load: OFFERED req/s spread evenly over the ports for SECONDS; prints ok, 429, other,
# slowest (ms). Paced per port by a thread each, keep-alive connections.
offer() { # seconds port...
  python3 - "$@" <<'PY'
import http.client, sys, threading, time
seconds = float(sys.argv[1]); ports = sys.argv[2:]
rate = float(__import__("os").environ["OFFERED"]) / len(ports)
counts = {"ok": 0, "429": 0, "other": 0}; slowest = [0.0]; lock = threading.Lock()
def run(port):
    c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=10)
    start = time.monotonic(); n = 0
    while time.monotonic() - start < seconds:
        due = start + n / rate; n += 1
        d = due - time.monotonic()
        if d > 0: time.sleep(d)
        t = time.monotonic()
        try:
            c.request("GET", "/campaign/profileAndServices/profile?_lineCount=1"); r = c.getresponse(); r.read(); s = r.status
        except Exception:
            s = 0; c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=10)
        el = time.monotonic() - t
        with lock:
            counts["ok" if s == 200 else "429" if s == 429 else "other"] += 1
            slowest[0] = max(slowest[0], el)
threads = [threading.Thread(target=run, args=(p,)) for p in ports]
[t.start() for t in threads]; [t.join() for t in threads]
print(counts["ok"], counts["429"], counts["other"], round(slowest[0] * 1000, 1))
PY
}

# Sequential requests on one connection: p50 and p99 in ms.
latency() { # port
  python3 - "$1" "$LATENCY_REQUESTS" <<'PY'
import http.client, sys, time
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10); n = int(sys.argv[2]); t = []
for _ in range(n):
    s = time.perf_counter(); c.request("GET", "/campaign/profileAndServices/profile?_lineCount=1")
    r = c.getresponse(); r.read(); t.append(time.perf_counter() - s)
    assert r.status == 200, r.status
t.sort(); print(round(t[n // 2] * 1000, 3), round(t[int(n * 0.99)] * 1000, 3))
PY
}
export OFFERED

echo "fleet: $N proxies, one Redis, the sandbox (token lifetime $LIFETIME)" >&2
PORTS=()
for i in $(seq 1 "$N"); do p=$(free_port); start_proxy "fleet$i" "$p" "$QUOTA" shared fleet; PORTS+=("$p"); done
sleep 1
G0=$(grants)
read -r OK R429 OTHER SLOW <<<"$(offer "$DURATION" "${PORTS[@]}")"
G1=$(grants)
RATE=$(python3 -c "print(round($OK / $DURATION, 1))")
LIFETIME_S=$(python3 -c "import re; m=re.match(r'(\d+(?:\.\d+)?)(ms|s|m)', '$LIFETIME'); v=float(m[1]); print(v/1000 if m[2]=='ms' else v*60 if m[2]=='m' else v)")
# A window of DURATION holds at most this many of one process's refresh points (every 0.8 of
# a lifetime), its phase unknown.
ALONE=$(python3 -c "import math; print(math.ceil($DURATION / ($LIFETIME_S * 0.8)) + 1)")

echo "outage: Redis stopped for $OUTAGE s under the same load" >&2
G2=$(grants)
( sleep 1; kill -STOP "$REDIS_PID"; sleep "$OUTAGE"; kill -CONT "$REDIS_PID" ) & FAULT=$!
read -r OOK O429 OOTHER OSLOW <<<"$(offer $((OUTAGE + 2)) "${PORTS[@]}")"
wait "$FAULT"
G3=$(grants)
sleep 1
REJOINED=0
for i in $(seq 1 "$N"); do
  [ "$(grep -c 'shared store reachable' "$WORK/fleet$i.log" || true)" -ge 2 ] && REJOINED=$((REJOINED + 1))
done

echo "latency: shared decision vs in-process (quota far above the load)" >&2
LS=$(free_port); start_proxy lat-shared "$LS" 100000 shared
LL=$(free_port); start_proxy lat-local "$LL" 100000 local
latency "$LS" >/dev/null; latency "$LL" >/dev/null   # warm-up
read -r S50 S99 <<<"$(latency "$LS")"
read -r L50 L99 <<<"$(latency "$LL")"

{
  echo
  echo "## Fleet run ($(date -u '+%Y-%m-%d %H:%M') UTC): $N proxies, one Redis, the sandbox"
  echo
  echo "- $(nproc) cores, shared with other work (no quiet machine was available: figures are"
  echo "  indicative); $("$PROXY" --version); redis-server $(redis-server --version | awk '{print $3}' | cut -d= -f2)"
  echo "- \`N=$N DURATION=$DURATION OFFERED=$OFFERED QUOTA=$QUOTA LIFETIME=$LIFETIME OUTAGE=$OUTAGE bench/fleet.sh\`;"
  echo "  python callers paced per proxy, one keep-alive connection each; quota \`{ per_second = $QUOTA, burst = $QUOTA }\`"
  echo
  echo "| measure | value |"
  echo "|---|---:|"
  echo "| token grants in $DURATION s (IMS) | $((G1 - G0)) (one process alone: at most $ALONE; $N unshared: up to $((ALONE * N))) |"
  echo "| offered / reached the upstream / 429 / other | $((OK + R429 + OTHER)) / $OK / $R429 / $OTHER |"
  echo "| upstream req/s vs quota | $RATE vs $QUOTA (burst $QUOTA counts once) |"
  echo "| slowest request | $SLOW ms |"
  echo "| decision latency p50 / p99, shared (Redis) | $S50 / $S99 ms |"
  echo "| decision latency p50 / p99, in-process | $L50 / $L99 ms |"
  echo "| outage of $OUTAGE s: requests / non-2xx other than the quota's 429 | $((OOK + O429 + OOTHER)) / $OOTHER |"
  echo "| outage: slowest request | $OSLOW ms (timeout 50 ms) |"
  echo "| outage: token grants during it | $((G3 - G2)) |"
  echo "| proxies that logged 'shared store reachable' again | $REJOINED of $N |"
} | tee -a bench/RESULTS.md
