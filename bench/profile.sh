#!/usr/bin/env bash
# A symbolised CPU profile of ims-proxy under load, in the pinned layout of bench/run.sh
# (proxy on core 0 with one worker; wrk and the upstream on core 1), grouped by crate so that
# it says where a request's CPU goes: the kernel, hyper, tokio, ims-proxy's own code, the
# allocator. Prints a markdown table; the raw `perf report` stays in $OUT (default /tmp/ims-proxy-profile).
#
# usage: bench/profile.sh    knobs: CONNS (16), SECONDS_ (8), OUT
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
CONNS=${CONNS:-16}; SECS=${SECONDS_:-8}; OUT=${OUT:-/tmp/ims-proxy-profile}
need() { command -v "$1" >/dev/null 2>&1; }
if ! need wrk || ! need perf; then
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk linux-perf >/dev/null
fi
cargo build --profile profiling --quiet
(cd bench && cargo build --release --quiet)
PROXY="${CARGO_TARGET_DIR:-$ROOT/target}/profiling/ims-proxy"
BIN="${CARGO_TARGET_DIR:-$ROOT/bench/target}/release"
mkdir -p "$OUT"; WORK=$(mktemp -d); PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
UP=127.0.0.1:19201; IMSP=127.0.0.1:19203; TOKEN=bench-token-0123456789; KEY=bench-client-id
wait_port() { for _ in $(seq 1 500); do (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null && return 0; sleep 0.01; done; return 1; }
taskset -c 1 "$BIN/bench-upstream" "$UP" "$TOKEN" "$KEY" & PIDS+=($!)
wait_port "$UP"
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
TOKIO_WORKER_THREADS=1 taskset -c 0 "$PROXY" --log-format json --config "$WORK/proxy.toml" 2>"$WORK/proxy.log" & PID=$!; PIDS+=($PID)
wait_port "$IMSP"
URL="http://$IMSP/campaign/profileAndServices/profile?_lineCount=1"
taskset -c 1 wrk -t1 -c"$CONNS" -d2s "$URL" >/dev/null   # warm the pools
taskset -c 1 wrk -t1 -c"$CONNS" -d"$((SECS + 2))s" "$URL" > "$OUT/wrk.txt" &
WRK=$!
sleep 1
perf record -F 1999 -p "$PID" -o "$OUT/perf.data" -- sleep "$SECS" 2>/dev/null
wait "$WRK"
perf report -i "$OUT/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null > "$OUT/report.txt"
python3 - "$OUT/report.txt" "$OUT/wrk.txt" <<'PY'
import re, sys, collections
groups = collections.Counter(); top = []
for line in open(sys.argv[1]):
    m = re.match(r"\s+([\d.]+)%\s+(\S+)\s+\[[.k]\]\s+(.*)", line)
    if not m: continue
    pct, dso, sym = float(m.group(1)), m.group(2), m.group(3).strip()
    if dso.startswith("[kernel") : g = "kernel (TCP loopback, epoll, syscalls)"
    elif "libc" in dso: g = "libc (" + ("malloc/free" if re.search(r"malloc|free|realloc|calloc|_int_", sym) else "memcpy/other") + ")"
    else:
        # `<&mut W as core::fmt::Write>::write_char`, `<T as ...>`: the trait's crate is the
        # code that runs; a bare generic parameter or primitive is core's.
        s = re.sub(r"^(<|&|\*|mut |dyn |const )+", "", sym)
        m2 = re.match(r"(\w+) as (\w+)", s)
        crate = re.split(r"::|<| ", s)[0] or "?"
        if m2 and (len(m2.group(1)) <= 2 or m2.group(1) in ("usize", "isize", "u8", "u16", "u32", "u64", "u128", "i32", "i64", "bool", "f64", "str")):
            crate = m2.group(2)
        if crate in ("usize", "isize", "u8", "u16", "u32", "u64", "u128", "i32", "i64", "bool", "f64", "str", "T", "W", "F", "S"):
            crate = "core"
        g = {"ims_proxy": "ims-proxy's own code", "hyper": "hyper", "hyper_util": "hyper-util (pool, legacy client, auto server)",
             "tokio": "tokio", "h2": "h2", "http": "http", "tracing": "tracing", "tracing_subscriber": "tracing-subscriber",
             "core": "core/alloc (generic, inlined from any crate)", "alloc": "core/alloc (generic, inlined from any crate)",
             "bytes": "bytes", "httparse": "httparse", "arc_swap": "arc-swap", "serde_json": "serde_json"}.get(crate, "other: " + crate)
    groups[g] += pct; top.append((pct, sym[:110]))
wrk = open(sys.argv[2]).read()
rps = re.search(r"Requests/sec:\s+([\d.]+)", wrk)
print(f"wrk: {rps.group(1) if rps else '?'} req/s during the profile\n")
print("| where | share of the proxy's CPU |\n|---|---:|")
for g, p in groups.most_common(): print(f"| {g} | {p:.1f}% |")
print("\n| top symbols | % |\n|---|---:|")
for p, s in sorted(top, reverse=True)[:25]: print(f"| `{s}` | {p:.2f} |")
PY
