#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests: one per work tree, on 127.0.0.1 only, with
# trust authentication on loopback and the durability settings (fsync,
# synchronous_commit, full_page_writes) left at their defaults, i.e. on.
#
#   scripts/postgres.sh start   idempotent: starts the server unless it runs; prints its admin URL
#   scripts/postgres.sh url     prints the admin URL of the running server (fails if none)
#   scripts/postgres.sh stop    stops the server by its PID, waits for it, removes its data
#
# State lives in target/test-services/ (or $HEADLOCK_TEST_SERVICES):
#   postgres.url      admin URL, e.g. postgres://postgres@127.0.0.1:41234/postgres
#   postgres.pid      PID of the postmaster
#   postgres.datadir  its data directory (under /tmp, so that the server's user can reach it)
#   postgres.lock     flock that serialises start and stop (cargo runs test binaries, and
#                     tests, in parallel)
#
# The server binaries are looked up on PATH, then in /usr/lib/postgresql/*/bin (newest
# first). When there are none and this runs as root, Debian's `postgresql` package is
# installed with apt-get (without the "main" cluster Debian would otherwise create and
# start on port 5432). initdb refuses to run as root, so as root the server runs as the
# `postgres` user (created by that package; a dedicated system user otherwise).
#
# Tests (crates/testkit, PostgresDatabase) run `start` themselves when
# HEADLOCK_TEST_POSTGRES_URL is not set, and give every test a database of its own.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state="${HEADLOCK_TEST_SERVICES:-$repo_root/target/test-services}"
url_file="$state/postgres.url"
pid_file="$state/postgres.pid"
datadir_file="$state/postgres.datadir"

die() {
    echo "postgres.sh: $*" >&2
    exit 1
}

# Whether $1 is the PID of a running postgres process.
is_postgres() {
    [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null \
        && [[ "$(cat "/proc/$1/comm" 2>/dev/null)" == postgres* ]]
}

running_pid() {
    local pid
    pid="$(cat "$pid_file" 2>/dev/null || true)"
    if is_postgres "$pid" && [[ -s "$url_file" ]]; then
        echo "$pid"
    fi
}

# The directory holding initdb, pg_ctl and postgres.
find_bindir() {
    local initdb dir
    if initdb="$(command -v initdb 2>/dev/null)"; then
        dirname "$(readlink -f "$initdb")"
        return 0
    fi
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

install_postgresql() {
    if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        die "PostgreSQL's server binaries (initdb, pg_ctl) are not installed; install them \
(Debian: apt-get install postgresql) or point HEADLOCK_TEST_POSTGRES_URL at a server"
    fi
    echo "postgres.sh: installing Debian's postgresql" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    # postgresql-common first, so that installing the server does not create (and start)
    # a cluster of its own on port 5432.
    apt-get install -y -qq postgresql-common >&2
    if [[ -f /etc/postgresql-common/createcluster.conf ]]; then
        sed -i -E 's/^#?[[:space:]]*create_main_cluster[[:space:]]*=.*/create_main_cluster = false/' \
            /etc/postgresql-common/createcluster.conf
    fi
    apt-get install -y -qq postgresql >&2
}

# Runs a command as the server's user ($run_as; empty: the current user).
as_server_user() {
    if [[ -n "$run_as" ]]; then
        runuser -u "$run_as" -- "$@"
    else
        "$@"
    fi
}

free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
        return
    fi
    local port
    while :; do
        port=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
}

# Removes a data directory this script made (and nothing else).
remove_datadir() {
    local dir="$1"
    case "$dir" in
        /tmp/headlock-postgres.*) rm -rf -- "$dir" ;;
        "") ;;
        *) echo "postgres.sh: not removing unexpected data directory $dir" >&2 ;;
    esac
}

