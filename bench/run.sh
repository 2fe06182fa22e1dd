#!/usr/bin/env bash
# ims-proxy benchmark: the upstream directly, through nginx, through HAProxy and through
# ims-proxy, in one run on one machine, with the same load generator; to a plain-HTTP upstream
# and to an HTTPS one (every Adobe API is HTTPS), with HTTP/1.1 clients (wrk) and an HTTP/2
# client (h2load). Each point also records the CPU time the proxy process(es) spent, so CPU per
# request is compared, not only throughput. Writes bench/RESULTS.md.
#
# usage: bench/run.sh            full run (about 25 minutes; DURATION=5 CONNS="16 256": 8)
#        QUICK=1 bench/run.sh    one short run per point, to check the harness
#        SOAK=1 bench/run.sh     soak only: SOAK_SECONDS (default 600) of steady load through an
#                                oauth credential with 30 s tokens while IMS fails every other
#                                SOAK_FAIL_EVERY (default 60s); SOAK_REFRESH_AT (default 0.8) sets
#                                the credential's refresh_at. Counts non-2xx, compares RSS at start
#                                and end, appends to bench/SOAK.md
# knobs: DURATION (s per point, default 10), RUNS (default 3, median reported), CONNS
#        ("1 16 256"), STREAM_BYTES (default 2 GiB).
#        LAYOUT=pinned (default): each proxy one worker on core 0, wrk and the upstream on core 1;
#        LAYOUT=shared: nothing pinned, WORKERS (default: the core count) workers for each proxy
#        (nginx worker_processes, ims-proxy TOKIO_WORKER_THREADS).
#        BASELINE=/path/to/ims-proxy: also measure that build (say, main's) as "baseline", with
#        the same config, in the same runs: an A/B on a shared machine.
#        PROXY_BIN=/path/to/ims-proxy: measure that build as "ims-proxy" instead of this tree's.
#        H2=0: skip the HTTP/2 client (h2load) points; TLS=0: skip the HTTPS-upstream points.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
DURATION=${DURATION:-10}
USER_RUNS=${RUNS:-}
RUNS=${RUNS:-3}
CONNS=${CONNS:-"1 16 256"}
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
ulimit -n 65536 2>/dev/null || ulimit -n 4096 || true

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
TOKEN=bench-token-0123456789; KEY=bench-client-id

