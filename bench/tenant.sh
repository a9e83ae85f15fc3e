#!/usr/bin/env bash
# Tenant API benchmark of lmdm (see bench/README.md, issue 4).
#
# Two tenants, each enrolled on every one of N simulated devices (lmdm-sim).
#   (a) enqueue rate: h2load posts ManagedApplicationList commands (JSON,
#       allowed by the policy) to POST /v1/enrollments/{id}/commands over h2c,
#       one h2load per tenant, spread over that tenant's enrollments. Accepted
#       commands/s (202 answers), p50/p99, PostgreSQL round trips per request
#       (pg_stat_statements). As the limit, pgbench runs the same three
#       statements the broker runs per request (API key lookup, the policy
#       context, then tenant_enqueue_decided), prepared, over the unix socket,
#       with as many clients
#       as the broker has database connections, in the same run.
#   (b) end-to-end latency: both tenants' webhooks point at webhook-sink, the
#       devices poll continuously and answer (lmdm-sim fleet --mode cycle),
#       and K commands are posted one by one at a modest rate. For each, the
#       time from posting to the sink receiving its signed command.result.
# Policy and audit are on: each post records its decision and a ledger entry
# (triggers, same transaction), and the broker's sealer chains and signs the
# ledger meanwhile. APNs is off: devices find their commands by polling.
#
# Everything runs on a private PostgreSQL in a temporary directory, which is
# removed at the end together with every process this script started.
set -euo pipefail

PROG=${0##*/}
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$SRC/bench/lib.sh"

DEVICES=50
DURATION=10
COMMANDS=200
RATE=20
CLIENTS=8
STREAMS=8
POLLERS=4
WORKERS=1
POOL=4

usage() {
    cat <<EOF
Usage: $PROG [options]

Tenant API enqueue rate (h2load, next to pgbench running the same statements alone) and
end-to-end latency from posting a command to its result webhook, with simulated devices
answering. See bench/README.md.

Options:
  --devices N      simulated devices, each enrolled in both tenants (default $DEVICES;
                   enrollment costs ~0.15 s per device: the broker makes an RSA key each)
  --duration S     seconds of the enqueue phase, and of pgbench (default $DURATION)
  --clients C      h2load connections in all, split over the two tenants (default $CLIENTS)
  --streams M      requests in flight per h2load connection (default $STREAMS)
  --commands K     commands whose end-to-end latency is measured (default $COMMANDS)
  --rate R         commands posted per second in the latency phase (default $RATE)
  --pollers P      device requests in flight in the latency phase (default $POLLERS)
  --workers N      lmdm worker threads (default $WORKERS)
  --pool N         db_pool_size, connections per worker (default $POOL);
                   pgbench gets workers x pool clients
  --no-pin         do not pin lmdm and the clients to separate CPUs
  --build-dir DIR  build directory (default: \$LMDM_BUILD_DIR or build/)
  --no-build       use the binaries already in the build directory
  -h, --help       this help
EOF
}

while [ "$#" -gt 0 ]; do
    case "$1" in
        --devices) DEVICES=${2:-}; posint "$DEVICES" --devices; shift ;;
        --duration) DURATION=${2:-}; posint "$DURATION" --duration; shift ;;
        --clients) CLIENTS=${2:-}; posint "$CLIENTS" --clients; shift ;;
        --streams) STREAMS=${2:-}; posint "$STREAMS" --streams; shift ;;
        --commands) COMMANDS=${2:-}; posint "$COMMANDS" --commands; shift ;;
        --rate) RATE=${2:-}; posint "$RATE" --rate; shift ;;
        --pollers) POLLERS=${2:-}; posint "$POLLERS" --pollers; shift ;;
        --workers) WORKERS=${2:-}; posint "$WORKERS" --workers; shift ;;
        --pool) POOL=${2:-}; posint "$POOL" --pool; shift ;;
        *) bench_option "$@"; shift $((BENCH_ARGS - 1)) ;;
    esac
    shift
done
[ "$WORKERS" -le 256 ] || die "--workers is at most 256"
[ "$POOL" -le 64 ] || die "--pool is at most 64"
[ "$CLIENTS" -ge 2 ] || die "--clients is at least 2 (one h2load connection per tenant)"
[ "$RATE" -le 200 ] || die "--rate is at most 200 (one curl per command)"

