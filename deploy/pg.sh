#!/usr/bin/env bash
# Manages a private PostgreSQL cluster for lmdm (quickstart, tests, CI).
#
# The cluster lives entirely in one directory: DIR/data (the cluster),
# DIR/run (the unix socket; nothing listens on TCP) and DIR/postgresql.log.
# The database superuser is always `lmdm`, so the conninfo does not depend on
# who ran the script. PostgreSQL refuses to run as root: when this script runs
# as root it creates (if needed) a system user `lmdm` and runs the server as
# that user; otherwise the server runs as the calling user.
set -euo pipefail

PROG=${0##*/}
DB_SUPERUSER=lmdm
RUN_USER=lmdm   # only used when invoked as root

usage() {
    cat <<EOF
Usage: $PROG COMMAND [ARGS]

Commands:
  init [--fast] DIR      initdb into DIR/data if it is not there yet (idempotent).
                         The server listens only on a unix socket in DIR/run.
                         Port: \$PGPORT (default 5432), fixed at init time.
                         --fast: fsync, synchronous_commit and full_page_writes
                         off (tests only: a crash can lose or corrupt data).
  start DIR              start the server (log: DIR/postgresql.log); no-op if running
  stop DIR               stop the server (fast shutdown); no-op if not running
  status DIR             print whether the server runs; exit 0 if it does, 3 if not
  conninfo DIR [DBNAME]  print a libpq conninfo for the cluster (default dbname: lmdm)
  createdb DIR NAME      create database NAME if it does not exist (server must run)
  -h, --help             this help

Run as root, the server runs as the system user '$RUN_USER' (created if needed),
which must be able to reach DIR. Server binaries are found with
'pg_config --bindir' or under /usr/lib/postgresql/*/bin.
EOF
}

die() {
    echo "$PROG: $*" >&2
    exit 1
}

# Server binaries: pg_config's bindir if it has initdb (a self-built or
# PGDG install), else the newest Debian/Ubuntu versioned directory.
find_bindir() {
    local d
    if command -v pg_config >/dev/null 2>&1; then
        d=$(pg_config --bindir 2>/dev/null || true)
        if [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
            echo "$d"
            return 0
        fi
    fi
    d=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -t/ -k5,5n | tail -n 1)
    if [ -n "$d" ] && [ -x "$d/initdb" ]; then
        echo "$d"
        return 0
    fi
    die "PostgreSQL server binaries not found (no initdb via pg_config --bindir or in /usr/lib/postgresql/*/bin); run deploy/install-deps.sh"
}

is_root() { [ "$(id -u)" -eq 0 ]; }

# Run a command as the user that owns the cluster. The working directory is
# DIR so that neither initdb nor the server trips over an unreadable cwd.
as_owner() {
    if is_root; then
        (cd "$DIR" && runuser -u "$RUN_USER" -- "$@")
    else
        (cd "$DIR" && "$@")
    fi
}

ensure_run_user() {
    id -u "$RUN_USER" >/dev/null 2>&1 && return 0
    command -v useradd >/dev/null 2>&1 || die "cannot create user '$RUN_USER': useradd not found"
    local group_opt=--user-group
    getent group "$RUN_USER" >/dev/null 2>&1 && group_opt="--gid $RUN_USER"
    # shellcheck disable=SC2086
    if ! useradd --system $group_opt --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin "$RUN_USER" 2>/dev/null; then
        # Another pg.sh running at the same moment may have created it.
        id -u "$RUN_USER" >/dev/null 2>&1 || die "cannot create system user '$RUN_USER'"
        return 0
    fi
    echo "$PROG: created system user '$RUN_USER' to run PostgreSQL" >&2
}

# DIR as an absolute path without requiring it to exist yet.
set_dir() {
    [ -n "${1:-}" ] || die "missing DIR (see --help)"
    case "$1" in
        /*) DIR=$1 ;;
        *) DIR=$PWD/$1 ;;
    esac
    DIR=${DIR%/}
    [ -n "$DIR" ] || die "DIR must not be /"
    DATA=$DIR/data
    RUNDIR=$DIR/run
    LOGFILE=$DIR/postgresql.log
    if [ -d "$DATA" ] && [ ! -x "$DATA" ]; then
        die "cannot read $DATA (owned by $(stat -c %U "$DATA")); run as root or as that user"
    fi
    # A cluster made earlier by an ordinary user keeps running as that user.
    if is_root && [ -d "$DATA" ]; then
        local owner
        owner=$(stat -c %U "$DATA")
        [ "$owner" = root ] || [ "$owner" = UNKNOWN ] || RUN_USER=$owner
    fi
}

require_cluster() {
    [ -f "$DATA/PG_VERSION" ] || die "no cluster in $DATA (run: $PROG init $DIR)"
}

# The port is fixed at init time in postgresql.conf; read it back from there.
cluster_port() {
    local p
    p=$(sed -n "s/^port = \([0-9][0-9]*\).*/\1/p" "$DATA/postgresql.conf" 2>/dev/null | tail -n 1)
    echo "${p:-5432}"
}