wait_port() { for _ in $(seq 1 500); do (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null && return 0; sleep 0.01; done; echo "nothing listens on $1" >&2; return 1; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
# CPU time (user + system, clock ticks) of the given processes and their children's threads:
# /proc/PID/stat fields 14 and 15 count every thread of the process.
cpu_ticks() { local t=0 p; for p in "$@"; do [ -r "/proc/$p/stat" ] && t=$((t + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}'))); done; echo "$t"; }

for port in $(seq 19101 19117); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "port $port is busy: stop what listens there first" >&2; exit 1; fi
done
pin "$LOAD_CPU" "$BIN/bench-upstream" "$UP" "$TOKEN" "$KEY" & PIDS+=($!)
wait_port "$UP"
CERT="$WORK/upstream.pem"
BENCH_TLS_CERT=$CERT pin "$LOAD_CPU" "$BIN/bench-upstream" "$UP_TLS" "$TOKEN" "$KEY" & PIDS+=($!)
wait_port "$UP_TLS"

mkdir -p "$WORK/nginx"
cat > "$WORK/nginx/nginx.conf" <<NGX
worker_processes $WORKERS;
daemon off;
user root;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 2048; }
http {
  # As many requests per connection as the other proxies (nginx's default closes at 1,000).
  keepalive_requests 1000000;
  access_log $WORK/nginx/access.log;
  upstream adobe { server $UP; keepalive 256; }
  upstream adobe_tls { server $UP_TLS; keepalive 256; }
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
backend up
  http-request set-header Authorization "Bearer $TOKEN"
  http-request set-header x-api-key "$KEY"
  server s1 $UP
backend up_tls
  http-request set-header Authorization "Bearer $TOKEN"
  http-request set-header x-api-key "$KEY"
  server s1 $UP_TLS ssl verify required ca-file $CERT sni str(localhost) alpn http/1.1
HAP
pin "$PROXY_CPU" "$HAPROXY" -f "$WORK/haproxy.cfg" > "$WORK/haproxy.log" 2>&1 & HAP_PID=$!; PIDS+=($HAP_PID)
wait_port "$HAP"

cat > "$WORK/proxy.toml" <<TOML
[server]
listen = "$IMSP"
[credentials.bench]
type = "static"
access_token = "$TOKEN"
client_id = "$KEY"
[[routes]]
prefix = "/campaign"
upstream = "http://$UP/campaign"
credential = "bench"
TOML
TOKIO_WORKER_THREADS=$WORKERS pin "$PROXY_CPU" "$PROXY" --log-format json --config "$WORK/proxy.toml" 2>"$WORK/proxy.log" & IMS_PID=$!; PIDS+=($IMS_PID)
wait_port "$IMSP"
cat > "$WORK/proxy-tls.toml" <<TOML
[server]
listen = "$IMSP_TLS"
[client]
ca_file = "$CERT"
[credentials.bench]
type = "static"
access_token = "$TOKEN"
client_id = "$KEY"
[[routes]]
prefix = "/campaign"
upstream = "https://localhost:${UP_TLS#*:}/campaign"
credential = "bench"
TOML
TOKIO_WORKER_THREADS=$WORKERS pin "$PROXY_CPU" "$PROXY" --log-format json --config "$WORK/proxy-tls.toml" 2>"$WORK/proxy-tls.log" & IMS_TLS_PID=$!; PIDS+=($IMS_TLS_PID)
wait_port "$IMSP_TLS"
TARGETS="direct nginx haproxy ims-proxy ims-proxy-oauth"
TLS_TARGETS="direct-tls nginx-tls haproxy-tls ims-proxy-tls"
H2_TARGETS="direct-h2 nginx-h2 haproxy-h2 ims-proxy-h2"
if [ -n "${BASELINE:-}" ]; then
  sed "s/19103/19108/" "$WORK/proxy.toml" > "$WORK/baseline.toml"
  TOKIO_WORKER_THREADS=$WORKERS pin "$PROXY_CPU" "$BASELINE" --log-format json --config "$WORK/baseline.toml" 2>"$WORK/baseline.log" & BASE_PID=$!; PIDS+=($BASE_PID)
  wait_port "$BASEP"
  sed "s/19113/19114/" "$WORK/proxy-tls.toml" > "$WORK/baseline-tls.toml"
  TOKIO_WORKER_THREADS=$WORKERS pin "$PROXY_CPU" "$BASELINE" --log-format json --config "$WORK/baseline-tls.toml" 2>"$WORK/baseline-tls.log" & BASE_TLS_PID=$!; PIDS+=($BASE_TLS_PID)
  wait_port "$BASEP_TLS"
  TARGETS="direct nginx haproxy baseline ims-proxy ims-proxy-oauth"
  TLS_TARGETS="direct-tls nginx-tls haproxy-tls baseline-tls ims-proxy-tls"
  H2_TARGETS="direct-h2 nginx-h2 haproxy-h2 baseline-h2 ims-proxy-h2"
fi
[ "$TLS" = 1 ] && TARGETS="$TARGETS $TLS_TARGETS"
[ "$H2" = 1 ] && TARGETS="$TARGETS $H2_TARGETS"
sleep 1
IDLE_RSS=$(rss_kib "$IMS_PID")

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
    nginx) echo "http://$NGX";; nginx-tls) echo "http://$NGX_TLS";; nginx-h2) echo "http://$NGX_H2";;
    haproxy) echo "http://$HAP";; haproxy-tls) echo "http://$HAP_TLS";; haproxy-h2) echo "http://$HAP_H2";;
    baseline|baseline-h2) echo "http://$BASEP";; baseline-tls) echo "http://$BASEP_TLS";;
    ims-proxy|ims-proxy-h2) echo "http://$IMSP";; ims-proxy-tls) echo "http://$IMSP_TLS";;
    ims-proxy-oauth) echo "http://$OAUTHP";;
  esac
}
pids_of() {
  case $1 in
    direct*) ;;
    nginx*) echo "$NGX_PID $(pgrep -P "$NGX_PID" | tr '\n' ' ')";;
    haproxy*) echo "$HAP_PID";;
    baseline-tls) echo "$BASE_TLS_PID";; baseline*) echo "$BASE_PID";;
    ims-proxy-tls) echo "$IMS_TLS_PID";; ims-proxy-oauth) echo "$OAUTH_PID";; ims-proxy*) echo "$IMS_PID";;
  esac
}
# One point: prints wrk's JSON line (h2load's numbers in the same shape for the -h2 targets).
load() { # target conns
  local url; url="$(url_of "$1")$PATH_Q"
  case $1 in
    *-h2)
      # h2load: h2c with prior knowledge, -m 8 streams per connection; it reports a mean, not
      # percentiles, so only req/s and the mean are compared for HTTP/2.
      pin "$LOAD_CPU" h2load -t1 -c"$2" -m8 -D"$DURATION" --warm-up-time=1 \
        -H "Authorization: Bearer $TOKEN" -H "x-api-key: $KEY" "$url" 2>&1 | python3 -c '
