#!/usr/bin/env bash
# Debian's chromium and chromium-driver for the web console's browser tests
# (crates/headlock/tests/console.rs). Idempotent: does nothing when chromedriver and
# chromium are both there; otherwise installs them with apt-get as root (as
# scripts/postgres.sh installs postgresql), and fails saying what to install when it
# cannot.
set -euo pipefail

if command -v chromedriver >/dev/null 2>&1 && command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "chromium.sh: installing chromium and chromium-driver" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >&2
else
    echo "chromium.sh: please install Debian's chromium and chromium-driver" >&2
    exit 1
fi
