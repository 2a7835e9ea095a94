#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, every test of the workspace,
# then a short fault soak (scripts/soak.sh). Tests that need third-party servers
# (PyKMIP, and Python digest clients) install them into virtual environments under target/ themselves, through
# scripts/pykmip-env.sh and scripts/http-clients-env.sh. The multi-node and store tests
# need PostgreSQL and an S3-compatible server: this script starts a throwaway
# PostgreSQL (scripts/postgres.sh: Debian's postgresql, installed when missing) and moto
# (scripts/moto.sh: moto[server] from PyPI in a venv), both on loopback, hands their
# URLs to the tests, and stops both by PID when it ends, however it ends. So it needs
# only the Rust toolchain, curl, openssl (the command: a test encrypts a KMIP client key
# with it, as an operator would) and python3 with venv support; it installs the Debian
# packages for the last three when they are missing and it runs as root, and Debian's
# chromium and chromium-driver for the console's browser tests (scripts/chromium.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
if ! command -v python3 >/dev/null 2>&1; then
  need_apt+=(python3 python3-venv)
elif ! python3 -m venv --help >/dev/null 2>&1; then
  need_apt+=(python3-venv)
fi
if ((${#need_apt[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test.sh: installing ${need_apt[*]}" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
  else
    echo "test.sh: please install: ${need_apt[*]}" >&2
    exit 1
  fi
fi

echo "== cargo fmt --check" >&2
cargo fmt --all --check
echo "== cargo clippy" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== test services: PostgreSQL and moto (S3)" >&2
trap 'scripts/postgres.sh stop || true; scripts/moto.sh stop || true' EXIT
HEADLOCK_TEST_POSTGRES_URL="$(scripts/postgres.sh start)"
HEADLOCK_TEST_S3_ENDPOINT="$(scripts/moto.sh start)"
export HEADLOCK_TEST_POSTGRES_URL HEADLOCK_TEST_S3_ENDPOINT
# The web console's browser tests drive Debian's chromium through chromedriver; under
# CI=true they fail rather than skip when it is missing.
echo "== chromium and chromedriver" >&2
scripts/chromium.sh
export CI=true
echo "== cargo test" >&2
cargo test --workspace --locked "$@"
# The run above builds headlock-service with its `test-hooks` feature (the headlock
# crate's tests crash the binary at chosen points and move its clock); a release build
# has no hooks. This checks that a build without the feature ignores the variables.
echo "== cargo test: headlock-service without test hooks" >&2
cargo test -p headlock-service --lib --locked test_hooks::without_the_feature
# The fault soak, short: a minute of traffic while the service and the KMIP server are
# killed at random, then every acknowledged snapshot, rotation and key is checked
# (scripts/soak.sh; the long run is by hand). Here rather than in `cargo test`: it owns
# and kills processes for a minute and must not share the machine with the parallel
# tests, whose time limits it would strain.
echo "== fault soak (60 s, seed 1)" >&2
scripts/soak.sh --duration 60 --seed 1