import json, re, sys
out = sys.stdin.read()
rps = float(re.search(r"finished in [\d.]+\w*, ([\d.]+) req/s", out).group(1))
m = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
mean = re.search(r"time for request:\s+\S+\s+\S+\s+(\S+)", out).group(1)
us = float(re.sub(r"[a-z]+$", "", mean)) * {"us": 1, "ms": 1e3, "s": 1e6}[re.search(r"[a-z]+$", mean).group(0)]
done, ok = int(m.group(2)), int(m.group(3))
print(json.dumps({"requests": done, "rps": rps, "p50": us, "p99": float("nan"), "p999": float("nan"), "max": float("nan"), "non2xx": done - ok, "socket_errors": int(m.group(4)) + int(m.group(5)), "mean": us}))
';;
    *)
      # Every target gets the same request, auth headers included (the proxies replace them).
      pin "$LOAD_CPU" wrk -t1 -c"$2" -d"${DURATION}s" --latency -s bench/report.lua \
        -H "Authorization: Bearer $TOKEN" -H "x-api-key: $KEY" "$url" | tail -n 1;;
  esac
}
RESULTS="$WORK/results.jsonl"
: > "$RESULTS"
for c in $CONNS; do
  for run in $(seq 1 "$RUNS"); do
    for target in $TARGETS; do
      read -ra pids <<< "$(pids_of "$target")"
      t0=$(cpu_ticks "${pids[@]}")
      line=$(load "$target" "$c")
      t1=$(cpu_ticks "${pids[@]}")
      echo "{\"target\":\"$target\",\"conns\":$c,\"run\":$run,\"cpu_s\":$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" 'BEGIN {print d / hz}'),\"wrk\":$line}" >> "$RESULTS"
      echo "$target c=$c run=$run cpu_ticks=$((t1 - t0)) $line" >&2
    done
  done
done

# RSS with 1,000 open keep-alive connections, in a proxy of its own: the one measured above
# still holds the heap the load points left (freed, not yet trimmed back to the system).
sed "s/19103/19117/" "$WORK/proxy.toml" > "$WORK/mem.toml"
TOKIO_WORKER_THREADS=$WORKERS pin "$PROXY_CPU" "$PROXY" --log-format json --config "$WORK/mem.toml" 2>"$WORK/mem.log" & MEM_PID=$!; PIDS+=($MEM_PID)
wait_port 127.0.0.1:19117
pin "$LOAD_CPU" "$BIN/bench-conns" 127.0.0.1:19117 "$PATH_Q" 1000 4 > "$WORK/conns.out" & CPID=$!
CONN_RSS=0
while kill -0 "$CPID" 2>/dev/null; do r=$(rss_kib "$MEM_PID"); [ "$r" -gt "$CONN_RSS" ] && CONN_RSS=$r; sleep 0.1; done
CONN_OPEN=$(cat "$WORK/conns.out")
# What a burst leaves behind: RSS once those connections are gone and the heap trimmer (every
# 10 s) has run; the upstream pool keeps its idle connections for client.pool_idle_timeout.
sleep 12
SETTLED_RSS=$(rss_kib "$MEM_PID")

# Streamed upload and download, RSS sampled throughout.
stream() { # direction addr -> seconds
  if [ "$1" = up ]; then
    head -c "$STREAM_BYTES" /dev/zero | curl -sS -o /dev/null -w '%{time_total}' -T - \
      -H "Authorization: Bearer $TOKEN" -H "x-api-key: $KEY" "http://$2/campaign/sink"
  else
    curl -sS -o /dev/null -w '%{time_total}' \
      -H "Authorization: Bearer $TOKEN" -H "x-api-key: $KEY" "http://$2/campaign/source?bytes=$STREAM_BYTES"
  fi
}
declare -A STREAM
for dir in up down; do
  BEFORE=$(rss_kib "$IMS_PID"); PEAK=$BEFORE
  ( pin "$LOAD_CPU" bash -c "$(declare -f stream); TOKEN=$TOKEN KEY=$KEY STREAM_BYTES=$STREAM_BYTES stream $dir $IMSP" > "$WORK/stream.$dir" ) & SPID=$!
  while kill -0 "$SPID" 2>/dev/null; do r=$(rss_kib "$IMS_PID"); [ "$r" -gt "$PEAK" ] && PEAK=$r; sleep 0.05; done
  STREAM[$dir.proxy]=$(cat "$WORK/stream.$dir"); STREAM[$dir.rss]=$((PEAK - BEFORE))
  STREAM[$dir.direct]=$(TOKEN=$TOKEN KEY=$KEY stream "$dir" "$UP")
