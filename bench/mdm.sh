#!/usr/bin/env bash
# MDM protocol benchmark of lmdm (see bench/README.md, issue 3).
#
# lmdm-sim fleet drives N enrolled devices against the broker, over h2c (the
# plaintext listener) and over TLS (HTTP/2, each message signed):
#   (a) idle:  Idle polls on an empty queue;
#   (b) cycle: commands queued for every device; each request answers the
#       previous command (Acknowledged, result stored) and fetches the next.
# For each: requests/s, p50/p99 latency, PostgreSQL round trips per request
# (pg_stat_statements, top-level statements). As the limit, pgbench runs the
# statement of an Idle poll alone (mdm_connect, prepared, over the unix socket)
# with as many clients as the broker has database connections, in the same run.
# Targets: an Idle poll costs 1 round trip; idle over h2c >= 0.5 x pgbench.
#
# Everything runs on a private PostgreSQL in a temporary directory, which is
# removed at the end together with every process this script started.
set -euo pipefail

PROG=${0##*/}
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${LMDM_BUILD_DIR:-$SRC/build}

DEVICES=500
DURATION=20
CONCURRENCY=64
WORKERS=1
POOL=4
TRANSPORTS="h2c tls"
DO_BUILD=1
PIN=1
STRICT=0
TARGET_RATIO=0.5
TARGET_RT=1

usage() {
    cat <<EOF
Usage: $PROG [options]

Idle polls and full command cycles of N simulated devices against lmdm, over h2c and
TLS, next to pgbench running the Idle statement alone. See bench/README.md.

Options:
  --devices N      enrolled devices (default $DEVICES; enrollment costs ~0.15 s per
                   device on a small machine because the broker makes an RSA key per
                   profile: 2000 devices take ~5 min)
  --duration S     seconds per timed phase, and for pgbench (default $DURATION)
  --concurrency C  requests in flight from the simulator (default $CONCURRENCY)
  --workers N      lmdm worker threads (default $WORKERS)
  --pool N         db_pool_size, connections per worker (default $POOL);
                   pgbench gets workers x pool clients
  --transport T    h2c, tls or both (default both)
  --no-pin         do not pin lmdm and the clients to separate CPUs
  --build-dir DIR  build directory (default: \$LMDM_BUILD_DIR or build/)
  --no-build       use the binaries already in the build directory
  --strict         exit 3 when a target is missed (default: report only)
  -h, --help       this help
EOF
}

die() {
    echo "$PROG: $*" >&2
    exit 1
}
posint() { # posint VALUE OPTION
    case "$1" in '' | *[!0-9]* | 0) die "$2 needs a positive number, not '$1'" ;; esac
}

while [ "$#" -gt 0 ]; do
    case "$1" in
        -h | --help) usage; exit 0 ;;
        --devices) DEVICES=${2:-}; posint "$DEVICES" --devices; shift ;;
        --duration) DURATION=${2:-}; posint "$DURATION" --duration; shift ;;
        --concurrency) CONCURRENCY=${2:-}; posint "$CONCURRENCY" --concurrency; shift ;;
        --workers) WORKERS=${2:-}; posint "$WORKERS" --workers; shift ;;
        --pool) POOL=${2:-}; posint "$POOL" --pool; shift ;;
        --transport)
            case "${2:-}" in
                h2c | tls) TRANSPORTS=$2 ;;
                both) TRANSPORTS="h2c tls" ;;
                *) die "--transport is h2c, tls or both, not '${2:-}'" ;;
            esac
            shift ;;
        --no-pin) PIN=0 ;;
        --build-dir) BUILD=${2:-}; [ -n "$BUILD" ] || die "--build-dir needs a directory"; shift ;;
        --no-build) DO_BUILD=0 ;;
        --strict) STRICT=1 ;;
        *) echo "$PROG: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
case "$BUILD" in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
[ "$WORKERS" -le 256 ] || die "--workers is at most 256"
[ "$POOL" -le 64 ] || die "--pool is at most 64"

say() { echo "==> $*"; }

# ------------------------------------------------------------------- tools

for tool in curl jq openssl psql pgbench; do
    command -v "$tool" >/dev/null 2>&1 ||
        die "$tool is missing (PostgreSQL client tools: postgresql-client; see deploy/install-deps.sh)"
done
PGBENCH=$(command -v pgbench)

if [ "$DO_BUILD" -eq 1 ]; then
    if [ ! -f "$BUILD/CMakeCache.txt" ]; then
        say "configuring $BUILD"
        cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo
    fi
    say "building lmdm and lmdm-sim in $BUILD"
    cmake --build "$BUILD" --target lmdm lmdm-sim -j "$(nproc 2>/dev/null || echo 2)"
