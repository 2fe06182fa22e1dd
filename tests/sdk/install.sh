#!/usr/bin/env bash
# Installs Adobe's real SDKs, unmodified, for the forward-listener tests:
#   node/node_modules  @adobe/aio-lib-campaign-standard, from node/package-lock.json
#   python/.venv       aepp, from python/requirements.txt (every package pinned with hashes)
# Install scripts are off (npm --ignore-scripts; pip takes wheels only, so nothing is built or
# run). Idempotent: a part whose lock file has not changed since its last successful install
# is skipped (a stamp holds the lock file's hash). Needs the npm registry and PyPI the first
# time; the tests themselves never touch the network.
#
# Environment: NODE (default node), NPM (default npm), PYTHON (default python3, 3.11 or newer).
set -euo pipefail
cd "$(dirname "$0")"

NODE=${NODE:-node}
NPM=${NPM:-npm}
PYTHON=${PYTHON:-python3}

say() { echo "tests/sdk/install.sh: $*" >&2; }
hash_of() { sha256sum "$@" | sha256sum | cut -d' ' -f1; }

# --- npm ---------------------------------------------------------------------------------
node_stamp=node/node_modules/.ims-proxy-installed
node_want="$(hash_of node/package.json node/package-lock.json) $("$NODE" --version)"
if [[ -f $node_stamp && "$(cat "$node_stamp")" == "$node_want" ]]; then
    say "node: up to date"
else
    say "node: npm ci"
    rm -f "$node_stamp"
    (cd node && "$NPM" ci --ignore-scripts --no-audit --no-fund --loglevel=error)
    (cd node && "$NODE" -e "require('@adobe/aio-lib-campaign-standard')")
    echo "$node_want" >"$node_stamp"
fi

# --- PyPI --------------------------------------------------------------------------------
venv=python/.venv
py_stamp=$venv/.ims-proxy-installed
py_version=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    say "python: $PYTHON is $py_version; aepp's locked dependencies need 3.11 or newer"
    exit 1
fi
py_want="$(hash_of python/requirements.txt) $py_version"
if [[ -f $py_stamp && "$(cat "$py_stamp")" == "$py_want" ]]; then
    say "python: up to date"
else
    say "python: venv + pip install --require-hashes --only-binary :all:"
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        --no-deps --require-hashes --only-binary :all: -r python/requirements.txt
    "$venv/bin/python" -m pip check --disable-pip-version-check >/dev/null
    "$venv/bin/python" -c 'import aepp, aepp.privacyservice'
    echo "$py_want" >"$py_stamp"
fi
say "ok"
