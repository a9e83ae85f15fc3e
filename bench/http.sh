#!/usr/bin/env bash
# HTTP benchmark of the lmdm connection layer (see bench/README.md).
#
# 1. Throughput: h2load against lmdm's /healthz on the plaintext listener
#    (HTTP/2 prior knowledge), then, with the same h2load parameters and the
#    same number of server threads, against nghttpd (nghttp2's reference
#    server, built on the same library) serving a static file with the same
#    body. Prints both req/s and the ratio. Target: lmdm >= 0.8 x nghttpd.
# 2. Memory: lmdm's resident set size before and with N idle HTTP/2
#    connections open (bench/idle_conns). Target: <= 64 KiB per connection.
#
# Everything runs on a private PostgreSQL in a temporary directory, which is
# removed at the end together with every process this script started.
set -euo pipefail

PROG=${0##*/}
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${LMDM_BUILD_DIR:-$SRC/build}

REQUESTS=200000
CLIENTS=100
STREAMS=10
H2LOAD_THREADS=1
SERVER_THREADS=1
ROUNDS=3
IDLE=1000
DO_BUILD=1
PIN=1
STRICT=0
TARGET_RATIO=0.8
TARGET_KIB=64

usage() {
    cat <<EOF
Usage: $PROG [options]

Throughput of lmdm vs nghttpd (h2load, HTTP/2 prior knowledge, GET /healthz)
and lmdm's memory per idle HTTP/2 connection. See bench/README.md.

Options:
  -n N             requests per h2load run (default $REQUESTS)
  -c N             h2load clients (connections) (default $CLIENTS)
  -m N             h2load concurrent streams per connection (default $STREAMS)
  -t N             h2load threads (default $H2LOAD_THREADS)
  --threads N      server threads: lmdm workers and nghttpd -n (default $SERVER_THREADS)
  --rounds N       measured rounds per server; the median counts (default $ROUNDS)
  --idle N         idle connections for the memory figure (default $IDLE)
  --no-pin         do not pin the servers and h2load to separate CPUs
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
        -n) REQUESTS=${2:-}; posint "$REQUESTS" -n; shift ;;
        -c) CLIENTS=${2:-}; posint "$CLIENTS" -c; shift ;;
        -m) STREAMS=${2:-}; posint "$STREAMS" -m; shift ;;
        -t) H2LOAD_THREADS=${2:-}; posint "$H2LOAD_THREADS" -t; shift ;;
        --threads) SERVER_THREADS=${2:-}; posint "$SERVER_THREADS" --threads; shift ;;
        --rounds) ROUNDS=${2:-}; posint "$ROUNDS" --rounds; shift ;;
        --idle) IDLE=${2:-}; posint "$IDLE" --idle; shift ;;
        --no-pin) PIN=0 ;;
        --build-dir) BUILD=${2:-}; [ -n "$BUILD" ] || die "--build-dir needs a directory"; shift ;;
        --no-build) DO_BUILD=0 ;;
        --strict) STRICT=1 ;;
        *) echo "$PROG: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
case "$BUILD" in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
[ "$CLIENTS" -ge "$H2LOAD_THREADS" ] || die "-c ($CLIENTS) must be at least -t ($H2LOAD_THREADS)"
[ "$SERVER_THREADS" -le 256 ] || die "--threads is at most 256 (lmdm's workers bound)"

say() { echo "==> $*"; }

# ------------------------------------------------------------------- tools

need_install=0
for tool in h2load nghttpd curl; do
    command -v "$tool" >/dev/null 2>&1 || need_install=1
done
if [ "$need_install" -eq 1 ]; then
    if [ "$(id -u)" -eq 0 ]; then
        say "installing missing packages (h2load and nghttpd: nghttp2-client, nghttp2-server)"
        "$SRC/deploy/install-deps.sh"
    else
        die "h2load, nghttpd or curl is missing; install them with: sudo $SRC/deploy/install-deps.sh"
    fi
fi

if [ "$DO_BUILD" -eq 1 ]; then
    if [ ! -f "$BUILD/CMakeCache.txt" ]; then
        say "configuring $BUILD"
        cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo
    fi
    say "building lmdm and idle_conns in $BUILD"
    cmake --build "$BUILD" --target lmdm idle_conns -j "$(nproc 2>/dev/null || echo 2)"
