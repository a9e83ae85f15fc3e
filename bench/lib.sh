# shellcheck shell=bash
# Shared by the benchmark scripts (sourced, not run, right after PROG and SRC
# are set). A script with processes of its own defines bench_extra_cleanup(),
# which the exit trap calls before stopping lmdm and PostgreSQL.
#
# Gives, for the scripts' own options and checks: die, posint, say,
# bench_option (BUILD, DO_BUILD, PIN, STRICT), bench_have, bench_need_tools,
# bench_build, bench_check_build, bench_raise_fds, bench_pin (NCPU,
# SERVER_PIN, CLIENT_PIN).
# Then bench_begin makes $T (a short scratch directory under /tmp, which the
# PostgreSQL socket path needs and which the server user can reach as root)
# and sets the trap that stops everything the script started and removes $T.
# After it: free_port, stop_pid, client, client_bg, server_bg, bench_wait_up,
# bench_pg_start (CONNINFO, psqlq, stmt_reset), bench_certs_ports,
# bench_lmdm_conf, bench_start_lmdm (LMDM_PID), bench_check_enrolled,
# bench_pgbench, bench_pgbench_figures (TPS, PGLAT), ticks, cpu_pct, bench_log_errors.
#
# The scripts define usage(), and set, before calling what uses them: LMDM
# (the broker binary), and for the device benchmarks DEVICES, WORKERS, POOL
# and DURATION.

T=""
LMDM_PID=""
PG_STARTED=0

die() {
    echo "$PROG: $*" >&2
    exit 1
}
posint() { # posint VALUE OPTION
    case "$1" in '' | *[!0-9]* | 0) die "$2 needs a positive number, not '$1'" ;; esac
}
say() { echo "==> $*"; }

# ---------------------------------------------------------------- options

