#!/usr/bin/env bash
# The backup/restore benchmark (Headlock beside restic, issues 4 and 11): builds the
# release binaries it needs, then runs crates/bench/src/bin/backup.rs with the
# arguments given.
#
# Usage: scripts/bench-backup.sh [--dataset files|tree|dbpath] [--size-mib N] [--files N]
#        [--tree DIR] [--link-mbit 1000] [--seed 1] [--dir DIR] [--no-restic] [--settle-secs 370]
#
# With BENCH_PERF_DIR=DIR, the Headlock server is also recorded with
# `perf record -F 499 --call-graph dwarf` from its start to its end (all the
# operations) into DIR/headlock-server.perf.data; read it with
# `perf report -i DIR/headlock-server.perf.data --no-children --sort dso,symbol`.
# perf shares the 2 cores with what it measures: figures of a profiled run are lower.
#
# restic comes from Debian's package; the benchmark installs it with apt-get when it
# is missing and it runs as root, and fails with the command to run otherwise.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
case "$target" in /*) ;; *) target="$repo/$target" ;; esac

cd "$repo"
cargo build --release -p headlock -p bench --bin headlock --bin backup

if [ -z "${BENCH_PERF_DIR:-}" ]; then
    exec "$target/release/backup" "$@"
fi

command -v perf >/dev/null || { echo "BENCH_PERF_DIR is set but perf is not installed" >&2; exit 1; }
mkdir -p "$BENCH_PERF_DIR"
log="$BENCH_PERF_DIR/backup.log"
"$target/release/backup" "$@" >"$log" 2>&1 &
bench_pid=$!
perf_pid=""
cleanup() {
    # Only what this script started, by pid.
    [ -n "$perf_pid" ] && kill -INT "$perf_pid" 2>/dev/null || true
    kill -TERM "$bench_pid" 2>/dev/null || true
}
trap cleanup INT TERM
tail -f "$log" --pid "$bench_pid" &
tail_pid=$!
server=""
while kill -0 "$bench_pid" 2>/dev/null; do
    server="$(sed -n 's/^  server pid \([0-9]*\) .*/\1/p' "$log" | head -n 1)"
    [ -n "$server" ] && break
    sleep 0.02
done
if [ -n "$server" ]; then
    # Ends by itself when the server exits.
    perf record -F 499 --call-graph dwarf,16384 -p "$server" \
        -o "$BENCH_PERF_DIR/headlock-server.perf.data" >/dev/null 2>&1 &
    perf_pid=$!
fi
status=0
wait "$bench_pid" || status=$?
[ -n "$perf_pid" ] && { wait "$perf_pid" || true; }
wait "$tail_pid" 2>/dev/null || true
exit "$status"