fi
LMDM=$BUILD/lmdm
IDLE_CONNS=$BUILD/bench/idle_conns
[ -x "$LMDM" ] && [ -x "$IDLE_CONNS" ] || die "$LMDM or $IDLE_CONNS missing (build first, or drop --no-build)"
if [ -f "$BUILD/CMakeCache.txt" ]; then
    grep -q '^LMDM_SANITIZE:BOOL=ON' "$BUILD/CMakeCache.txt" &&
        echo "$PROG: WARNING: $BUILD is a sanitizer build; its figures mean little" >&2
    grep -q '^CMAKE_BUILD_TYPE:STRING=Debug' "$BUILD/CMakeCache.txt" &&
        echo "$PROG: WARNING: $BUILD is a Debug build; its figures mean little" >&2
fi

# Descriptors: h2load's connections, the idle ones, and some slack, for lmdm
# (which inherits this limit) and for the clients.
need_fds=$((CLIENTS + IDLE + 256))
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$need_fds" ]; then
    die "this benchmark needs $need_fds open files but the hard limit is $hard (raise it, e.g. in /etc/security/limits.conf)"
fi
if [ "$(ulimit -Sn)" != unlimited ] && [ "$(ulimit -Sn)" -lt "$need_fds" ]; then
    ulimit -Sn "$need_fds"
fi

# ------------------------------------------------------------ environment

T=""
LMDM_PID=""
NGHTTPD_PID=""
IDLE_PID=""
PG_STARTED=0

# shellcheck disable=SC2317 # called by bench_cleanup
bench_extra_cleanup() {
    stop_pid "$IDLE_PID"
    stop_pid "$NGHTTPD_PID"
}
# shellcheck source=bench/lib.sh
. "$SRC/bench/lib.sh"

# CPU pinning: servers on the first CPUs, h2load on the next ones, so that
# neither steals the other's core. Only when there are enough CPUs.
NCPU=$(nproc 2>/dev/null || echo 1)
SERVER_PIN=()
CLIENT_PIN=()
if [ "$PIN" -eq 1 ] && command -v taskset >/dev/null 2>&1 &&
    [ "$NCPU" -ge $((SERVER_THREADS + H2LOAD_THREADS)) ]; then
    cpus() { if [ "$1" -eq "$2" ]; then echo "$1"; else echo "$1-$2"; fi; }
    SERVER_PIN=(taskset -c "$(cpus 0 $((SERVER_THREADS - 1)))")
    CLIENT_PIN=(taskset -c "$(cpus "$SERVER_THREADS" $((SERVER_THREADS + H2LOAD_THREADS - 1)))")
fi

say "private PostgreSQL in $T/pg"
bash "$SRC/deploy/pg.sh" init --fast "$T/pg" >/dev/null
PG_STARTED=1
bash "$SRC/deploy/pg.sh" start "$T/pg" >/dev/null
bash "$SRC/deploy/pg.sh" createdb "$T/pg" lmdm >/dev/null
CONNINFO=$(bash "$SRC/deploy/pg.sh" conninfo "$T/pg" lmdm)

LMDM_PORT=$(free_port)
cat >"$T/lmdm.conf" <<EOF
# Generated by bench/http.sh. Request logging is off (log_level = warn):
# nghttpd logs nothing either, and one log line per request would dominate.
listen_tls = ""
listen_plain = "127.0.0.1:$LMDM_PORT"
workers = $SERVER_THREADS
database_url = "$CONNINFO"
migrations_dir = "$SRC/migrations"
db_pool_size = 1
idle_timeout = 1h
log_level = warn
EOF
unset LMDM_DATABASE_URL LMDM_CONFIG
"$LMDM" migrate --config "$T/lmdm.conf" >/dev/null

start_lmdm() {
    ${SERVER_PIN[@]+"${SERVER_PIN[@]}"} "$LMDM" serve --config "$T/lmdm.conf" >>"$T/lmdm.log" 2>&1 &
    LMDM_PID=$!
    for _ in $(seq 100); do
        if curl -fsS -o /dev/null --http2-prior-knowledge "http://127.0.0.1:$LMDM_PORT/healthz" 2>/dev/null; then
            return 0
        fi
        kill -0 "$LMDM_PID" 2>/dev/null || break
        sleep 0.1
    done
    cat "$T/lmdm.log" >&2
    die "lmdm serve did not come up"
}