done

# Start-up to listening (no IMS call: static credential), median of 5.
cp "$WORK/proxy.toml" "$WORK/startup.toml"; sed -i 's/19103/19104/' "$WORK/startup.toml"
STARTUP=$(for i in 1 2 3 4 5; do "$BIN/bench-startup" 127.0.0.1:19104 -- "$PROXY" --config "$WORK/startup.toml"; done | sort -n | sed -n 3p)

REFRESHES=$(grep -c 'obtained an access token' "$WORK/oauth.log" || true)
python3 - "$RESULTS" <<PY > bench/RESULTS.md
import json, statistics, sys, subprocess, datetime, platform
rows = [json.loads(l) for l in open(sys.argv[1])]
REFRESHES = "$REFRESHES"
def med(target, c, key):
    v = [r["wrk"][key] for r in rows if r["target"] == target and r["conns"] == c]
    return statistics.median(v) if v else float("nan")
def cpu(target, c):
    v = [r["cpu_s"] * 1e6 / r["wrk"]["requests"] for r in rows if r["target"] == target and r["conns"] == c and r["wrk"]["requests"]]
    return statistics.median(v) if v and not target.startswith("direct") else float("nan")
def tot(target, c, key):
    return sum(r["wrk"][key] for r in rows if r["target"] == target and r["conns"] == c)
def ratio(a, b):
    return a / b if b == b and b else float("nan")
conns = [int(c) for c in "$CONNS".split()]
def ver(cmd):
    try: return subprocess.run(cmd, capture_output=True, text=True, shell=True).stdout.strip() or subprocess.run(cmd, capture_output=True, text=True, shell=True).stderr.strip()
    except Exception: return "?"
