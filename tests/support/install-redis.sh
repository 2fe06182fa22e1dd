#!/usr/bin/env bash
# Debian's redis-server (and redis-cli) for the fleet tests (tests/fleet.rs), when they are not
# installed yet. Run by .ci/run, and by the tests themselves on first use, so that
# `cargo test` alone works on a fresh machine.
set -euo pipefail
command -v redis-server >/dev/null && command -v redis-cli >/dev/null && exit 0
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
$sudo apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server redis-tools