# ------------------------------------------------------------------- tools

bench_need_tools "postgresql-client, jq, curl, nghttp2-client; see deploy/install-deps.sh" \
    curl jq psql pgbench h2load
bench_build lmdm lmdm-sim webhook-sink
LMDM=$BUILD/lmdm
SIM=$BUILD/tests/sim/lmdm-sim
SINK=$BUILD/tests/tools/webhook-sink
bench_check_build "$LMDM" "$SIM" "$SINK"

bench_raise_fds $((DEVICES + CLIENTS + 256))

# ------------------------------------------------------------ environment

SINK_PID=""
TAIL_PID=""
STAMP_PID=""
FLEET_PID=""
H2_PIDS=()

# shellcheck disable=SC2317 # called from bench_cleanup
bench_extra_cleanup() {
    local p
    for p in ${H2_PIDS[@]+"${H2_PIDS[@]}"}; do stop_pid "$p"; done
    stop_pid "$FLEET_PID"
    stop_pid "$TAIL_PID"
    stop_pid "$STAMP_PID"
    stop_pid "$SINK_PID"
}

bench_begin

# CPU pinning: lmdm on the first WORKERS CPUs, every client (h2load, curl,
# the simulator, the sink, pgbench) on the next one. PostgreSQL is not
# pinned: it serves both.
bench_pin "$WORKERS" 1

bench_pg_start $((WORKERS * POOL))

bench_start_tenant_broker bench/tenant.sh "tenant_rate = 1000000" "tenant_burst = 1000000"

# ------------------------------------------------- devices, tenants, keys

STATE=$T/fleet.json
# fleet MODE SECONDS CONCURRENCY: the simulator over h2c (Mdm-Signature)
fleet_args() { # fleet_args MODE SECONDS CONCURRENCY
    FLEET=("$SIM" fleet --url "$BASE" --h2c --count "$DEVICES" --duration "$2" --mode "$1"
        --concurrency "$3" --state "$STATE" --json)
}

t0=$(date +%s)
say "enrolling $DEVICES devices (lmdm-sim fleet: enroll, Authenticate, TokenUpdate)"
fleet_args idle 1 16
client "${FLEET[@]}" >"$T/enroll.txt" 2>&1 || { cat "$T/enroll.txt" >&2; die "lmdm-sim fleet could not enroll the devices"; }
bench_check_enrolled "$t0"

TA=$("$LMDM" tenant add "Bench A" --config "$CONF") || die "lmdm tenant add failed"
TB=$("$LMDM" tenant add "Bench B" --config "$CONF") || die "lmdm tenant add failed"
KA=$("$LMDM" key issue --tenant "$TA" --role admin --config "$CONF") || die "lmdm key issue failed"
KB=$("$LMDM" key issue --tenant "$TB" --role admin --config "$CONF") || die "lmdm key issue failed"
declare -A KEY=([A]=$KA [B]=$KB) TID=([A]=$TA [B]=$TB)

# The consent flow is interactive: enrollments are seeded directly, one per
# device and tenant, with a random pseudonym of the API's shape
# (e + 26 base32 characters; hex digits outside [a-z2-7] are mapped in).
psqlq "INSERT INTO enrollments (tenant_id, device_id, pseudonym)
       SELECT t.id, d.id, 'e' || translate(left(md5(t.id || '/' || d.id || '/' || random()), 26), '0189', 'wxyz')
         FROM tenants t CROSS JOIN devices d WHERE d.state = 'enrolled'" >/dev/null
NENR=$(psqlq "SELECT count(*) FROM enrollments WHERE state = 'active'")
[ "$NENR" -eq $((2 * DEVICES)) ] || die "$NENR enrollments seeded, expected $((2 * DEVICES))"
for t in A B; do
    psqlq "SELECT pseudonym FROM enrollments WHERE tenant_id = ${TID[$t]} ORDER BY id" >"$T/enr-$t.txt"
    sed "s|^|$BASE/v1/enrollments/|; s|\$|/commands|" "$T/enr-$t.txt" >"$T/uris-$t.txt"