fi
LMDM=$BUILD/lmdm
SIM=$BUILD/tests/sim/lmdm-sim
[ -x "$LMDM" ] && [ -x "$SIM" ] || die "$LMDM or $SIM missing (build first, or drop --no-build)"
if [ -f "$BUILD/CMakeCache.txt" ]; then
    grep -q '^LMDM_SANITIZE:BOOL=ON' "$BUILD/CMakeCache.txt" &&
        echo "$PROG: WARNING: $BUILD is a sanitizer build; its figures mean little" >&2
    grep -q '^CMAKE_BUILD_TYPE:STRING=Debug' "$BUILD/CMakeCache.txt" &&
        echo "$PROG: WARNING: $BUILD is a Debug build; its figures mean little" >&2
fi

# TLS with a connection per device would need a descriptor each; the
# simulator shares connections (signatures), but leave room anyway.
need_fds=$((DEVICES + CONCURRENCY + 256))
if [ "$(ulimit -Sn)" != unlimited ] && [ "$(ulimit -Sn)" -lt "$need_fds" ]; then
    ulimit -Sn "$need_fds" 2>/dev/null || true
fi

# ------------------------------------------------------------ environment

T=""
LMDM_PID=""
PG_STARTED=0

# shellcheck source=bench/lib.sh
. "$SRC/bench/lib.sh"

# CPU pinning: lmdm on the first WORKERS CPUs, the clients (simulator,
# pgbench) on the next one. PostgreSQL is not pinned: it serves both.
NCPU=$(nproc 2>/dev/null || echo 1)
SERVER_PIN=()
CLIENT_PIN=()
if [ "$PIN" -eq 1 ] && command -v taskset >/dev/null 2>&1 && [ "$NCPU" -ge $((WORKERS + 1)) ]; then
    cpus() { if [ "$1" -eq "$2" ]; then echo "$1"; else echo "$1-$2"; fi; }
    SERVER_PIN=(taskset -c "$(cpus 0 $((WORKERS - 1)))")
    CLIENT_PIN=(taskset -c "$WORKERS")
fi

say "private PostgreSQL in $T/pg (with pg_stat_statements)"
bash "$SRC/deploy/pg.sh" init --fast "$T/pg" >/dev/null
{
    echo "shared_preload_libraries = 'pg_stat_statements'"
    echo "pg_stat_statements.track = top"
    echo "max_connections = $((WORKERS * POOL + 50))"
} >>"$T/pg/data/postgresql.conf"
PG_STARTED=1
bash "$SRC/deploy/pg.sh" start "$T/pg" >/dev/null
bash "$SRC/deploy/pg.sh" createdb "$T/pg" lmdm >/dev/null
CONNINFO=$(bash "$SRC/deploy/pg.sh" conninfo "$T/pg" lmdm)
psqlq() { psql -X -qAt -v ON_ERROR_STOP=1 "$CONNINFO" -c "$1"; }
psqlq "CREATE EXTENSION pg_stat_statements" >/dev/null

say "certificates (deploy/dev-certs.sh) and the broker CA (lmdm ca init)"
bash "$SRC/deploy/dev-certs.sh" "$T/certs" >/dev/null
TLS_PORT=$(free_port)
PLAIN_PORT=$(free_port)
mkdir -p "$T/ca"
cat >"$T/lmdm.conf" <<EOF
# Generated by bench/mdm.sh. No access log (log_level = warn): one line per
# request would measure the logger. No APNs: the simulator polls by itself.
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
unset LMDM_DATABASE_URL LMDM_CONFIG
"$LMDM" ca init --config "$T/lmdm.conf" >/dev/null
"$LMDM" migrate --config "$T/lmdm.conf" >/dev/null

say "starting lmdm ($WORKERS worker(s), db_pool_size $POOL) on 127.0.0.1:$PLAIN_PORT (h2c) and :$TLS_PORT (TLS)"
${SERVER_PIN[@]+"${SERVER_PIN[@]}"} "$LMDM" serve --config "$T/lmdm.conf" >>"$T/lmdm.log" 2>&1 &
LMDM_PID=$!
for _ in $(seq 100); do
    curl -fsS -o /dev/null "http://127.0.0.1:$PLAIN_PORT/healthz" 2>/dev/null && break
    kill -0 "$LMDM_PID" 2>/dev/null || { cat "$T/lmdm.log" >&2; die "lmdm serve did not come up"; }
    sleep 0.1
done
curl -fsS -o /dev/null "http://127.0.0.1:$PLAIN_PORT/healthz" || { cat "$T/lmdm.log" >&2; die "lmdm serve did not come up"; }

