#!/usr/bin/env bash
# Instructions per request: a noise-free A/B. Wall-clock points on a shared 2-core machine
# spread ±10% for the same build; valgrind's callgrind counts the instructions a build
# executes, the same count whatever else the machine is doing. Each build serves a fixed
# number of HTTP/1.1 keep-alive requests (h2load --h1) under callgrind, twice with different
# counts; the difference over the difference in requests is the cost of one request, start-up
# and shut-down cancelled out. Counts user-space instructions of every thread (the log writer
# included); the kernel's share (loopback TCP) is not seen, so this is the proxy's own work.
#
# usage: bench/instructions.sh [BIN ...]    default: this tree's release build
# knobs: HTTP1 (hyper or lean: `server.http1`, default hyper),
#        BASELINE=/path/to/ims-proxy (measured first, as "baseline"), REQUESTS (default 20000;
#        the second run serves twice as many), CONNS (16), TOP (15 functions of the larger run,
#        self instructions per request, for each build; 0: none)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
REQUESTS=${REQUESTS:-20000}; CONNS=${CONNS:-16}; TOP=${TOP:-15}
need() { command -v "$1" >/dev/null 2>&1; }
if ! need valgrind || ! need h2load; then
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind nghttp2-client >/dev/null
fi
if [ $# -eq 0 ]; then
  cargo build --release --quiet
  set -- "${CARGO_TARGET_DIR:-$ROOT/target}/release/ims-proxy"
fi
[ -n "${BASELINE:-}" ] && set -- "$BASELINE" "$@"
(cd bench && cargo build --release --quiet)
BIN="${CARGO_TARGET_DIR:-$ROOT/bench/target}/release"
WORK=$(mktemp -d); PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
UP=127.0.0.1:19301; IMSP=127.0.0.1:19303; TOKEN=bench-token-0123456789; KEY=bench-client-id
for port in 19301 19303; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "port $port is busy: stop what listens there first" >&2; exit 1; fi
done
wait_port() { for _ in $(seq 1 3000); do (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null && return 0; sleep 0.02; done; echo "nothing listens on $1" >&2; return 1; }
"$BIN/bench-upstream" "$UP" "$TOKEN" "$KEY" & PIDS+=($!)
wait_port "$UP"
cat > "$WORK/proxy.toml" <<TOML
[server]
listen = "$IMSP"
http1 = "${HTTP1:-hyper}"
[credentials.bench]
type = "static"
access_token = "$TOKEN"
client_id = "$KEY"
[[routes]]
prefix = "/campaign"
upstream = "http://$UP/campaign"
credential = "bench"
TOML
PATH_Q="/campaign/profileAndServices/profile?_lineCount=1"

# Total instructions of one build serving $2 requests; the callgrind file stays in $3.
count() {
  local bin=$1 n=$2 out=$3 pid
  TOKIO_WORKER_THREADS=1 valgrind --tool=callgrind --callgrind-out-file="$out" \
    "$bin" --log-format json --config "$WORK/proxy.toml" 2>"$out.log" >/dev/null & pid=$!
  wait_port "$IMSP"
  h2load --h1 -n "$n" -c "$CONNS" -H "x-request-id: bench" "http://$IMSP$PATH_Q" > "$out.h2load"
  if ! grep -q " 0 failed, 0 errored" "$out.h2load"; then
    kill "$pid"; wait "$pid" || true
    echo "requests failed: $(grep requests: "$out.h2load")" >&2; return 1
  fi
  kill -INT "$pid"; wait "$pid" || true
  awk '/^summary:/ {print $2}' "$out"
}

echo "| build | instructions per request | vs first |"
echo "|---|---:|---:|"
first=""; i=0
for bin in "$@"; do
  i=$((i + 1))
  a=$(count "$bin" "$REQUESTS" "$WORK/a.$i"); b=$(count "$bin" $((REQUESTS * 2)) "$WORK/b.$i")
  per=$(( (b - a) / REQUESTS ))
  [ -z "$first" ] && first=$per
  name=$bin; [ -n "${BASELINE:-}" ] && [ "$i" = 1 ] && name="baseline ($bin)"
  echo "| \`$name\` ($("$bin" --version)) | $per | $(awk -v a="$per" -v f="$first" 'BEGIN {printf "%.3f", a / f}') |"
  if [ "$TOP" -gt 0 ]; then
    callgrind_annotate --inclusive=no "$WORK/b.$i" 2>/dev/null \
      | awk -v n=$((REQUESTS * 2)) -v top="$TOP" '
          /^-+$/ { sep++; next }
          sep >= 5 && $1 ~ /^[0-9,]+$/ && shown < top {
            c = $1; gsub(",", "", c); $1 = ""; $2 = ""; sub(/^ +/, "");
            sub(/ \[.*\]$/, ""); sub(/^[^:]*:/, "");
            printf "    %8.0f  %s\n", c / n, $0; shown++ }' > "$WORK/top.$i"
    # The same instructions grouped by crate (generic code counts where it was instantiated).
    callgrind_annotate --inclusive=no --threshold=100 "$WORK/b.$i" 2>/dev/null \
      | awk -v n=$((REQUESTS * 2)) '
          /^-+$/ { sep++; next }
          sep >= 5 && $1 ~ /^[0-9,]+$/ {
            c = $1; gsub(",", "", c)
            obj = $0; sub(/.*\[/, "", obj); sub(/\].*/, "", obj)
            fn = $0; sub(/^ *[0-9,]+ *\( *[0-9.]+%\) */, "", fn); sub(/ \[.*\]$/, "", fn); sub(/^[^:]*:/, "", fn)
            if (obj ~ /libc\.so/) g = (fn ~ /malloc|free|realloc|calloc|memalign/) ? "malloc/free (glibc)" : (fn ~ /mem(cpy|move|set|cmp)/ ? "memcpy/memset (glibc)" : "glibc, other")
            else if (obj ~ /ld-linux/) g = "dynamic loader"
            else { f = fn; gsub(/^[<&]+/, "", f); sub(/^mut /, "", f); split(f, p, "::"); g = p[1]
                   # <T as Trait>::f with T generic or primitive: the trait'"'"'s crate.
                   if (g ~ / as /) { x = g; sub(/ as .*/, "", x)
                     if (x ~ /^([A-Z]|[iu](8|16|32|64|128|size)|f32|f64|str|bool|char)$/) { t = f; sub(/^[^ ]* as /, "", t); split(t, q, "::"); g = q[1] } else g = x }
                   if (g ~ /^(core|alloc|std)$/) g = "core/alloc/std" }
            tot[g] += c; all += c }
          END { for (g in tot) if (tot[g] / n >= 100) printf "    %8.0f  %5.1f%%  %s\n", tot[g] / n, 100 * tot[g] / all, g }' \
      | sort -rn > "$WORK/crates.$i"
    cp "$WORK/b.$i" "${OUT:-/tmp}/ims-proxy-callgrind.$i.out" 2>/dev/null || true
  fi
done
if [ "$TOP" -gt 0 ]; then
  i=0
  for bin in "$@"; do
    i=$((i + 1)); echo; echo "by crate, instructions per request: \`$bin\`"; echo '```'; cat "$WORK/crates.$i"; echo '```'
    echo; echo "top functions, self instructions per request: \`$bin\`"; echo '```'; cat "$WORK/top.$i"; echo '```'
  done
fi
