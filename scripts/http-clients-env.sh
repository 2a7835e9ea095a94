#!/usr/bin/env bash
# Creates (once) a Python venv with the HTTP clients the digest-auth tests drive:
# `requests` (HTTPDigestAuth) and `httpx` (DigestAuth). Idempotent and safe to run
# from parallel tests: a flock serialises creation, and a finished venv is reused.
#
# Usage: scripts/http-clients-env.sh   -> prints the venv's python path on stdout.
# Location: ${CARGO_TARGET_DIR:-<repo>/target}/http-clients-venv (override with
# HEADLOCK_HTTP_CLIENTS_VENV). Needs python3 with the venv module and access to PyPI
# (or a pip configured mirror) the first time only.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
case "$target" in /*) ;; *) target="$repo/$target" ;; esac
venv="${HEADLOCK_HTTP_CLIENTS_VENV:-$target/http-clients-venv}"
python="$venv/bin/python"
# Bump when the pins change so existing venvs are rebuilt.
stamp_text="requests>=2.31,<3 httpx>=0.27,<1 v1"

ready() {
    [ -x "$python" ] && [ -f "$venv/.headlock-ready" ] \
        && [ "$(cat "$venv/.headlock-ready")" = "$stamp_text" ] \
        && "$python" -c 'import requests, httpx' >/dev/null 2>&1
}

if ready; then
    echo "$python"
    exit 0
fi

mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if ! ready; then
    echo "http-clients-env: creating $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$python" -m pip install --quiet --disable-pip-version-check \
        'requests>=2.31,<3' 'httpx>=0.27,<1' >&2
    "$python" -c 'import requests, httpx' >&2
    echo "$stamp_text" >"$venv/.headlock-ready"
fi
echo "$python"