# ------------------------------------------------------------ the fleet

STATE=$T/fleet.json
# fleet TRANSPORT MODE SECONDS -> the simulator's JSON line on stdout
fleet() {
    local tr=$1 mode=$2 secs=$3 args out
    case "$tr" in
        h2c) args=(--url "http://127.0.0.1:$PLAIN_PORT" --h2c) ;;
        tls) args=(--url "https://localhost:$TLS_PORT" --cacert "$T/certs/ca.crt" --http2) ;;
    esac
    out=$T/fleet-$tr-$mode.txt
    if ! ${CLIENT_PIN[@]+"${CLIENT_PIN[@]}"} "$SIM" fleet "${args[@]}" --count "$DEVICES" --duration "$secs" \
        --mode "$mode" --concurrency "$CONCURRENCY" --state "$STATE" --json >"$out" 2>"$out.err"; then
        cat "$out" "$out.err" >&2
        die "lmdm-sim fleet ($tr, $mode) failed"
    fi
    tail -n 1 "$out"
}

# Top-level statements the server ran since the last reset, ours excluded.
stmt_reset() { psqlq "SELECT pg_stat_statements_reset()" >/dev/null; }
stmt_calls() {
    psqlq "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements
            WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND query NOT ILIKE '%pg_stat_statements%'"
}

t0=$(date +%s)
say "enrolling $DEVICES devices (Authenticate, TokenUpdate), then a 2 s warm-up over h2c"
fleet h2c idle 2 >/dev/null
ENROLLED=$(psqlq "SELECT count(*) FROM devices WHERE state = 'enrolled'")
[ "$ENROLLED" -eq "$DEVICES" ] || die "$ENROLLED of $DEVICES devices enrolled"
say "enrolled in $(($(date +%s) - t0)) s"

