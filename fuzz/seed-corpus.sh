#!/bin/sh
# Seeds fuzz/corpus/decode_message/ with the binary form of every KMIP test vector
# (crates/kmip/tests/vectors/*.hex: drop '#' lines, join, hex-decode).
set -eu
cd "$(dirname "$0")"
mkdir -p corpus/decode_message
for f in ../crates/kmip/tests/vectors/*.hex; do
    name=$(basename "$f" .hex)
    grep -v '^#' "$f" | tr -d ' \n' | python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex(sys.stdin.read()))' \
        > "corpus/decode_message/$name"
done
echo "seeded $(ls corpus/decode_message | wc -l) inputs"