done
BODY='{"Command":{"RequestType":"ManagedApplicationList"}}'
printf '%s' "$BODY" >"$T/body.json"

# One API request by hand: the answer must be 202.
r=$(curl -s --http2-prior-knowledge -H "authorization: Bearer $KA" -H 'content-type: application/json' \
    --data-binary "@$T/body.json" -w '\n%{http_code}' "$(head -n 1 "$T/uris-A.txt")")
[ "$(tail -n 1 <<<"$r")" = 202 ] || { echo "$r" >&2; die "POST /v1/enrollments/{id}/commands did not answer 202"; }

# ------------------------------------------------------- helpers

# Top-level statements the server ran since the last reset, ours and the
# webhook deliverer's (outbox polling, about one a second) excluded.
stmt_calls() { # stmt_calls [ILIKE pattern]
    psqlq "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements
            WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND query NOT ILIKE '%pg_stat_statements%' AND query NOT ILIKE '%outbox%'
              AND query ILIKE '${1:-%}'"
}
# Numbers on stdin (one a line) -> "p50 p99 max count" (nearest rank).
pctl() {
    sort -g | awk '{ v[NR] = $1 }
        END {
            if (NR == 0) { print "- - - 0"; exit }
            i50 = int(NR * 0.50 + 0.999999); i99 = int(NR * 0.99 + 0.999999)
            printf "%.2f %.2f %.2f %d\n", v[i50], v[i99], v[NR], NR
        }'
}
cancel_pending() {
    psqlq "UPDATE commands SET state = 'cancelled' WHERE state IN ('queued', 'sent', 'notnow')" >/dev/null
    psqlq "VACUUM ANALYZE commands" >/dev/null
}

# ------------------------------------------------ (a) enqueue rate

CA=$(((CLIENTS + 1) / 2))
CB=$((CLIENTS / 2))
h2load_both() { # h2load_both NAME h2load-args...: both tenants at once, NAME-{A,B}.{txt,log}
    local name=$1 t c
    shift
    H2_PIDS=()
    for t in A B; do
        if [ "$t" = A ]; then c=$CA; else c=$CB; fi
        client_bg h2load -t 1 -c "$c" -m "$STREAMS" -i "$T/uris-$t.txt" -d "$T/body.json" \
            -H "authorization: Bearer ${KEY[$t]}" -H 'content-type: application/json' \
            --log-file="$T/$name-$t.log" "$@" >"$T/$name-$t.txt" 2>&1
        H2_PIDS+=($!)
    done
    for t in A B; do
        wait "${H2_PIDS[0]}" || { cat "$T/$name-$t.txt" >&2; die "h2load failed"; }
        H2_PIDS=("${H2_PIDS[@]:1}")
    done
}

say "(a) warm-up: 1 s of posts"
h2load_both warm -D 1
cancel_pending

say "(a) enqueue: h2load, $CA + $CB connection(s) x $STREAMS streams (tenants A + B), ${DURATION} s"
stmt_reset
c0=$(ticks "$LMDM_PID")
g0=$(pg_ticks)
n0=$(date +%s%N)
h2load_both h2 -D "$DURATION"
n1=$(date +%s%N)
c1=$(ticks "$LMDM_PID")
g1=$(pg_ticks)
CALLS=$(stmt_calls)
CALLS_KEY=$(stmt_calls '%api_key_get%')
CALLS_CTX=$(stmt_calls '%tenant_policy_context%')
CALLS_ENQ=$(stmt_calls '%tenant_enqueue_decided%')
A_CPU=$(cpu_pct $((c1 - c0)) $((n1 - n0)))
A_PGCPU=$(cpu_pct $((g1 - g0)) $((n1 - n0)))

