#!/usr/bin/env bash
# Offline checks of the deployment files (called by .ci/run after `cargo test`): YAML parses,
# kustomizations render, Kubernetes manifests validate strictly against the schemas, the
# proxy.toml files pass `ims-proxy check`, the systemd unit passes systemd-analyze. The logic
# is in deploy/check.py; this script installs what it needs. Quiet on success but for one
# summary line; idempotent. The container test is separate: deploy/container-test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

# PyYAML and kubernetes-validate (which ships the Kubernetes JSON schemas, so validation needs
# no cluster and no network) from PyPI, once.
# Pinned: the validator's default ("newest") schema version moves with its releases.
KV_VERSION=1.37.0
if ! python3 -c "import yaml, importlib.metadata as m; assert m.version('kubernetes-validate') == '$KV_VERSION'" 2>/dev/null \
        || ! command -v kubernetes-validate >/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
        'pyyaml>=6' "kubernetes-validate==$KV_VERSION"
fi
# docker-compose (Debian's, v1) validates compose.yaml against Compose's schema, no daemon
# needed. Installed when we are root with apt; otherwise that one check is skipped, and said so.
if ! command -v docker-compose >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose; } \
        >/dev/null 2>&1 || echo "deploy check: could not install docker-compose" >&2
fi
command -v openssl >/dev/null || { echo "deploy check: openssl is required" >&2; exit 1; }

# The binary `ims-proxy check` runs: the debug build `cargo test` just made (a no-op then),
# wherever cargo puts it (CARGO_TARGET_DIR, build.target-dir): cargo says where.
cargo build --quiet --bin ims-proxy
target_dir=$(cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
exec python3 deploy/check.py "$target_dir/debug/ims-proxy"