say "starting lmdm ($SERVER_THREADS worker(s)) on 127.0.0.1:$LMDM_PORT"
start_lmdm

# nghttpd serves the very bytes /healthz answers, as a file of the same name.
mkdir -p "$T/www"
curl -fsS --http2-prior-knowledge "http://127.0.0.1:$LMDM_PORT/healthz" -o "$T/www/healthz"
BODY_BYTES=$(wc -c <"$T/www/healthz")
NGHTTPD_PORT=$(free_port)
say "starting nghttpd (-n $SERVER_THREADS) on 127.0.0.1:$NGHTTPD_PORT serving a $BODY_BYTES-byte file"
${SERVER_PIN[@]+"${SERVER_PIN[@]}"} nghttpd --no-tls -n "$SERVER_THREADS" -d "$T/www" "$NGHTTPD_PORT" \
    >"$T/nghttpd.log" 2>&1 &
NGHTTPD_PID=$!
for _ in $(seq 100); do
    curl -fsS -o /dev/null --http2-prior-knowledge "http://127.0.0.1:$NGHTTPD_PORT/healthz" 2>/dev/null && break
    kill -0 "$NGHTTPD_PID" 2>/dev/null || { cat "$T/nghttpd.log" >&2; die "nghttpd did not start"; }
    sleep 0.1
done

# ------------------------------------------------------------- throughput

# run_h2load NAME PORT PID REQUESTS -> "REQ/S CPU%" on stdout, where CPU% is
# the server's CPU use during the run (100 per fully busy thread): a server
# well below its threads x 100 means the client, not the server, set the pace.
# The full h2load report stays in $T.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
run_h2load() {
    local name=$1 port=$2 pid=$3 n=$4 out rps ok t0 t1 c0 c1
    out="$T/h2load-$name.txt"
    c0=$(ticks "$pid")
    t0=$(date +%s%N)
    if ! ${CLIENT_PIN[@]+"${CLIENT_PIN[@]}"} h2load -n "$n" -c "$CLIENTS" -m "$STREAMS" -t "$H2LOAD_THREADS" \
        "http://127.0.0.1:$port/healthz" >"$out" 2>&1; then
        cat "$out" >&2
        die "h2load against $name failed"
    fi
    t1=$(date +%s%N)
    c1=$(ticks "$pid")
    rps=$(sed -n 's/^finished in [^,]*, \([0-9.]*\) req\/s.*/\1/p' "$out")
    ok=$(sed -n 's/^status codes: \([0-9]*\) 2xx.*/\1/p' "$out")
    if [ -z "$rps" ] || [ "${ok:-0}" != "$n" ]; then
        cat "$out" >&2
        die "h2load against $name: not every request got a 2xx answer (see above)"
    fi
    awk -v r="$rps" -v c=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v ns=$((t1 - t0)) \
        'BEGIN { printf "%s %.0f\n", r, 100 * c / hz / (ns / 1e9) }'
}
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

H2LOAD_DESC="h2load -n $REQUESTS -c $CLIENTS -m $STREAMS -t $H2LOAD_THREADS"
say "load average before the runs: $(cut -d' ' -f1-3 /proc/loadavg) on $NCPU CPU(s)${SERVER_PIN[*]:+; servers pinned to CPU ${SERVER_PIN[2]}, h2load to CPU ${CLIENT_PIN[2]}}"
say "warm-up ($((REQUESTS / 10 + 1)) requests each)"
run_h2load lmdm "$LMDM_PORT" "$LMDM_PID" $((REQUESTS / 10 + 1)) >/dev/null
run_h2load nghttpd "$NGHTTPD_PORT" "$NGHTTPD_PID" $((REQUESTS / 10 + 1)) >/dev/null

say "$H2LOAD_DESC, GET /healthz over h2c, $ROUNDS round(s)"
: >"$T/rps-lmdm"
: >"$T/rps-nghttpd"
for r in $(seq "$ROUNDS"); do
    res=$(run_h2load lmdm "$LMDM_PORT" "$LMDM_PID" "$REQUESTS")
    read -r a acpu <<<"$res"
    res=$(run_h2load nghttpd "$NGHTTPD_PORT" "$NGHTTPD_PID" "$REQUESTS")
    read -r b bcpu <<<"$res"
    echo "$a" >>"$T/rps-lmdm"
    echo "$b" >>"$T/rps-nghttpd"
    printf '    round %d: lmdm %8.0f req/s (server CPU %3d%%)    nghttpd %8.0f req/s (server CPU %3d%%)\n' \
        "$r" "$a" "$acpu" "$b" "$bcpu"
