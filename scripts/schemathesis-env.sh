#!/usr/bin/env bash
# Creates (once) a Python venv with schemathesis, which the OpenAPI test
# (crates/headlock/tests/openapi.rs) runs against the real binary. Idempotent and safe
# to run from parallel tests: a flock serialises creation, and a finished venv is reused.
#
# Usage: scripts/schemathesis-env.sh   -> prints the venv's `schemathesis` path on stdout.
# Location: ${CARGO_TARGET_DIR:-<repo>/target}/schemathesis-venv (override with
# HEADLOCK_SCHEMATHESIS_VENV). Needs python3 with the venv module and access to PyPI
# (or a pip configured mirror) the first time only.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
case "$target" in /*) ;; *) target="$repo/$target" ;; esac
venv="${HEADLOCK_SCHEMATHESIS_VENV:-$target/schemathesis-venv}"
st="$venv/bin/schemathesis"
# The pin: the test relies on this version's CLI options. Bump it (and the stamp) together.
pin="schemathesis==4.32.5"
stamp_text="$pin v1"

ready() {
    [ -x "$st" ] && [ -f "$venv/.headlock-ready" ] \
        && [ "$(cat "$venv/.headlock-ready")" = "$stamp_text" ]
}

if ready; then
    echo "$st"
    exit 0
fi

mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if ! ready; then
    echo "schemathesis-env: creating $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$pin" >&2
    "$st" --version >&2
    echo "$stamp_text" >"$venv/.headlock-ready"
fi
echo "$st"