start() {
    local pid
    pid="$(running_pid)"
    if [[ -n "$pid" ]]; then
        cat "$url_file"
        return 0
    fi
    # A server that died (or a machine that rebooted) leaves stale files behind.
    remove_datadir "$(cat "$datadir_file" 2>/dev/null || true)"
    rm -f "$url_file" "$pid_file" "$datadir_file"

    local bindir
    if ! bindir="$(find_bindir)"; then
        install_postgresql
        bindir="$(find_bindir)" || die "PostgreSQL was installed but initdb is still not found"
    fi

    run_as=""
    if [[ "$(id -u)" == 0 ]]; then
        if id postgres >/dev/null 2>&1; then
            run_as=postgres
        else
            run_as=headlock-pg
            id "$run_as" >/dev/null 2>&1 \
                || useradd --system --no-create-home --shell /usr/sbin/nologin "$run_as"
        fi
    fi

    local datadir
    datadir="$(mktemp -d /tmp/headlock-postgres.XXXXXX)"
    echo "$datadir" > "$datadir_file"
    chmod 700 "$datadir"
    [[ -n "$run_as" ]] && chown "$run_as" "$datadir"

    echo "postgres.sh: initdb in $datadir ($bindir)" >&2
    # cd: runuser keeps the working directory, which the server's user may not be able
    # to read.
    (cd / && as_server_user "$bindir/initdb" -D "$datadir/data" -U postgres --auth=trust \
        --encoding=UTF8 --no-locale --no-instructions >"$datadir/initdb.log" 2>&1) \
        || { cat "$datadir/initdb.log" >&2; die "initdb failed"; }

    local port attempt
    for attempt in 1 2 3 4 5; do
        port="$(free_port)"
        # Loopback only; the Unix socket goes in the data directory, not /var/run. `9>&-`:
        # the server must not inherit the lock, or it would hold it for its whole life.
        if (cd / && as_server_user "$bindir/pg_ctl" -D "$datadir/data" -l "$datadir/server.log" \
            -w -t 60 -o "-c listen_addresses=127.0.0.1 -p $port -k $datadir -c max_connections=200" \
            start >&2 9>&-); then
            break
        fi
        if [[ "$attempt" == 5 ]]; then
            tail -n 20 "$datadir/server.log" >&2 || true
            die "the server did not start"
        fi
        echo "postgres.sh: port $port failed; trying another" >&2
    done

    pid="$(head -n 1 "$datadir/data/postmaster.pid")"
    is_postgres "$pid" || die "no postmaster behind PID $pid"
    "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" -t 30 || die "the server does not accept connections"

    echo "$pid" > "$pid_file"
    echo "postgres://postgres@127.0.0.1:$port/postgres" > "$url_file.tmp"
    mv "$url_file.tmp" "$url_file"
    echo "postgres.sh: PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port, PID $pid" >&2
    cat "$url_file"
}

stop() {
    local pid
    pid="$(cat "$pid_file" 2>/dev/null || true)"
    if is_postgres "$pid"; then
        # SIGINT: fast shutdown (disconnects clients, then a clean checkpoint).
        kill -INT "$pid"
        local waited=0
        while kill -0 "$pid" 2>/dev/null; do
            if ((waited == 600)); then
                echo "postgres.sh: PID $pid still running after 60 s; SIGQUIT" >&2
                kill -QUIT "$pid" 2>/dev/null || true
            fi
            sleep 0.1
            waited=$((waited + 1))
        done
        echo "postgres.sh: stopped PID $pid" >&2
    fi
    remove_datadir "$(cat "$datadir_file" 2>/dev/null || true)"
    rm -f "$url_file" "$pid_file" "$datadir_file"
}

command="${1:-}"
case "$command" in
    start | stop)
        mkdir -p "$state"
        exec 9>"$state/postgres.lock"
        flock -w 600 9 || die "timed out waiting for $state/postgres.lock"
        "$command"
        ;;
    url)
        [[ -n "$(running_pid)" ]] || die "no server running (scripts/postgres.sh start)"
        cat "$url_file"
        ;;
    *)
        echo "usage: $0 start|stop|url" >&2
        exit 2
        ;;
esac