done
RPS_LMDM=$(median <"$T/rps-lmdm")
RPS_NGHTTPD=$(median <"$T/rps-nghttpd")
RATIO=$(awk -v a="$RPS_LMDM" -v b="$RPS_NGHTTPD" 'BEGIN { printf "%.2f", a / b }')
RATIO_OK=$(awk -v r="$RATIO" -v t="$TARGET_RATIO" 'BEGIN { print (r >= t) ? "met" : "MISSED" }')
stop_pid "$NGHTTPD_PID"
NGHTTPD_PID=""

# ----------------------------------------------------------------- memory

# A fresh broker: memory the load test left in the allocator would otherwise
# absorb the new connections and hide their cost. One request first, so that
# one-time set-up (first connection, first request) is in the baseline.
say "memory: restarting lmdm, then opening $IDLE idle HTTP/2 connections"
stop_pid "$LMDM_PID"
LMDM_PID=""
start_lmdm
sleep 0.5
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$LMDM_PID/status"; }
open_conns() {
    curl -fsS --http2-prior-knowledge "http://127.0.0.1:$LMDM_PORT/metrics" |
        awk '/^lmdm_connections_open[ {]/ { s += $NF } END { print s + 0 }'
}
RSS_BEFORE=$(rss_kib)
"$IDLE_CONNS" -n "$IDLE" -t 60 127.0.0.1 "$LMDM_PORT" >"$T/idle.out" 2>"$T/idle.err" &
IDLE_PID=$!
for _ in $(seq 650); do
    grep -q '^established ' "$T/idle.out" && break
    if ! kill -0 "$IDLE_PID" 2>/dev/null; then
        cat "$T/idle.err" >&2
        die "idle_conns could not establish $IDLE connections"
    fi
    sleep 0.1
done
grep -q '^established ' "$T/idle.out" || die "idle_conns did not finish in time"
sleep 1 # let the broker settle (nothing should change: the connections are idle)
RSS_AFTER=$(rss_kib)
OPEN=$(open_conns) # includes this query's own connection
kill -0 "$IDLE_PID" 2>/dev/null || { cat "$T/idle.err" >&2; die "idle_conns ended early"; }
stop_pid "$IDLE_PID"
IDLE_PID=""
PER_CONN=$(awk -v a="$RSS_AFTER" -v b="$RSS_BEFORE" -v n="$IDLE" 'BEGIN { printf "%.1f", (a - b) / n }')
MEM_OK=$(awk -v p="$PER_CONN" -v t="$TARGET_KIB" 'BEGIN { print (p <= t) ? "met" : "MISSED" }')

# ----------------------------------------------------------------- report

cat <<EOF

== Throughput ($H2LOAD_DESC, GET /healthz, $BODY_BYTES-byte body, h2c;
   $SERVER_THREADS server thread(s) each; median of $ROUNDS round(s))
   lmdm      $(printf '%10.0f' "$RPS_LMDM") req/s
   nghttpd   $(printf '%10.0f' "$RPS_NGHTTPD") req/s
   ratio     $RATIO x nghttpd       target >= $TARGET_RATIO   $RATIO_OK

== Memory ($IDLE idle HTTP/2 connections; lmdm reported $OPEN open)
   VmRSS     $RSS_BEFORE KiB before, $RSS_AFTER KiB with the connections open
   per idle connection  $PER_CONN KiB       target <= $TARGET_KIB KiB   $MEM_OK
EOF
# Errors in the broker's log make the figures suspect (warnings such as "no
# broker CA" are expected: the benchmark configures only what it measures).
errors=$(grep -c ' error ' "$T/lmdm.log" || true)
if [ "$errors" -gt 0 ]; then
    echo
    echo "lmdm logged $errors error line(s); the first ones:"
    grep ' error ' "$T/lmdm.log" | head -n 5
fi
if [ "$STRICT" -eq 1 ] && { [ "$RATIO_OK" != met ] || [ "$MEM_OK" != met ]; }; then
    exit 3
fi
exit 0