# Per-request log of h2load: start (µs since the epoch), status, duration (µs).
A_REQ=0
A_STARTED=0
A_LOST=0
A_202=0
A_RPS=0
for t in A B; do
    sed -n 's/^finished in .*/    tenant '"$t"': &/p; s/^requests: .*/    tenant '"$t"': &/p; s/^status codes: .*/    tenant '"$t"': &/p' "$T/h2-$t.txt"
    secs=$(sed -n 's/^finished in \([0-9.]*\)s,.*/\1/p' "$T/h2-$t.txt")
    n=$(wc -l <"$T/h2-$t.log")
    ok=$(awk -F'\t' '$2 == 202' "$T/h2-$t.log" | wc -l)
    [ -n "$secs" ] || { cat "$T/h2-$t.txt" >&2; die "no duration in h2load's output"; }
    # Requests h2load started (the server ran them, the last ones after
    # h2load stopped waiting) and those that ended without an answer.
    started=$(sed -n 's/^requests: .* \([0-9]*\) started,.*/\1/p' "$T/h2-$t.txt")
    lost=$(sed -n 's/^requests: .* \([0-9]*\) errored, \([0-9]*\) timeout.*/\1 + \2/p' "$T/h2-$t.txt")
    A_STARTED=$((A_STARTED + ${started:-0}))
    A_LOST=$((A_LOST + ${lost:-0}))
    A_REQ=$((A_REQ + n))
    A_202=$((A_202 + ok))
    A_RPS=$(awk -v a="$A_RPS" -v ok="$ok" -v s="$secs" 'BEGIN { printf "%.1f", a + ok / s }')
done
A_NON202=$((A_REQ - A_202 + A_LOST))
read -r A_P50 A_P99 _ _ < <(cat "$T/h2-A.log" "$T/h2-B.log" | awk -F'\t' '{ print $3 / 1000 }' | pctl)
A_RT=$(awk -v c="$CALLS" -v r="$A_STARTED" 'BEGIN { printf "%.2f", (r > 0) ? c / r : 0 }')
QUEUED=$(psqlq "SELECT count(*) FROM commands WHERE state = 'queued'")
if [ "$A_NON202" -gt 0 ]; then
    echo "    answers other than 202 ($A_LOST request(s) without an answer; by status):"
    cat "$T/h2-A.log" "$T/h2-B.log" | awk -F'\t' '$2 != 202 { n[$2]++ } END { for (s in n) printf "      %s %d\n", s, n[s] }'
fi
printf '    %d requests, %d accepted (202), %s accepted/s; statements: %s (api_key_get %s, tenant_policy_context %s, tenant_enqueue_decided %s); queue now %s\n' \
    "$A_REQ" "$A_202" "$A_RPS" "$CALLS" "$CALLS_KEY" "$CALLS_CTX" "$CALLS_ENQ" "$QUEUED"

# ---------------------------------------------------------------- pgbench

PGCLIENTS=$((WORKERS * POOL))
KEYID_A=$(cut -d_ -f2 <<<"$KA")
psqlq "CREATE TABLE bench_enrollments AS
         SELECT row_number() OVER (ORDER BY id)::int AS i, tenant_id, pseudonym FROM enrollments;
       CREATE UNIQUE INDEX ON bench_enrollments (i); ANALYZE bench_enrollments" >/dev/null
# The payload the broker stored for the same JSON command, on one line (the
# plist stays valid without its newlines).
PAYLOAD=$(psqlq "SELECT quote_literal(replace(payload, chr(10), '')) FROM commands WHERE tenant_id <> 0 ORDER BY id LIMIT 1")
[ -n "$PAYLOAD" ] || die "no tenant command in the database to take the payload from"
# One API request as the database sees it: the key lookup, the policy
# context, then the enqueue with its decision, with the broker's parameters
# (fresh uuids, no tenant CommandUUID, no entity, push on). The enrollment's tenant and pseudonym come from an
# indexed table in the same statement.
cat >"$T/enqueue.sql" <<EOF
\\set i random(1, $NENR)
SELECT tenant_id, role, key_hash, revoked, tenant_active FROM api_key_get(:keyid);
SELECT q.code, q.platform, q.user_enrollment, q.apps, q.profiles, q.other_apps, q.other_profiles, q.wipe_as_retire FROM bench_enrollments b, LATERAL tenant_policy_context(b.tenant_id, b.pseudonym) q WHERE b.i = :i;
SELECT q.code, q.created_at FROM bench_enrollments b, LATERAL tenant_enqueue_decided(b.tenant_id, b.pseudonym, gen_random_uuid(), gen_random_uuid(), NULL, 'ManagedApplicationList', $PAYLOAD, NULL, NULL, NULL, false, 'allow', NULL) q WHERE b.i = :i;
EOF
cancel_pending
say "pgbench: the three statements alone, $PGCLIENTS client(s) (= workers x db_pool_size), prepared, ${DURATION} s"
g0=$(pg_ticks)
n0=$(date +%s%N)
bench_pgbench -c "$PGCLIENTS" -D keyid="$KEYID_A" -f "$T/enqueue.sql"
n1=$(date +%s%N)
sleep 0.5 # pgbench's backends end and are reaped (their time then counts)
PG_PGCPU=$(cpu_pct $(($(pg_ticks) - g0)) $((n1 - n0)))
bench_pgbench_figures
PGOK=$(psqlq "SELECT count(*) FROM commands WHERE tenant_id <> 0 AND state = 'queued'")
[ "$PGOK" -gt 0 ] || die "pgbench queued no command (tenant_enqueue_decided did not answer ok)"
printf '    %s tps, latency average %s ms, %s commands queued\n' "$TPS" "$PGLAT" "$PGOK"
cancel_pending