# The socket path (DIR/run/.s.PGSQL.PORT) must fit in sun_path (107 bytes + NUL).
check_socket_path() {
    local port=$1 sock="$RUNDIR/.s.PGSQL.$1"
    if [ "${#sock}" -gt 107 ]; then
        die "socket path '$sock' is ${#sock} bytes; unix sockets allow at most 107: use a shorter DIR"
    fi
}

# As root, make sure the server user can reach DIR at all (e.g. not under
# /root, which is mode 700), before handing DIR over to it. DIR itself is
# chowned to that user, so only its parents matter.
check_traversable() {
    is_root || return 0
    # Directories that do not exist yet will be created by root with mode 755;
    # what matters is the nearest one that exists.
    local p
    p=$(dirname "$DIR")
    while [ ! -e "$p" ]; do p=$(dirname "$p"); done
    if ! runuser -u "$RUN_USER" -- test -x "$p" 2>/dev/null; then
        die "user '$RUN_USER' cannot reach $DIR (a parent directory is not traversable by other users, e.g. /root is mode 700); choose a DIR elsewhere, e.g. under /var/lib or /tmp, or make its parents o+x"
    fi
}

cmd_init() {
    local fast=0 arg dirarg=""
    for arg in "$@"; do
        case "$arg" in
            --fast) fast=1 ;;
            -*) die "init: unknown option '$arg'" ;;
            *)
                [ -z "$dirarg" ] || die "init: too many arguments"
                dirarg=$arg ;;
        esac
    done
    set_dir "$dirarg"
    local port=${PGPORT:-5432}
    case "$port" in
        '' | *[!0-9]*) die "PGPORT='$port' is not a port number" ;;
    esac
    if [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then die "PGPORT=$port is out of range"; fi

    if [ -f "$DATA/PG_VERSION" ]; then
        port=$(cluster_port)
        check_socket_path "$port"
        if is_root; then
            ensure_run_user
            check_traversable
            mkdir -p "$RUNDIR"
            chown "$RUN_USER:" "$DIR" "$RUNDIR"
        else
            mkdir -p "$RUNDIR"
        fi
        echo "$PROG: cluster already initialised in $DATA"
        return 0
    fi
    if [ -e "$DATA" ] && [ -n "$(ls -A "$DATA" 2>/dev/null)" ]; then
        die "$DATA exists, is not empty and is not a PostgreSQL cluster; refusing to touch it"
    fi
    check_socket_path "$port"

    local bindir
    bindir=$(find_bindir)
    if is_root; then
        ensure_run_user
        check_traversable
    fi
    mkdir -p "$RUNDIR"
    chmod 700 "$RUNDIR"
    if is_root; then
        chown "$RUN_USER:" "$DIR" "$RUNDIR"
        [ -e "$DATA" ] && chown -R "$RUN_USER:" "$DATA"
        # The server user creates DATA itself, so DIR must be writable by it.
        runuser -u "$RUN_USER" -- test -w "$DIR" || die "user '$RUN_USER' cannot write to $DIR"
    fi

    echo "$PROG: initdb into $DATA"
    local out
    if ! out=$(as_owner "$bindir/initdb" -D "$DATA" -U "$DB_SUPERUSER" --auth=trust \
        --encoding=UTF8 --locale=C.UTF-8 2>&1); then
        echo "$out" >&2
        die "initdb failed"
    fi

    # Appended settings win over the commented defaults above them.
    {
        echo
        echo "# --- lmdm private cluster (deploy/pg.sh) ---"
        echo "listen_addresses = ''"
        echo "unix_socket_directories = '$RUNDIR'"
        echo "port = $port"
        echo "unix_socket_permissions = 0700"
        if [ "$fast" -eq 1 ]; then
            echo "# --fast: for throwaway test clusters only"
            echo "fsync = off"
            echo "synchronous_commit = off"
            echo "full_page_writes = off"
        fi
    } >>"$DATA/postgresql.conf"
    # Only local (unix socket) connections exist; trust them. The socket
    # directory is private to the cluster owner (mode 700).
    cat >"$DATA/pg_hba.conf" <<EOF
# lmdm private cluster: unix socket only, in a directory only the owner can enter.
local all all trust
EOF
    echo "$PROG: cluster ready in $DATA (socket $RUNDIR, port $port$([ "$fast" -eq 1 ] && echo ", fast mode"))"
}

