#!/usr/bin/env bash
# Creates (idempotently) a Python virtual environment with PyKMIP 0.11.0 from PyPI and
# prints its path on stdout. Used by the KMIP interoperability tests and the
# kmip_latency benchmark (through crates/testkit), and by .ci/run.
#
#   scripts/pykmip-env.sh            -> prints e.g. /work/main/target/pykmip-venv
#   HEADLOCK_PYKMIP_VENV=/x scripts/pykmip-env.sh
#
# Parallel callers (cargo runs test binaries concurrently) are serialised with flock on
# a lock file next to the venv; a venv is marked complete only after a smoke import, so
# an interrupted install is redone rather than half-used.
#
# Pins: the versions below are the set this project tested PyKMIP 0.11.0 with on
# Python 3.11 (server and ProxyKmipClient: create, activate, get, get attributes,
# locate, revoke, destroy). PyKMIP 0.11.0 declares open-ended requirements; newer
# `cryptography` releases drop the legacy ciphers that PyKMIP's crypto engine imports at
# module load (TripleDES, Camellia, ARC4, OFB/CFB modes: deprecated since 43, warned as
# "will be removed"), so exact pins keep a fresh machine on the tested set.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${HEADLOCK_PYKMIP_VENV:-$repo_root/target/pykmip-venv}"
python="${HEADLOCK_PYTHON:-python3}"
stamp_value="pykmip-0.11.0;cryptography-50.0.2;sqlalchemy-2.1.9;six-1.17.0;requests-2.34.2"

mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9

if [[ -f "$venv/.headlock-ready" ]] && [[ "$(cat "$venv/.headlock-ready")" == "$stamp_value" ]] \
    && [[ -x "$venv/bin/pykmip-server" ]]; then
    echo "$venv"
    exit 0
fi

echo "pykmip-env: creating $venv" >&2
rm -rf "$venv"
"$python" -m venv "$venv" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    'PyKMIP==0.11.0' \
    'cryptography==50.0.2' \
    'SQLAlchemy==2.1.9' \
    'six==1.17.0' \
    'requests==2.34.2' >&2
# Smoke test: the server module and the pie client import (this is where a broken
# cryptography or SQLAlchemy would fail).
PYTHONWARNINGS=ignore "$venv/bin/python" -c \
    'import kmip.services.server.server, kmip.pie.client, sqlalchemy, cryptography' >&2
echo "$stamp_value" > "$venv/.headlock-ready"
echo "$venv"
