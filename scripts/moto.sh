#!/usr/bin/env bash
# A local S3 for the chunk-store tests: moto's server (moto[server] from PyPI, in a venv
# under target/) on 127.0.0.1 and a free port, in the background.
#
#   scripts/moto.sh start   -> installs if needed, starts if not running, prints the URL
#   scripts/moto.sh url     -> prints the URL of the running server (exit 1 if none)
#   scripts/moto.sh stop    -> kills the server by its PID (no-op if none)
#
# `start` is idempotent and serialised with flock, so parallel test binaries share one
# server (each test makes a bucket of its own). State lives in target/test-services/:
# moto.url, moto.pid and moto.log. The venv is target/moto-venv (HEADLOCK_MOTO_VENV),
# marked complete only after a smoke import, so an interrupted install is redone.
#
# Pin: moto 5.2.5, the newest release when this was written. It answers
# `If-None-Match: *` on PutObject and on CompleteMultipartUpload with 412 when the key
# exists, which the conditional-write tests rely on. Its other requirements (boto3,
# flask, ...) are ranges resolved by pip; the smoke test below catches a broken set.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${HEADLOCK_MOTO_VENV:-$repo_root/target/moto-venv}"
state="$repo_root/target/test-services"
python="${HEADLOCK_PYTHON:-python3}"
moto_pin="5.2.5"
stamp_value="moto[server]-$moto_pin"
start_timeout_s=60

mkdir -p "$state"
url_file="$state/moto.url"
pid_file="$state/moto.pid"
log_file="$state/moto.log"

log() { echo "moto.sh: $*" >&2; }

# Whether $1 is the PID of a moto_server (and not of a process that reused the PID of
# one recorded before a reboot).
is_moto() {
    [[ "$1" =~ ^[0-9]+$ ]] && kill -0 "$1" 2>/dev/null \
        && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q moto_server
}

# Whether the server recorded in the state files is alive and answers HTTP.
running() {
    [[ -f "$pid_file" && -f "$url_file" ]] || return 1
    is_moto "$(cat "$pid_file")" || return 1
    answers "$(cat "$url_file")"
}

# Whether an HTTP server answers at $1 (any status: moto says 200 to GET /).
answers() {
    "$venv/bin/python" - "$1" <<'EOF' 2>/dev/null
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1] + "/", timeout=2).read()
except urllib.error.HTTPError:
    pass
EOF
}

ensure_python_venv() {
    if "$python" -m venv --help >/dev/null 2>&1 && "$python" -c 'import ensurepip' 2>/dev/null; then
        return
    fi
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        log "installing python3-venv"
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2
    else
        log "python3 with venv support is needed (apt-get install python3-venv)"
        exit 1
    fi
}

install() {
    if [[ -f "$venv/.headlock-ready" ]] && [[ "$(cat "$venv/.headlock-ready")" == "$stamp_value" ]] \
        && [[ -x "$venv/bin/moto_server" ]]; then
        return
    fi
    ensure_python_venv
    log "creating $venv"
    rm -rf "$venv"
    "$python" -m venv "$venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "moto[server]==$moto_pin" >&2
    "$venv/bin/python" -c 'import moto.server, flask, boto3' >&2
    echo "$stamp_value" > "$venv/.headlock-ready"
}

free_port() {
    "$venv/bin/python" -c \
        'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start() {
    exec 9>"$state/moto.lock"
    flock 9
    install
    if running; then
        cat "$url_file"
        return
    fi
    rm -f "$url_file" "$pid_file"
    local attempt port url pid
    for attempt in 1 2 3; do
        port="$(free_port)"
        url="http://127.0.0.1:$port"
        # setsid: its own session and process group, detached from the caller's, so
        # it outlives the test binary that started it (the lock fd is not inherited).
        setsid "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" \
            </dev/null >>"$log_file" 2>&1 9>&- &
        pid=$!
        local deadline=$((SECONDS + start_timeout_s))
        while ((SECONDS < deadline)); do
            if ! kill -0 "$pid" 2>/dev/null; then
                break
            fi
            if answers "$url"; then
                echo "$pid" > "$pid_file"
                echo "$url" > "$url_file"
                log "moto $moto_pin at $url (pid $pid)"
                echo "$url"
                return
            fi
            sleep 0.2
        done
        kill "$pid" 2>/dev/null || true
        log "attempt $attempt: moto_server on port $port did not answer; log tail:"
        tail -n 20 "$log_file" >&2 || true
    done
    log "could not start moto_server"
    exit 1
}

stop() {
    exec 9>"$state/moto.lock"
    flock 9
    if [[ -f "$pid_file" ]]; then
        local pid
        pid="$(cat "$pid_file")"
        if is_moto "$pid"; then
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 50); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            kill -KILL "$pid" 2>/dev/null || true
            log "stopped pid $pid"
        fi
    fi
    rm -f "$url_file" "$pid_file"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    url)
        if [[ -x "$venv/bin/python" ]] && running; then
            cat "$url_file"
        else
            exit 1
        fi
        ;;
    *)
        echo "usage: $0 start|stop|url" >&2
        exit 2
        ;;
esac