# 0 if the server of this cluster is running.
server_running() {
    local bindir=$1
    as_owner "$bindir/pg_ctl" status -D "$DATA" >/dev/null 2>&1
}

cmd_start() {
    [ "$#" -eq 1 ] || die "usage: $PROG start DIR"
    set_dir "$1"
    require_cluster
    local bindir
    bindir=$(find_bindir)
    if is_root; then
        ensure_run_user
        check_traversable
    fi
    check_socket_path "$(cluster_port)"
    mkdir -p "$RUNDIR"
    touch "$LOGFILE"
    if is_root; then
        chown "$RUN_USER:" "$RUNDIR" "$LOGFILE"
    fi
    if server_running "$bindir"; then
        echo "$PROG: server already running ($DATA)"
        return 0
    fi
    if ! as_owner "$bindir/pg_ctl" start -w -t 60 -D "$DATA" -l "$LOGFILE" >/dev/null; then
        echo "$PROG: last lines of $LOGFILE:" >&2
        tail -n 20 "$LOGFILE" >&2 || true
        die "server failed to start"
    fi
    echo "$PROG: server started (socket $RUNDIR)"
}

cmd_stop() {
    [ "$#" -eq 1 ] || die "usage: $PROG stop DIR"
    set_dir "$1"
    if [ ! -f "$DATA/PG_VERSION" ]; then
        echo "$PROG: no cluster in $DATA; nothing to stop"
        return 0
    fi
    local bindir
    bindir=$(find_bindir)
    if ! server_running "$bindir"; then
        echo "$PROG: server not running"
        return 0
    fi
    as_owner "$bindir/pg_ctl" stop -w -t 60 -m fast -D "$DATA" >/dev/null || die "server did not stop"
    echo "$PROG: server stopped"
}

cmd_status() {
    [ "$#" -eq 1 ] || die "usage: $PROG status DIR"
    set_dir "$1"
    if [ ! -f "$DATA/PG_VERSION" ]; then
        echo "no cluster in $DATA"
        return 3
    fi
    local bindir
    bindir=$(find_bindir)
    if server_running "$bindir"; then
        echo "running ($DATA, socket $RUNDIR, port $(cluster_port))"
        return 0
    fi
    echo "not running ($DATA)"
    return 3
}

# libpq conninfo values need quoting when they contain spaces, quotes or backslashes.
conninfo_value() {
    local v=$1
    case "$v" in
        '' | *[[:space:]\'\\]*)
            v=${v//\\/\\\\}
            v=${v//\'/\\\'}
            printf "'%s'" "$v" ;;
        *) printf '%s' "$v" ;;
    esac
}

cmd_conninfo() {
    if [ "$#" -lt 1 ] || [ "$#" -gt 2 ]; then die "usage: $PROG conninfo DIR [DBNAME]"; fi
    set_dir "$1"
    require_cluster
    local db=${2:-lmdm}
    printf 'host=%s port=%s dbname=%s user=%s\n' "$(conninfo_value "$RUNDIR")" "$(cluster_port)" \
        "$(conninfo_value "$db")" "$DB_SUPERUSER"
}

cmd_createdb() {
    [ "$#" -eq 2 ] || die "usage: $PROG createdb DIR NAME"
    set_dir "$1"
    require_cluster
    local name=$2 bindir port exists
    bindir=$(find_bindir)
    port=$(cluster_port)
    server_running "$bindir" || die "server not running (run: $PROG start $DIR)"
    exists=$(as_owner "$bindir/psql" -X -q -A -t -h "$RUNDIR" -p "$port" -U "$DB_SUPERUSER" -d postgres \
        -v ON_ERROR_STOP=1 -v name="$name" <<<"SELECT 1 FROM pg_database WHERE datname = :'name';") ||
        die "cannot query the server"
    if [ "$exists" = "1" ]; then
        echo "$PROG: database '$name' already exists"
        return 0
    fi
    as_owner "$bindir/createdb" -h "$RUNDIR" -p "$port" -U "$DB_SUPERUSER" -- "$name" ||
        die "createdb '$name' failed"
    echo "$PROG: created database '$name'"
}

main() {
    [ "$#" -ge 1 ] || {
        usage >&2
        exit 2
    }
    local cmd=$1
    shift
    case "$cmd" in
        -h | --help | help) usage ;;
        init) cmd_init "$@" ;;
        start) cmd_start "$@" ;;
        stop) cmd_stop "$@" ;;
        status) cmd_status "$@" ;;
        conninfo) cmd_conninfo "$@" ;;
        createdb) cmd_createdb "$@" ;;
        *)
            echo "$PROG: unknown command '$cmd'" >&2
            usage >&2
            exit 2 ;;
    esac
}

main "$@"
