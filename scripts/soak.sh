#!/usr/bin/env bash
# The fault soak (issue 14): builds `headlock` and the soak driver
# (crates/bench/src/bin/soak.rs, which says what it does and checks) and runs it: mixed
# traffic through the real CLI and API while `headlock serve` and `headlock kmip-server`
# are SIGKILLed and restarted at random; exits non-zero if an acknowledged snapshot does
# not restore byte for byte, an acknowledged rotation is not audited, the audit chain
# does not verify, the KMIP server holds other than one Active key per cluster part, or
# a log holds a panic. scripts/test.sh runs a short one (60 s, seed 1); the long one by
# hand, e.g.:
#   nice scripts/soak.sh --duration 1800 --seed 7 >/tmp/soak.log 2>&1 &
# Usage: scripts/soak.sh [--duration SECS] [--seed N] [--dir DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v curl >/dev/null 2>&1 || { echo "soak.sh: please install curl" >&2; exit 1; }
cargo build --locked -q -p headlock --bin headlock -p bench --bin soak
HEADLOCK_BIN="$PWD/target/debug/headlock" exec target/debug/soak "$@"
