#!/usr/bin/env bash
# Debian's Chromium for the status page's browser tests (tests/operator/status_page.rs), when it
# is not on PATH yet. Run by .ci/run, and by the tests themselves on first use, so that
# `cargo test` alone works on a fresh machine.
set -euo pipefail
command -v chromium >/dev/null && exit 0
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
$sudo apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium
