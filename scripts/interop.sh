#!/usr/bin/env bash
# Interoperability with a second independent KMIP server, Cosmian KMS (issue 12 item 5).
# By hand, not in scripts/test.sh: building it takes long (about 550 crates).
#
# 1. Builds cosmian_kms (crate cosmian_kms_server 5.28.0, feature non-fips) once into a
#    cache ($HEADLOCK_INTEROP_CACHE, default target/interop). The crate's own build
#    downloads OpenSSL unless OPENSSL_DIR names one; this script points it at a folder
#    of links to Debian's OpenSSL 3 (libssl-dev; headers, libraries, ssl/openssl.cnf and
#    lib/ossl-modules). `cargo install` cannot build the published crate (its `non-fips`
#    feature names a dev-dependency), so the script fetches the .crate file, checks its
#    SHA-256 and builds it with its own Cargo.lock (--locked).
# 2. Runs the interop tests (crates/headlock/tests/interop_cosmian.rs, ignored in
#    `cargo test`) with HEADLOCK_COSMIAN_KMS naming the binary.
#
# Usage: scripts/interop.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=5.28.0
SHA256=9b209aff1990f1f2303f07ccdfab498064f4e27559e7723d6af159c79c4785fb
CACHE=${HEADLOCK_INTEROP_CACHE:-$PWD/target/interop}
SRC=$CACHE/cosmian_kms_server-$VERSION
BIN=$CACHE/target/release/cosmian_kms

if [ ! -x "$BIN" ]; then
  need_apt=()
  [ -e /usr/include/openssl/ssl.h ] || need_apt+=(libssl-dev)
  command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
  command -v curl >/dev/null 2>&1 || need_apt+=(curl)
  if ((${#need_apt[@]})); then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "interop.sh: installing ${need_apt[*]}" >&2
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
    else
      echo "interop.sh: please install: ${need_apt[*]}" >&2
      exit 1
    fi
  fi
  mkdir -p "$CACHE"
  if [ ! -d "$SRC" ]; then
    crate=$CACHE/cosmian_kms_server-$VERSION.crate
    curl -sSfL -o "$crate" \
      "https://static.crates.io/crates/cosmian_kms_server/cosmian_kms_server-$VERSION.crate"
    echo "$SHA256  $crate" | sha256sum -c --quiet
    tar -C "$CACHE" -xzf "$crate"
  fi
  # Its own workspace root: a cache inside another workspace (the default, target/ of
  # this one) would otherwise make cargo take it for a member of that workspace.
  grep -q '^\[workspace\]' "$SRC/Cargo.toml" || printf '\n[workspace]\n' >> "$SRC/Cargo.toml"
  # OpenSSL as the crate's build expects it, from Debian's packages.
  multiarch=$(gcc -print-multiarch)
  ossl=$CACHE/openssl
  mkdir -p "$ossl/include/openssl" "$ossl/lib" "$ossl/ssl"
  for f in /usr/include/openssl/* "/usr/include/$multiarch/openssl/"*; do
    ln -sf "$f" "$ossl/include/openssl/"
  done
  for f in libssl.so libcrypto.so libssl.a libcrypto.a ossl-modules engines-3; do
    [ -e "/usr/lib/$multiarch/$f" ] && ln -sf "/usr/lib/$multiarch/$f" "$ossl/lib/"
  done
  ln -sf /usr/lib/ssl/openssl.cnf "$ossl/ssl/openssl.cnf"
  echo "interop.sh: building cosmian_kms $VERSION (long: about 550 crates)" >&2
  (cd "$SRC" && OPENSSL_DIR=$ossl CARGO_TARGET_DIR=$CACHE/target \
    cargo build --release --locked --features non-fips --bin cosmian_kms)
fi
"$BIN" --version >&2 || true
HEADLOCK_COSMIAN_KMS=$BIN exec cargo test --locked -p headlock --test interop_cosmian "$@" -- --ignored --test-threads 1
