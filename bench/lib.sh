# Shared by the benchmark scripts (sourced, not run). Expects PROG, SRC, die(),
# LMDM_PID and PG_STARTED to be set by the script; a script with processes of
# its own defines bench_extra_cleanup() before sourcing this file.
#
# Gives: stop_pid, free_port, $T (a short scratch directory under /tmp, which
# the PostgreSQL socket path needs and which the server user can reach as
# root), and a trap that stops everything the script started and removes $T.

stop_pid() { # stop_pid PID: SIGTERM, then SIGKILL after 10 s
    local pid=$1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# shellcheck disable=SC2317 # trap handler
bench_cleanup() {
    local rc=$?
    trap - INT TERM
    if declare -F bench_extra_cleanup >/dev/null; then bench_extra_cleanup; fi
    stop_pid "$LMDM_PID"
    if [ "$PG_STARTED" -eq 1 ]; then
        bash "$SRC/deploy/pg.sh" stop "$T/pg" >/dev/null || echo "$PROG: could not stop PostgreSQL in $T/pg" >&2
    fi
    case "$T" in
        /tmp/lmdm-bench.??????) rm -rf "$T" ;;
    esac
    exit "$rc"
}
trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

T=$(mktemp -d /tmp/lmdm-bench.XXXXXX)
chmod 755 "$T"

# A port nothing listens on (checked by connecting to it).
free_port() {
    local p
    for _ in $(seq 100); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    die "no free TCP port found"
}