# ------------------------------------------------ (b) end-to-end latency

say "(b) webhook-sink as both tenants' webhook"
PUBKEY=$(curl -fsS "$BASE/v1/keys" | jq -r '.keys[0].public_key')
case "$PUBKEY" in "" | null) die "GET /v1/keys gave no public key" ;; esac
: >"$T/sink.out"
client_bg "$SINK" --port 0 --pubkey "$PUBKEY" --out "$T/sink.out" >"$T/sink.stdout" 2>"$T/sink.stderr"
SINK_PID=$!
SINK_PORT=""
for _ in $(seq 50); do
    SINK_PORT=$(sed -n 's/^listening 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$T/sink.stdout")
    [ -n "$SINK_PORT" ] && break
    kill -0 "$SINK_PID" 2>/dev/null || break
    sleep 0.1
done
[ -n "$SINK_PORT" ] || { cat "$T/sink.stderr" >&2; die "webhook-sink did not start"; }
for t in A B; do
    code=$(curl -s -o /dev/null -w '%{http_code}' --http2-prior-knowledge -X PUT \
        -H "authorization: Bearer ${KEY[$t]}" -H 'content-type: application/json' \
        -d "{\"url\":\"http://127.0.0.1:$SINK_PORT/\"}" "$BASE/v1/webhook")
    [ "$code" = 204 ] || die "PUT /v1/webhook for tenant $t answered $code"
done

# The sink writes a line per delivery but no time: each line is stamped
# (µs since the epoch) as it appears (tail -F is woken by inotify).
mkfifo "$T/sink.fifo"
(while IFS= read -r l; do printf '%s %s\n' "${EPOCHREALTIME/[.,]/}" "$l"; done <"$T/sink.fifo" >"$T/sink.stamped") &
STAMP_PID=$!
tail -n +1 -F "$T/sink.out" >"$T/sink.fifo" 2>/dev/null &
TAIL_PID=$!

# post TENANT PSEUDONYM -> "start_us end_us http_code command_id"
post() {
    local s r
    s=${EPOCHREALTIME/[.,]/}
    r=$(curl -s --http2-prior-knowledge -H "authorization: Bearer ${KEY[$1]}" -H 'content-type: application/json' \
        --data-binary "@$T/body.json" -w '\n%{http_code}' "$BASE/v1/enrollments/$2/commands") || true
    printf '%s %s %s %s\n' "$s" "${EPOCHREALTIME/[.,]/}" "$(tail -n 1 <<<"$r")" \
        "$(head -n 1 <<<"$r" | jq -r '.id // "-"' 2>/dev/null || echo -)"
}
delivered() { wc -l <"$T/sink.stamped"; }

# The fleet runs long enough for the probes, the posts and the stragglers;
# it is stopped as soon as every result has arrived.
FLEET_SECS=$((COMMANDS / RATE + 60))
say "(b) $DEVICES devices polling and answering (lmdm-sim fleet --mode cycle, $POLLERS in flight)"
fleet_args cycle "$FLEET_SECS" "$POLLERS"
client_bg "${FLEET[@]}" >"$T/fleet.txt" 2>&1
FLEET_PID=$!
# Probe: one command per tenant must come back through the webhook before
# the measurement (devices polling, deliverer and sink all working).
post A "$(head -n 1 "$T/enr-A.txt")" >"$T/probe.txt"
post B "$(head -n 1 "$T/enr-B.txt")" >>"$T/probe.txt"
awk '$3 != 202 { bad = 1 } END { exit bad }' "$T/probe.txt" || { cat "$T/probe.txt" >&2; die "probe posts were refused"; }
for _ in $(seq 300); do
    [ "$(delivered)" -ge 2 ] && break
    kill -0 "$FLEET_PID" 2>/dev/null || { cat "$T/fleet.txt" >&2; die "lmdm-sim fleet stopped"; }
    sleep 0.1
done
[ "$(delivered)" -ge 2 ] || { cat "$T/sink.out" "$T/fleet.txt" >&2; die "the probe results did not reach the webhook in 30 s"; }
BASELINE=$(delivered)

say "(b) posting $COMMANDS commands, $RATE/s, alternating tenants and enrollments"
stmt_reset
: >"$T/posts.txt"
b0=${EPOCHREALTIME/[.,]/}
mapfile -t ENR_A <"$T/enr-A.txt"
mapfile -t ENR_B <"$T/enr-B.txt"
for ((i = 0; i < COMMANDS; i++)); do
    if ((i % 2 == 0)); then post A "${ENR_A[$(((i / 2) % DEVICES))]}"; else post B "${ENR_B[$(((i / 2) % DEVICES))]}"; fi >>"$T/posts.txt"
    # Pace: the (i+1)th post starts no earlier than b0 + (i+1)/RATE.
    now=${EPOCHREALTIME/[.,]/}
    wait_us=$((b0 + (i + 1) * 1000000 / RATE - now))
    if ((wait_us > 0)); then sleep "$(printf '%d.%06d' $((wait_us / 1000000)) $((wait_us % 1000000)))"; fi
done
b1=${EPOCHREALTIME/[.,]/}
B_POSTED=$(awk '$3 == 202' "$T/posts.txt" | wc -l)
want=$((BASELINE + B_POSTED))
for _ in $(seq 300); do
    [ "$(delivered)" -ge "$want" ] && break
    kill -0 "$FLEET_PID" 2>/dev/null || break
    sleep 0.1
done
b2=${EPOCHREALTIME/[.,]/}
POLLS=$(stmt_calls '%mdm_connect%')
POLL_RPS=$(awk -v n="$POLLS" -v us=$((b2 - b0)) 'BEGIN { printf "%.0f", n / (us / 1e6) }')
stop_pid "$FLEET_PID"
FLEET_PID=""
sleep 0.2

# Latency per command: sink stamp of its command.result - start of its post.
# Sink line: "<stamp> <event> <delivery> <json body>".
awk '$2 == "command.result" { s = $1; sub(/^[^ ]+ [^ ]+ [^ ]+ /, ""); print s "\t" $0 }' "$T/sink.stamped" |
    jq -rR 'split("\t") as $f | [$f[0], ($f[1] | fromjson | .command.id // "-")] | @tsv' >"$T/arrivals.tsv"
awk 'NR == FNR { got[$2] = $1; next }
     $3 == 202 && ($4 in got) { printf "%.3f\n", (got[$4] - $1) / 1000 }' "$T/arrivals.tsv" "$T/posts.txt" >"$T/latency.txt"
read -r B_P50 B_P99 B_MAX B_N < <(pctl <"$T/latency.txt")
read -r B_API50 B_API99 _ _ < <(awk '$3 == 202 { printf "%.3f\n", ($2 - $1) / 1000 }' "$T/posts.txt" | pctl)
B_PACE=$(awk -v n="$COMMANDS" -v us=$((b1 - b0)) 'BEGIN { printf "%.1f", n / (us / 1e6) }')
# The same from the database's clocks: created_at (the enqueue transaction)
# to delivered_at (the deliverer recorded the sink's 2xx), with the steps
# between: queued -> handed to the device -> answered -> delivered.
read -r D_P50 D_P99 D_MAX W_SENT W_ANS W_DELIV < <(psqlq "
    WITH x AS (
      SELECT 1000 * extract(epoch FROM o.delivered_at - c.created_at) AS total,
             1000 * extract(epoch FROM c.sent_at - c.created_at) AS to_sent,
             1000 * extract(epoch FROM c.answered_at - c.sent_at) AS to_answer,
             1000 * extract(epoch FROM o.delivered_at - c.answered_at) AS to_deliver
        FROM outbox o JOIN commands c ON c.id = o.command_id
       WHERE o.event = 'command.result' AND o.delivered_at IS NOT NULL
         AND c.created_at >= to_timestamp($b0 / 1e6))
    SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY total)::numeric, 2),
           round(percentile_cont(0.99) WITHIN GROUP (ORDER BY total)::numeric, 2),
           round(max(total)::numeric, 2),
           round(percentile_cont(0.5) WITHIN GROUP (ORDER BY to_sent)::numeric, 2),
           round(percentile_cont(0.5) WITHIN GROUP (ORDER BY to_answer)::numeric, 2),
           round(percentile_cont(0.5) WITHIN GROUP (ORDER BY to_deliver)::numeric, 2)
      FROM x" | tr '|' ' ')
