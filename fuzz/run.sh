#!/usr/bin/env bash
# Runs each fuzz target for a bounded time (default 60 s each), like a benchmark: by hand,
# not in CI. Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
#   fuzz/run.sh            # every target, 60 s each
#   SECONDS_EACH=600 fuzz/run.sh request_rewriter
# corpus/<target> holds what libFuzzer keeps (ignored), except corpus/http1_differential's
# named seeds: the smuggling cases the suite knows, which `cargo test --lib` also runs.
set -euo pipefail
cd "$(dirname "$0")"
secs="${SECONDS_EACH:-60}"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(config_parser request_rewriter http1_differential)
fi
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "a nightly toolchain is required (rustup toolchain install nightly)" >&2
    exit 2
fi
# The versions the proxy ships, not the newest: the fuzz crate resolves its own lock, and a
# newer hyper (1.13 refuses a bare LF in trailers, 1.12 does not) would fuzz another server.
cp ../Cargo.lock Cargo.lock
for t in "${targets[@]}"; do
    echo "== $t (${secs}s)"
    mkdir -p "corpus/$t"
    if cargo +nightly fuzz --version >/dev/null 2>&1; then
        cargo +nightly fuzz run "$t" "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=2048
    else
        # Without cargo-fuzz: the same instrumentation cargo-fuzz applies, by hand. An explicit
        # --target keeps RUSTFLAGS off build scripts and proc-macros, as cargo-fuzz does.
        host="$(rustc +nightly -vV | sed -n 's/^host: //p')"
        RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks" \
            cargo +nightly build --release --target "$host" --bin "$t"
        # Findings where cargo-fuzz puts them (artifacts/, ignored), not in fuzz/.
        mkdir -p "artifacts/$t"
        "target/$host/release/$t" "corpus/$t" -max_total_time="$secs" -rss_limit_mb=2048 \
            -artifact_prefix="artifacts/$t/"
    fi
done