# Commands for a cycle phase: enough for every device to be busy all along
# (one command per request at most), from the idle rate just measured.
queue_commands() { # queue_commands PER_DEVICE
    psqlq "SELECT count(mdm_enqueue(d.device_key, '', 1, u.id, 'ProfileList',
              format('<?xml version=\"1.0\" encoding=\"UTF-8\"?>
<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">
<plist version=\"1.0\">
<dict>
	<key>CommandUUID</key>
	<string>%s</string>
	<key>Command</key>
	<dict>
		<key>RequestType</key>
		<string>ProfileList</string>
	</dict>
</dict>
</plist>
', u.id), NULL))
             FROM devices d CROSS JOIN LATERAL
                  (SELECT gen_random_uuid() AS id, d.id AS dev FROM generate_series(1, $1)) u"
}

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
declare -A RPS P50 P99 RT REQ ERR ANS CPU
for tr in $TRANSPORTS; do
    for mode in idle cycle; do
        if [ "$mode" = cycle ]; then
            ki="$tr - idle"
            per=$(awk -v r="${RPS[$ki]}" -v s="$DURATION" -v n="$DEVICES" \
                'BEGIN { p = int(r * s / n * 1.5) + 2; print p }')
            say "$tr cycle: queueing $per ProfileList command(s) per device ($((per * DEVICES)) in all)"
            queue_commands "$per" >/dev/null
            psqlq "VACUUM ANALYZE commands" >/dev/null
        fi
        say "$tr $mode: $DEVICES devices, $CONCURRENCY in flight, ${DURATION} s"
        stmt_reset
        c0=$(ticks "$LMDM_PID")
        n0=$(date +%s%N)
        js=$(fleet "$tr" "$mode" "$DURATION")
        n1=$(date +%s%N)
        c1=$(ticks "$LMDM_PID")
        calls=$(stmt_calls)
        k="$tr - $mode"
        # lmdm's CPU use over the phase (setup included: loading the state
        # file is short), 100 per fully busy thread.
        CPU[$k]=$(awk -v c=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v ns=$((n1 - n0)) \
            'BEGIN { printf "%.0f", 100 * c / hz / (ns / 1e9) }')
        RPS[$k]=$(jq -r .rps <<<"$js")
        P50[$k]=$(jq -r .p50_ms <<<"$js")
        P99[$k]=$(jq -r .p99_ms <<<"$js")
        REQ[$k]=$(jq -r .requests <<<"$js")
        ERR[$k]=$(jq -r .errors <<<"$js")
        ANS[$k]=$(jq -r .commands_answered <<<"$js")
        RT[$k]=$(awk -v c="$calls" -v r="${REQ[$k]}" 'BEGIN { printf "%.2f", (r > 0) ? c / r : 0 }')
        printf '    %s\n' "$js"
        if [ "$mode" = cycle ]; then
            # Leave an empty queue for the next transport's idle phase.
            psqlq "UPDATE commands SET state = 'cancelled' WHERE state IN ('queued', 'sent', 'notnow')" >/dev/null
        fi
    done
done
STORED=$(psqlq "SELECT count(*) FROM commands WHERE state = 'acknowledged' AND result IS NOT NULL")

# ---------------------------------------------------------------- pgbench

CLIENTS=$((WORKERS * POOL))
psqlq "CREATE TABLE bench_devices AS
         SELECT row_number() OVER (ORDER BY id)::int AS i, device_key AS key, cert_fpr AS fpr FROM devices;
       CREATE UNIQUE INDEX ON bench_devices (i); ANALYZE bench_devices" >/dev/null
# One Idle poll: the same function the broker calls, for a random device,
# in one statement (so one round trip, like the broker's): the device's key
# and fingerprint come from an indexed lookup in the same query.
cat >"$T/idle.sql" <<EOF
\\set i random(1, $DEVICES)
SELECT c.code, c.command_uuid, c.payload
  FROM bench_devices b, LATERAL mdm_connect(b.key, '', b.fpr, 'Idle', NULL, NULL) c WHERE b.i = :i;
EOF
say "pgbench: the Idle statement alone, $CLIENTS client(s) (= workers x db_pool_size), prepared, ${DURATION} s"
${CLIENT_PIN[@]+"${CLIENT_PIN[@]}"} "$PGBENCH" -n -M prepared -c "$CLIENTS" -j 1 -T "$DURATION" -f "$T/idle.sql" \
    "$CONNINFO" >"$T/pgbench.txt" 2>&1 || { cat "$T/pgbench.txt" >&2; die "pgbench failed"; }
TPS=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$T/pgbench.txt" | head -n 1)
PGLAT=$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' "$T/pgbench.txt")
[ -n "$TPS" ] || { cat "$T/pgbench.txt" >&2; die "no tps in pgbench's output"; }

# ----------------------------------------------------------------- report

verdict() { awk -v a="$1" -v op="$2" -v b="$3" \
    'BEGIN { ok = (op == ">=") ? (a >= b) : (a <= b); print ok ? "met" : "MISSED" }'; }
MISSED=0
echo
echo "== lmdm-sim fleet: $DEVICES devices, $CONCURRENCY requests in flight, ${DURATION} s per phase;"
echo "   lmdm: $WORKERS worker(s), db_pool_size $POOL; load average $(cut -d' ' -f1-3 /proc/loadavg) on $NCPU CPU(s)"
printf '   %-11s %10s %9s %9s %10s %8s %10s %9s\n' phase req/s p50_ms p99_ms "db rt/req" errors answered "lmdm CPU"
for tr in $TRANSPORTS; do
    for mode in idle cycle; do
        k="$tr - $mode"
        printf '   %-11s %10.0f %9.2f %9.2f %10s %8s %10s %8s%%\n' "$tr $mode" "${RPS[$k]}" "${P50[$k]}" "${P99[$k]}" \
            "${RT[$k]}" "${ERR[$k]}" "${ANS[$k]}" "${CPU[$k]}"
    done
done
echo "   (results stored in the database, all cycle phases: $STORED)"
echo
echo "== Limit: pgbench running the Idle statement alone ($CLIENTS clients, -M prepared, unix socket)"
printf '   pgbench   %10.0f tps (latency average %s ms)\n' "$TPS" "$PGLAT"
for tr in $TRANSPORTS; do
    k="$tr - idle"
    ratio=$(awk -v a="${RPS[$k]}" -v b="$TPS" 'BEGIN { printf "%.2f", a / b }')
    v=$(verdict "$ratio" ">=" "$TARGET_RATIO")
    [ "$tr" = h2c ] && [ "$v" != met ] && MISSED=1
    printf '   %-4s idle  ratio %s x pgbench     target >= %s   %s\n' "$tr" "$ratio" "$TARGET_RATIO" "$v"
    v=$(verdict "${RT[$k]}" "<=" "$TARGET_RT")
    [ "$v" = met ] || MISSED=1
    printf '   %-4s idle  %s db round trip(s) per request   target %s   %s\n' "$tr" "${RT[$k]}" "$TARGET_RT" "$v"
done

errors=$(grep -c ' error ' "$T/lmdm.log" || true)
if [ "$errors" -gt 0 ]; then
    echo
    echo "lmdm logged $errors error line(s); the first ones:"
    grep ' error ' "$T/lmdm.log" | head -n 5
fi
if [ "$STRICT" -eq 1 ] && [ "$MISSED" -eq 1 ]; then
    exit 3
fi
exit 0