cpu_model = ver("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
print("# ims-proxy benchmark results\n")
print(f"- date: {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC; machine: {platform.machine()}, {$NCPU} cores ({cpu_model}), {ver('uname -r')}")
print(f"- versions: {ver('$PROXY --version')}; {ver('$NGINX -v 2>&1')}; {ver('$HAPROXY -v | head -1')}; {ver('wrk -v 2>&1 | head -1')}; {ver('h2load --version')}; {ver('rustc --version')}")
print(f"- ims-proxy-oauth: an oauth credential whose tokens (from the sandbox's IMS, 4 s lifetime) are refreshed about every 3 s during each run: {REFRESHES} refreshes in all")
targets = "$TARGETS".split()
if "$LAYOUT" == "shared":
    layout = f"nothing pinned: proxies, load generator and upstream share all {$NCPU} cores; {$WORKERS} workers each (nginx worker_processes, HAProxy nbthread, ims-proxy TOKIO_WORKER_THREADS)"
else:
    layout = "proxies pinned to core $PROXY_CPU with one worker each (nginx worker_processes 1, HAProxy nbthread 1, ims-proxy TOKIO_WORKER_THREADS=1), load generator and upstream on core $LOAD_CPU"
print(f"- method: wrk -t1 (HTTP/1.1) and h2load -t1 -m8 (HTTP/2, h2c), {$DURATION} s per point, median of {$RUNS} runs, targets interleaved; layout $LAYOUT: {layout}; keep-alive (and for \`-tls\`, TLS session reuse) to the upstream in every proxy; every proxy writes an access log.")
print("- targets: \`X\` = plain-HTTP upstream; \`X-tls\` = the same upstream over HTTPS (self-signed, verified; HTTP/1.1 as nginx and HAProxy speak to upstreams); \`X-h2\` = HTTP/2 client to the proxy, plain-HTTP upstream; \`direct*\` = no proxy.")
print("- CPU µs/req: user + system time of the proxy's process(es) during the point (/proc/PID/stat), divided by the requests answered.")
if "baseline" in targets:
    print(f"- baseline: \`${BASELINE:-}\` (another ims-proxy build, same config), measured in the same runs")
print(f"- reproduce: \`LAYOUT=$LAYOUT DURATION=$DURATION RUNS=$RUNS CONNS=\"$CONNS\" bench/run.sh\`\n")
print("| target | conns | req/s | CPU µs/req | p50 µs | p99 µs | p99.9 µs | non-2xx + socket errors |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for c in conns:
    for t in targets:
        print(f"| {t} | {c} | {med(t,c,'rps'):,.0f} | {cpu(t,c):.1f} | {med(t,c,'p50'):.0f} | {med(t,c,'p99'):.0f} | {med(t,c,'p999'):.0f} | {tot(t,c,'non2xx')+tot(t,c,'socket_errors')} |")
print("\n(\`-h2\` rows: h2load gives the mean latency, shown as p50; no percentiles.)")
print("\n## Ratios (same run)\n")
print("| case | conns | ims-proxy / nginx req/s | ims-proxy / HAProxy req/s | HAProxy / nginx req/s | CPU µs/req ims-proxy · nginx · HAProxy | added p99 µs over direct ims-proxy · nginx · HAProxy |")
print("|---|---:|---:|---:|---:|---:|---:|")
for suffix, case in (("", "HTTP upstream"), ("-tls", "HTTPS upstream"), ("-h2", "HTTP/2 client")):
    i, n, h, d = "ims-proxy" + suffix, "nginx" + suffix, "haproxy" + suffix, "direct" + suffix
    if i not in targets:
        continue
    for c in conns:
        added = " · ".join(f"{med(t,c,'p99')-med(d,c,'p99'):.0f}" for t in (i, n, h)) if suffix != "-h2" else "n/a"
        print(f"| {case} | {c} | {ratio(med(i,c,'rps'),med(n,c,'rps')):.2f} | {ratio(med(i,c,'rps'),med(h,c,'rps')):.2f} | {ratio(med(h,c,'rps'),med(n,c,'rps')):.2f} | {cpu(i,c):.1f} · {cpu(n,c):.1f} · {cpu(h,c):.1f} | {added} |")
if "baseline" in targets:
    print("\n| case | conns | baseline / nginx req/s | ims-proxy / nginx req/s | ims-proxy / baseline req/s | CPU µs/req baseline · ims-proxy |")
    print("|---|---:|---:|---:|---:|---:|")
    for suffix, case in (("", "HTTP upstream"), ("-tls", "HTTPS upstream"), ("-h2", "HTTP/2 client")):
        i, n, b = "ims-proxy" + suffix, "nginx" + suffix, "baseline" + suffix
        if b not in targets:
            continue
        for c in conns:
            print(f"| {case} | {c} | {ratio(med(b,c,'rps'),med(n,c,'rps')):.2f} | {ratio(med(i,c,'rps'),med(n,c,'rps')):.2f} | {ratio(med(i,c,'rps'),med(b,c,'rps')):.2f} | {cpu(b,c):.1f} · {cpu(i,c):.1f} |")
print("\n| conns | oauth / static req/s | oauth max µs / static p99.9 µs |")
print("|---:|---:|---:|")
for c in conns:
    print(f"| {c} | {ratio(med('ims-proxy-oauth',c,'rps'),med('ims-proxy',c,'rps')):.2f} | {med('ims-proxy-oauth',c,'max'):.0f} / {med('ims-proxy',c,'p999'):.0f} |")
gb = $STREAM_BYTES / 1e9
up_p, up_d, dn_p, dn_d = float("${STREAM[up.proxy]}"), float("${STREAM[up.direct]}"), float("${STREAM[down.proxy]}"), float("${STREAM[down.direct]}")
print("\n## Memory, streaming, start-up\n")
print("| measure | ims-proxy | note |")
print("|---|---:|---|")
print(f"| RSS idle | {$IDLE_RSS/1024:.1f} MiB | after start-up, no traffic yet |")
print(f"| RSS peak with 1,000 open keep-alive connections | {$CONN_RSS/1024:.1f} MiB | bench-conns: $CONN_OPEN |")
print(f"| RSS 12 s after those connections closed | {$SETTLED_RSS/1024:.1f} MiB | heap trimmed; pooled upstream connections idle out after client.pool_idle_timeout |")
print(f"| {gb:.2f} GB streamed upload | {gb/up_p:.2f} GB/s, RSS +{${STREAM[up.rss]}/1024:.1f} MiB | direct: {gb/up_d:.2f} GB/s |")
print(f"| {gb:.2f} GB streamed download | {gb/dn_p:.2f} GB/s, RSS +{${STREAM[down.rss]}/1024:.1f} MiB | direct: {gb/dn_d:.2f} GB/s |")
print(f"| start-up to listening | $STARTUP ms | median of 5, static credential |")
PY
cat bench/RESULTS.md