BAD_SINK=$(grep -c -E '^[0-9]+ (REFUSED|BADSIG) ' "$T/sink.stamped" || true)

# ----------------------------------------------------------------- report

echo
echo "== (a) Enqueue: POST /v1/enrollments/{id}/commands, ManagedApplicationList (JSON), h2c;"
echo "   h2load $CA + $CB connection(s) x $STREAMS streams over $((2 * DEVICES)) enrollments of 2 tenants, ${DURATION} s;"
echo "   lmdm: $WORKERS worker(s), db_pool_size $POOL; policy and audit ledger on (sealer running);"
echo "   load average $(cut -d' ' -f1-3 /proc/loadavg) on $NCPU CPU(s)"
printf '   %-8s %11s %9s %9s %10s %8s %9s %8s\n' "" accepted/s p50_ms p99_ms "db rt/req" non-202 "lmdm CPU" "PG CPU"
printf '   %-8s %11.0f %9.2f %9.2f %10s %8s %8s%% %7s%%\n' lmdm "$A_RPS" "$A_P50" "$A_P99" "$A_RT" "$A_NON202" \
    "$A_CPU" "$A_PGCPU"
echo
echo "== Limit: pgbench running api_key_get + tenant_policy_context + tenant_enqueue_decided alone ($PGCLIENTS clients, -M prepared, unix socket)"
printf '   pgbench  %11.0f tps (latency average %s ms), 3 db round trips per transaction, PG CPU %s%%\n' \
    "$TPS" "$PGLAT" "$PG_PGCPU"
