#!/bin/sh
# Seeds fuzz/corpus/<target>/ for every fuzz target. Re-run it instead of committing
# corpora; it needs python3, curl and GNU tar, and cargo for the snapshot formats.
#
# decode_message        the binary form of every KMIP test vector
#                       (crates/kmip/tests/vectors/*.hex: drop '#' lines, join, hex-decode)
# digest_authorization  the Authorization headers curl --digest really sends (MD5 and
#                       SHA-256, with and without opaque, a query), plus hand-written forms
# tar_stream            archives made by GNU tar: gnu, ustar, pax, v7 formats, long names,
#                       long link targets, symlinks, a hard link, an empty file
# manifest, pack        made by headlock-core's own encoders
#                       (crates/headlock-core/examples/fuzz_seeds.rs, fixed key)
set -eu
cd "$(dirname "$0")"
corpus=$PWD/corpus
mkdir -p "$corpus/decode_message" "$corpus/digest_authorization" "$corpus/tar_stream"

for f in ../crates/kmip/tests/vectors/*.hex; do
    name=$(basename "$f" .hex)
    grep -v '^#' "$f" | tr -d ' \n' | python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex(sys.stdin.read()))' \
        > "$corpus/decode_message/$name"
done

# Digest: a one-shot server that challenges, then records the Authorization header
# curl answers with.
python3 - "$corpus/digest_authorization" <<'PY'
import http.server, os, subprocess, sys, threading

out = sys.argv[1]
seen = []

class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        auth = self.headers.get("Authorization")
        if auth is None:
            alg, opaque = self.server.challenge
            self.send_response(401)
            extra = f', opaque="{opaque}"' if opaque else ""
            self.send_header("WWW-Authenticate",
                f'Digest realm="MMS Public API", qop="auth", nonce="AAABjD3q4Zk1d9Kp2Qx7LmN0oPqRsTuVwXyZ012345",'
                f' algorithm={alg}{extra}')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        seen.append(auth)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass

srv = http.server.HTTPServer(("127.0.0.1", 0), H)
threading.Thread(target=srv.serve_forever, daemon=True).start()
port = srv.server_address[1]
cases = [("MD5", "", "alice", "/api/public/v1.0/groups"),
         ("SHA-256", "", "bob@example.com", "/api/public/v1.0/groups/5f1a2b3c4d5e6f7a8b9c0d1e/clusters?pageNum=2&itemsPerPage=100"),
         ("MD5", "b2BhcXVl", "ops-user", "/api/public/v1.0/groups/x/backupConfigs/y"),
         ("SHA-256", "b2BhcXVl", "KXZQWUTR", "/api/public/v1.0/orgs")]
for alg, opaque, user, path in cases:
    srv.challenge = (alg, opaque)
    subprocess.run(["curl", "-s", "-o", "/dev/null", "--digest", "-u", f"{user}:0123-api-key",
                    f"http://127.0.0.1:{port}{path}"], check=True)
srv.shutdown()
# Hand-written: unquoted values, odd spacing and case, escapes, an unknown parameter.
seen += [
    'digest username=alice,realm="MMS Public API",nonce=abc,uri=/x,response=0123456789abcdef0123456789abcdef,qop=auth,nc=1,cnonce=xyz',
    'Digest  username = "a\\"b" , realm="r", nonce="n", uri="/a?b=c", algorithm="sha-256",'
    ' response="' + "ab" * 32 + '", qop="AUTH", nc="00000001", cnonce="c", ext="ignored",,',
]
for i, h in enumerate(seen):
    with open(os.path.join(out, f"header-{i}"), "w") as f:
        f.write(h)
PY

# Tar: real archives from GNU tar.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(
    cd "$work"
    mkdir -p tree/db/journal tree/d/$(printf 'n%.0s' $(seq 1 120))
    printf 'hello' > tree/db/collection-0.wt
    : > tree/db/empty
    head -c 3000 /dev/zero | tr '\0' 'x' > tree/db/journal/WiredTigerLog.0000000001
    ln -s collection-0.wt tree/db/latest
    ln -s "../$(printf 'l%.0s' $(seq 1 150))" tree/db/longlink
    ln tree/db/collection-0.wt tree/db/hardlink
    for fmt in gnu ustar pax v7 oldgnu; do
        tar --format=$fmt -C tree -cf "$corpus/tar_stream/tree-$fmt.tar" . 2>/dev/null || true
    done
    tar --format=pax --pax-option=mtime:=1700000000.5 -C tree -cf "$corpus/tar_stream/pax-mtime.tar" db
    tar --format=gnu -C tree -cf "$corpus/tar_stream/plain.tar" db/collection-0.wt db/latest
    tar --format=gnu --sparse -C tree -cf "$corpus/tar_stream/sparse.tar" db/journal
)

# Manifests and packs: the crate's own encoders (a debug build of headlock-core).
(cd .. && cargo run -q -p headlock-core --example fuzz_seeds -- "$corpus")

for t in "$corpus"/*/; do
    echo "seeded $(ls "$t" | wc -l) inputs in $t"
done