# The options every benchmark takes, with their defaults; --strict only in a
# script that sets STRICT. BUILD is made absolute.
bench_set_build() { case "$1" in /*) BUILD=$1 ;; *) BUILD=$PWD/$1 ;; esac; }
bench_set_build "${LMDM_BUILD_DIR:-$SRC/build}"
DO_BUILD=1
PIN=1

# bench_option "$@": takes the option in $1 if it is one of those (-h,
# --no-pin, --build-dir DIR, --no-build, --strict); any other ends the
# script with the usage. BENCH_ARGS: the arguments it took (2 with a value).
# shellcheck disable=SC2034 # STRICT is the script's
bench_option() {
    BENCH_ARGS=1
    case "$1" in
        -h | --help) usage; exit 0 ;;
        --no-pin) PIN=0 ;;
        --build-dir)
            [ -n "${2:-}" ] || die "--build-dir needs a directory"
            bench_set_build "$2"
            BENCH_ARGS=2 ;;
        --no-build) DO_BUILD=0 ;;
        --strict) if [ -n "${STRICT+set}" ]; then STRICT=1; else bench_bad_option "$1"; fi ;;
        *) bench_bad_option "$1" ;;
    esac
}
bench_bad_option() {
    echo "$PROG: unknown argument '$1'" >&2
    usage >&2
    exit 2
}

# --------------------------------------------------------- tools, build

bench_have() { # bench_have TOOL...: true when every TOOL is on the PATH
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || return 1
    done
}

bench_need_tools() { # bench_need_tools HINT TOOL...: die on the first missing TOOL
    local hint=$1 tool
    shift
    for tool in "$@"; do
        bench_have "$tool" || die "$tool is missing ($hint)"
    done
}

# "a", "a and b", "a, b and c"
bench_and() {
    local s=$1
    shift
    while [ "$#" -gt 1 ]; do
        s="$s, $1"
        shift
    done
    if [ "$#" -eq 1 ]; then s="$s and $1"; fi
    echo "$s"
}

# bench_build TARGET...: unless --no-build, configure $BUILD (RelWithDebInfo)
# if it is not yet, and build the TARGETs.
bench_build() {
    [ "$DO_BUILD" -eq 1 ] || return 0
    if [ ! -f "$BUILD/CMakeCache.txt" ]; then
        say "configuring $BUILD"
        cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo
    fi
    say "building $(bench_and "$@") in $BUILD"
    cmake --build "$BUILD" --target "$@" -j "$(nproc 2>/dev/null || echo 2)"
}

# bench_check_build BINARY...: every BINARY is there; warn when $BUILD is a
# build whose figures mean little (sanitizers, Debug).
bench_check_build() {
    local b cache=$BUILD/CMakeCache.txt
    for b in "$@"; do
        [ -x "$b" ] || die "$b missing (build first, or drop --no-build)"
    done
    [ -f "$cache" ] || return 0
    if grep -q '^LMDM_SANITIZE:BOOL=ON' "$cache"; then
        echo "$PROG: WARNING: $BUILD is a sanitizer build; its figures mean little" >&2
    fi
    if grep -q '^CMAKE_BUILD_TYPE:STRING=Debug' "$cache"; then
        echo "$PROG: WARNING: $BUILD is a Debug build; its figures mean little" >&2
    fi
}

# bench_raise_fds N [--strict]: raise the soft open-files limit (which lmdm
# and the clients inherit) to N if it is lower, as far as the hard limit
# allows; with --strict, die when the hard limit is below N.
bench_raise_fds() {
    local need=$1 hard
    if [ "${2:-}" = --strict ]; then
        hard=$(ulimit -Hn)
        if [ "$hard" != unlimited ] && [ "$hard" -lt "$need" ]; then
            die "this benchmark needs $need open files but the hard limit is $hard (raise it, e.g. in /etc/security/limits.conf)"
        fi
    fi
    if [ "$(ulimit -Sn)" != unlimited ] && [ "$(ulimit -Sn)" -lt "$need" ]; then
        if [ "${2:-}" = --strict ]; then ulimit -Sn "$need"; else ulimit -Sn "$need" 2>/dev/null || true; fi
    fi
}

# "A" or "A-B": a taskset CPU list.
bench_cpus() { if [ "$1" -eq "$2" ]; then echo "$1"; else echo "$1-$2"; fi; }

# bench_pin SERVER_CPUS CLIENT_CPUS: NCPU, and the taskset prefixes
# SERVER_PIN (the first SERVER_CPUS CPUs) and CLIENT_PIN (the next
# CLIENT_CPUS), so that servers and clients do not steal each other's cores.
# Empty unless $PIN is 1, taskset is there and there are enough CPUs.
# shellcheck disable=SC2034 # NCPU is for the scripts' reports
bench_pin() {
    local s=$1 c=$2
    NCPU=$(nproc 2>/dev/null || echo 1)
    SERVER_PIN=()
    CLIENT_PIN=()
    if [ "$PIN" -eq 1 ] && command -v taskset >/dev/null 2>&1 && [ "$NCPU" -ge $((s + c)) ]; then
        SERVER_PIN=(taskset -c "$(bench_cpus 0 $((s - 1)))")
        CLIENT_PIN=(taskset -c "$(bench_cpus "$s" $((s + c - 1)))")
    fi
}
# Run a command on the client CPUs; in the background on the client or the
# server CPUs: $! is then the command itself (taskset execs it), so that
# stop_pid stops it, not a subshell waiting for it.
client() { ${CLIENT_PIN[@]+"${CLIENT_PIN[@]}"} "$@"; }
client_bg() { ${CLIENT_PIN[@]+"${CLIENT_PIN[@]}"} "$@" & }
server_bg() { ${SERVER_PIN[@]+"${SERVER_PIN[@]}"} "$@" & }

# -------------------------------------------------------------- processes

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

# From here on, everything the script starts is stopped when it ends, also
# on Ctrl-C, and $T is removed.
bench_begin() {
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    T=$(mktemp -d /tmp/lmdm-bench.XXXXXX)
    chmod 755 "$T"
}

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

# bench_wait_up PID LOG WHAT URL [CURL_OPTION...]: wait up to 10 s for URL
# to answer; if PID ends first or it does not, show LOG and die with WHAT.
bench_wait_up() {
    local pid=$1 log=$2 what=$3 url=$4
    shift 4
    for _ in $(seq 100); do
        curl -fsS -o /dev/null "$@" "$url" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    cat "$log" >&2
    die "$what"
}

# ------------------------------------------------------------- PostgreSQL

# bench_pg_start CONNECTIONS: a private PostgreSQL in $T/pg with a database
# lmdm (CONNINFO). Unless CONNECTIONS (the broker's in all) is 0, it also
# tracks top-level statements (pg_stat_statements) and allows
# CONNECTIONS + 50 connections.
bench_pg_start() {
    local conns=$1 pg=$SRC/deploy/pg.sh stats=""
    [ "$conns" -eq 0 ] || stats=" (with pg_stat_statements)"
    say "private PostgreSQL in $T/pg$stats"
    bash "$pg" init --fast "$T/pg" >/dev/null
    if [ -n "$stats" ]; then
        {
            echo "shared_preload_libraries = 'pg_stat_statements'"
            echo "pg_stat_statements.track = top"
            echo "max_connections = $((conns + 50))"
        } >>"$T/pg/data/postgresql.conf"
    fi
    PG_STARTED=1
    bash "$pg" start "$T/pg" >/dev/null
    bash "$pg" createdb "$T/pg" lmdm >/dev/null
    CONNINFO=$(bash "$pg" conninfo "$T/pg" lmdm)
    if [ -n "$stats" ]; then psqlq "CREATE EXTENSION pg_stat_statements" >/dev/null; fi
}
psqlq() { psql -X -qAt -v ON_ERROR_STOP=1 "$CONNINFO" -c "$1"; }
stmt_reset() { psqlq "SELECT pg_stat_statements_reset()" >/dev/null; }

# bench_pgbench OPTION...: pgbench on the client CPUs against the database,
# prepared, for $DURATION s; its report in $T/pgbench.txt.
bench_pgbench() {
    client pgbench -n -M prepared -j 1 -T "$DURATION" "$@" "$CONNINFO" >"$T/pgbench.txt" 2>&1 ||
        { cat "$T/pgbench.txt" >&2; die "pgbench failed"; }
}
# bench_pgbench_figures: TPS and PGLAT (average latency, ms) from its report.
# shellcheck disable=SC2034 # for the scripts' reports
bench_pgbench_figures() {
    TPS=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$T/pgbench.txt" | head -n 1)
    PGLAT=$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' "$T/pgbench.txt")
    [ -n "$TPS" ] || { cat "$T/pgbench.txt" >&2; die "no tps in pgbench's output"; }
}

# ------------------------------------------------------------------- lmdm

# bench_certs_ports: TLS certificates in $T/certs (deploy/dev-certs.sh),
# $T/ca for the broker CA, and free TLS_PORT and PLAIN_PORT.
bench_certs_ports() {
    bash "$SRC/deploy/dev-certs.sh" "$T/certs" >/dev/null
    TLS_PORT=$(free_port)
    PLAIN_PORT=$(free_port)
    mkdir -p "$T/ca"
}

# The lmdm.conf lines of the device benchmarks: both listeners, the
# certificates and CA from bench_certs_ports, WORKERS x POOL database
# connections, no APNs (the simulator polls by itself), no access log
# (log_level = warn: one line per request would measure the logger).
bench_lmdm_conf() {
    cat <<EOF
listen_tls = "127.0.0.1:$TLS_PORT"
listen_plain = "127.0.0.1:$PLAIN_PORT"
tls_cert = "$T/certs/server.crt"
tls_key = "$T/certs/server.key"
workers = $WORKERS
db_pool_size = $POOL
database_url = "$CONNINFO"
migrations_dir = "$SRC/migrations"
public_url = "https://localhost:$TLS_PORT"
ca_cert = "$T/ca/ca.crt"
ca_key = "$T/ca/ca.key"
apns_auth = off
apns_topic = "com.apple.mgmt.External.bench"
idle_timeout = 1h
log_level = warn
EOF
}

# bench_start_lmdm CONF HEALTHZ_URL [CURL_OPTION...]: lmdm serve on the
# server CPUs (LMDM_PID, log $T/lmdm.log), once HEALTHZ_URL answers.
bench_start_lmdm() {
    local conf=$1 url=$2
    shift 2
    server_bg "$LMDM" serve --config "$conf" >>"$T/lmdm.log" 2>&1
    LMDM_PID=$!
    bench_wait_up "$LMDM_PID" "$T/lmdm.log" "lmdm serve did not come up" "$url" "$@"
}

# bench_start_tenant_broker TITLE [CONF_LINE...]: the broker for the tenant
# benchmarks: certificates, a config (bench_lmdm_conf, a master secret, the
# extra lines), the CA, the secret, the migrations, then lmdm serve over h2c.
# Sets BASE (http://127.0.0.1:PORT) and CONF.
bench_start_tenant_broker() {
    local title=$1 line
    shift
    say "certificates, the broker CA (lmdm ca init), the master secret (lmdm secret init)"
    bench_certs_ports
    BASE=http://127.0.0.1:$PLAIN_PORT
    CONF=$T/lmdm.conf
    {
        echo "# Generated by $title."
        bench_lmdm_conf
        echo "secret_key = \"$T/secret.key\""
        for line in "$@"; do echo "$line"; done
    } >"$CONF"
    unset LMDM_DATABASE_URL LMDM_CONFIG
    "$LMDM" ca init --config "$CONF" >/dev/null || die "lmdm ca init failed"
    "$LMDM" secret init --config "$CONF" >/dev/null || die "lmdm secret init failed"
    "$LMDM" migrate --config "$CONF" >/dev/null || die "lmdm migrate failed"
    say "starting lmdm ($WORKERS worker(s), db_pool_size $POOL) on $BASE (h2c)"
    bench_start_lmdm "$CONF" "$BASE/healthz"
}

# CPU ticks of the PostgreSQL server: the postmaster with its children that
# have ended (cutime, cstime), plus the running ones.
pg_ticks() {
    local pm p n
    pm=$(head -n 1 "$T/pg/data/postmaster.pid")
    n=$(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$pm/stat")
    for p in $(ps -o pid= --ppid "$pm"); do
        n=$((n + $(ticks "$p" 2>/dev/null || echo 0)))
    done
    echo "$n"
}

# bench_check_enrolled T0: all $DEVICES devices are enrolled; say how long
# it took since T0 (seconds since the epoch).
bench_check_enrolled() {
    local n
    n=$(psqlq "SELECT count(*) FROM devices WHERE state = 'enrolled'")
    [ "$n" -eq "$DEVICES" ] || die "$n of $DEVICES devices enrolled"
    say "enrolled in $(($(date +%s) - $1)) s"
}

# The first error lines of lmdm's log, if there are any.
bench_log_errors() {
    # Error and warning lines of lmdm's log, but the expected one of a run
    # without APNs.
    grep -E ' (error|warn) ' "$T/lmdm.log" | grep -v 'apns_auth = off' >"$T/lmdm-issues.txt" || true
    if [ -s "$T/lmdm-issues.txt" ]; then
        echo
        echo "lmdm logged $(grep -c ' error ' "$T/lmdm-issues.txt" || true) error and" \
            "$(grep -c ' warn ' "$T/lmdm-issues.txt" || true) warning line(s); the first ones:"
        head -n 5 "$T/lmdm-issues.txt"
    fi
}

# ------------------------------------------------------------ CPU figures

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; } # user + system, in clock ticks
cpu_pct() { # cpu_pct TICKS NANOSECONDS: CPU use, 100 per fully busy thread
    awk -v c="$1" -v hz="$(getconf CLK_TCK)" -v ns="$2" 'BEGIN { printf "%.0f", 100 * c / hz / (ns / 1e9) }'
}

# bench_inproc TARGET ARGS...: build the in-process benchmark TARGET (unless
# --no-build), then run it with ARGS, pinned to the first CPU unless --no-pin.
bench_inproc() {
    local target=$1 bin
    shift
    bench_build "$target"
    bin=$BUILD/bench/$target
    bench_check_build "$bin"
    if [ "$PIN" -eq 1 ] && command -v taskset >/dev/null 2>&1; then
        taskset -c 0 "$bin" "$@"
    else
        "$bin" "$@"
    fi
}

# Microseconds since the epoch.
now_us() { echo "${EPOCHREALTIME/[.,]/}"; }

# bench_wait_settled INTERVAL: until the script's `settled` succeeds (polled
# every INTERVAL seconds), at most 60 s + 20 ms per device ($DEVICES); dies,
# naming the script's `dirty` count, if lmdm ($LMDM_PID) stops or it never does.
bench_wait_settled() {
    local every=$1 limit=$(($(now_us) + (60 + DEVICES / 50) * 1000000))
    while :; do
        settled && return 0
        kill -0 "$LMDM_PID" 2>/dev/null || { tail -n 20 "$T/lmdm.log" >&2; die "lmdm stopped ($(dirty) devices still dirty)"; }
        if [ "$(now_us)" -gt "$limit" ]; then
            tail -n 20 "$T/lmdm.log" >&2
            die "$(dirty) devices still dirty after $((60 + DEVICES / 50)) s"
        fi
        sleep "$every"
    done
}