printf '   ratio    %11.2f x pgbench\n' "$(awk -v a="$A_RPS" -v b="$TPS" 'BEGIN { print a / b }')"
echo
echo "== (b) End to end: post -> device polls, answers -> signed command.result at the webhook;"
echo "   $DEVICES devices polling ($POLLERS in flight, $POLL_RPS polls/s), posts at $B_PACE/s, apns off"
printf '   %-28s %9s %9s %9s\n' "" p50_ms p99_ms max_ms
printf '   %-28s %9s %9s %9s\n' "post -> sink (client clock)" "$B_P50" "$B_P99" "$B_MAX"
printf '   %-28s %9s %9s %9s\n' "created -> delivered (db)" "${D_P50:--}" "${D_P99:--}" "${D_MAX:--}"
printf '   %-28s %9s %9s\n' "the post itself (202)" "$B_API50" "$B_API99"
echo "   median steps (db): queued -> sent ${W_SENT:--} ms, sent -> answered ${W_ANS:--} ms, answered -> delivered ${W_DELIV:--} ms"
echo "   results: $B_N of $B_POSTED accepted posts arrived ($((COMMANDS - B_POSTED)) post(s) not accepted;" \
    "refused/bad-signature lines at the sink: $BAD_SINK)"

# Warnings too (failed webhook deliveries are warnings), but not the
# expected one about APNs being off.
bench_log_errors
if [ "$A_NON202" -gt 0 ] || [ "$B_N" -lt "$B_POSTED" ] || [ "$B_POSTED" -lt "$COMMANDS" ]; then
    echo
    echo "$PROG: some requests were refused or some results did not arrive (see above)" >&2
    exit 4
fi
exit 0
