#!/usr/bin/env bash
# Re-merge benchmark of lmdm's rules applier (see bench/README.md, issue 6,
# part 2): N devices seeded in SQL, three tenants with passcode rules put
# through the API, and `lmdm serve` merging every device's rules and queueing
# the broker profile only where the merged result changes.
#   initial  the enrollments arrive (one SQL transaction): every device merged,
#            every device gets a profile;
#   A 6->10  stricter than anyone: every device re-merged, N reinstalls;
#   C 4->5   still weaker than everyone: C's devices re-merged, 0 reinstalls;
#   B 8->9   A's 10 still dominates: B's devices re-merged, 0 reinstalls.
# Each step: time until no device is dirty, merges (rules_apply_gen calls in
# pg_stat_statements), commands queued against the expected count, lmdm's
# and PostgreSQL's CPU. As the reference, pgbench on one connection (like the
# applier) runs the applier's two statements per device (rules_inputs, then
# rules_apply_gen with the same payloads) alone, on the unchanged and on the
# install path.
#
# Everything runs on a private PostgreSQL in a temporary directory, which is
# removed at the end together with every process this script started.
set -euo pipefail

PROG=${0##*/}
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$SRC/bench/lib.sh"

DEVICES=10000
WORKERS=1
POOL=4
PCT_B=30 # devices with tenant B: id % 10 < 3
PCT_C=20 # devices with tenant C: id % 5 = 0 (half of them also have B)

usage() {
    cat <<EOF
Usage: $PROG [options]

Re-merge of N devices' device-wide rules by lmdm serve's applier after one tenant changes its
passcode rule: time, merges/s and profile reinstalls queued against the expected count, next to
PostgreSQL running the applier's statements alone (pgbench). See bench/README.md.

Options:
  --devices N      devices seeded in SQL (default $DEVICES); tenant A is on every one,
                   B on $PCT_B %, C on $PCT_C % (half of those also have B)
  --no-pin         do not pin lmdm and the clients to separate CPUs
  --build-dir DIR  build directory (default: \$LMDM_BUILD_DIR or build/)
  --no-build       use the binary already in the build directory
  -h, --help       this help
EOF
}

while [ "$#" -gt 0 ]; do
    case "$1" in
        --devices) DEVICES=${2:-}; posint "$DEVICES" --devices; shift ;;
        *) bench_option "$@"; shift $((BENCH_ARGS - 1)) ;;
    esac
    shift
done

bench_need_tools "postgresql-client, jq, curl; see deploy/install-deps.sh" curl jq psql pgbench
bench_build lmdm
LMDM=$BUILD/lmdm
bench_check_build "$LMDM"

# ------------------------------------------------------------ environment

bench_begin
# lmdm on the first CPU, curl, psql and pgbench on the next one; PostgreSQL
# is not pinned.
bench_pin "$WORKERS" 1
bench_pg_start $((WORKERS * POOL))

bench_start_tenant_broker bench/remerge.sh

# ------------------------------------------------------------- helpers

secs() { awk -v us="$1" 'BEGIN { printf "%.2f", us / 1e6 }'; } # secs MICROSECONDS
# Top-level calls of statements matching an ILIKE pattern since the last reset.
stmt_calls() {
    psqlq "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements
            WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND query NOT ILIKE '%pg_stat_statements%' AND query ILIKE '$1'"
}
dirty() { psqlq "SELECT count(*) FROM devices WHERE rules_dirty"; }
# put_rule TENANT MINLENGTH: PUT /v1/rules/passcode with the tenant's key.
put_rule() {
    local code
    code=$(curl -s -o "$T/put.out" -w '%{http_code}' --http2-prior-knowledge -X PUT \
        -H "authorization: Bearer ${KEY[$1]}" -H 'content-type: application/json' \
        -d "{\"requirePasscode\": true, \"minLength\": $2}" "$BASE/v1/rules/passcode") || true
    [ "$code" = 200 ] || { cat "$T/put.out" >&2; die "PUT /v1/rules/passcode for tenant $1 answered $code"; }
}
# Every device merged (polled every 50 ms by bench_wait_settled).
settled() { [ "$(dirty)" -eq 0 ]; }

# step NAME EXPECT_MERGES EXPECT_INSTALLS ACTION...: runs ACTION (which makes
# devices dirty), waits until they are settled, and appends a line to
# $T/steps.txt. The time counts from the start of ACTION (or from
# STEP_FROM_US when ACTION sets it: the seeding's commit, and the CPU then
# counts from the end of ACTION).
step() {
    local name=$1 want_m=$2 want_i=$3 c0 g0 t0 t1 act last merges inputs ins rem sec span cpu pgcpu
    shift 3
    stmt_reset
    last=$(psqlq "SELECT coalesce(max(id), 0) FROM commands")
    c0=$(ticks "$LMDM_PID")
    g0=$(pg_ticks)
    t0=$(now_us)
    STEP_FROM_US=""
    "$@"
    act=$(($(now_us) - t0))
    if [ -n "$STEP_FROM_US" ]; then # the applier starts at the commit
        t0=$STEP_FROM_US
        c0=$(ticks "$LMDM_PID")
        g0=$(pg_ticks)
    fi
    bench_wait_settled 0.05
    t1=$(now_us)
    cpu=$(cpu_pct $(($(ticks "$LMDM_PID") - c0)) $(((t1 - t0) * 1000)))
    pgcpu=$(cpu_pct $(($(pg_ticks) - g0)) $(((t1 - t0) * 1000)))
    merges=$(stmt_calls '%rules_apply_gen(%')
    inputs=$(stmt_calls '%rules_inputs(%')
    read -r ins rem sec span < <(psqlq "
        SELECT count(*) FILTER (WHERE request_type = 'InstallProfile'),
               count(*) FILTER (WHERE request_type = 'RemoveProfile'),
               count(*) FILTER (WHERE request_type = 'SecurityInfo'),
               coalesce(round((1000 * extract(epoch FROM max(created_at)) - $t0 / 1000.0)::numeric), -1)
          FROM commands WHERE id > $last AND tenant_id = 0" | tr '|' ' ')
    local ok=ok
    [ "$merges" -eq "$want_m" ] && [ "$ins" -eq "$want_i" ] && [ "$rem" -eq 0 ] && [ "$sec" -eq "$want_i" ] || ok=UNEXPECTED
    [ "$ok" = ok ] || MISMATCH=1
    printf '   %-30s %11s %8s %9.0f %6s/%-6s %6s %6s %9s %7s%% %6s%%  %s\n' "$name" "$merges/$want_m" \
        "$(secs $((t1 - t0)))" "$(awk -v n="$merges" -v us=$((t1 - t0)) 'BEGIN { print (us > 0) ? n / (us / 1e6) : 0 }')" \
        "$ins" "$want_i" "$rem" "$sec" "$([ "$span" -ge 0 ] && echo "$span" || echo -)" "$cpu" "$pgcpu" "$ok" >>"$T/steps.txt"
    printf '    %s: settled in %s s (the action itself %s s); %s merges (rules_inputs %s), %s InstallProfile, %s SecurityInfo\n' \
        "$name" "$(secs $((t1 - t0)))" "$(secs "$act")" "$merges" "$inputs" "$ins" "$sec"
}

# -------------------------------------------------- tenants, keys, rules

say "three tenants (lmdm tenant add), an admin key each (lmdm key issue)"
declare -A TID KEY
for t in A B C; do
    TID[$t]=$("$LMDM" tenant add "Bench $t" --config "$CONF") || die "lmdm tenant add failed"
    KEY[$t]=$("$LMDM" key issue --tenant "${TID[$t]}" --role admin --config "$CONF") || die "lmdm key issue failed"
done

# The rules come first, while no device is enrolled: the initial merge then
# sees every tenant's rule at once.
say "passcode rules through the API: A minLength 6, B 8, C 4"
put_rule A 6
put_rule B 8
put_rule C 4

say "seeding $DEVICES enrolled devices with their device channel (SQL)"
psqlq "INSERT INTO devices (device_key, enrollment_type, cert_fpr, state, info, enrolled_at)
       SELECT 'BENCH-' || lpad(g::text, 8, '0'), 'device', encode(sha256(('bench/' || g)::bytea), 'hex'),
              'enrolled', '{\"ProductName\":\"iPhone15,2\"}', now()
         FROM generate_series(1, $DEVICES) g;
       INSERT INTO channels (device_id, user_key) SELECT id, '' FROM devices" >/dev/null
psqlq "VACUUM ANALYZE devices" >/dev/null
psqlq "VACUUM ANALYZE channels" >/dev/null
[ "$(dirty)" -eq 0 ] || die "devices are dirty before any enrollment"

# Tenant A on every device, B on id % 10 < 3, C on id % 5 = 0. Pseudonyms of
# the API's shape (e + 26 base32 characters; hex digits outside [a-z2-7]
# mapped in).
ENROLL_SQL="INSERT INTO enrollments (tenant_id, device_id, pseudonym)
    SELECT t.id, d.id, 'e' || translate(left(md5(t.id || '/' || d.id || '/' || random()), 26), '0189', 'wxyz')
      FROM devices d JOIN tenants t ON t.name = 'Bench A'
                                    OR (t.name = 'Bench B' AND d.id % 10 < 3)
                                    OR (t.name = 'Bench C' AND d.id % 5 = 0)"
NB=$(psqlq "SELECT count(*) FROM devices WHERE id % 10 < 3")
NC=$(psqlq "SELECT count(*) FROM devices WHERE id % 5 = 0")
# shellcheck disable=SC2317 # called through step
seed_enrollments() {
    local t_seed
    t_seed=$(now_us)
    psqlq "$ENROLL_SQL" >/dev/null
    STEP_FROM_US=$(now_us)
    SEED_US=$((STEP_FROM_US - t_seed))
}

MISMATCH=0
: >"$T/steps.txt"
say "initial merge: $((DEVICES + NB + NC)) enrollments in one transaction, then the applier"
step "initial (enrollments arrive)" "$DEVICES" "$DEVICES" seed_enrollments
say "tenant A: minLength 6 -> 10 (stricter than everyone: every device changes)"
step "A 6->10 (all $DEVICES)" "$DEVICES" "$DEVICES" put_rule A 10
say "tenant C: minLength 4 -> 5 (still weaker than everyone: nothing changes)"
step "C 4->5 (C's $NC)" "$NC" 0 put_rule C 5
say "tenant B: minLength 8 -> 9 (A's 10 dominates: nothing changes)"
step "B 8->9 (B's $NB)" "$NB" 0 put_rule B 9

# Every device's merged result: minLength 10 from A.
WRONG=$(psqlq "SELECT count(*) FROM devices
                WHERE (rules_merged #>> '{passcode,minLength,value}') IS DISTINCT FROM '10'
                   OR rules_merged #> '{passcode,minLength,required_by}' <> '[\"Bench A\"]'")

# ------------------------------------------------------- reference: pgbench

# What the applier asks of PostgreSQL per device, alone: rules_inputs, then
# rules_apply_gen with the payloads the applier built (the last InstallProfile,
# RemoveProfile and SecurityInfo it queued, the merged JSON of a device), one
# connection, over the unix socket, for a random device each time.
# "unchanged" passes the device's own hash (the C and B steps); "install" a
# fresh one, so that both commands are inserted (the initial and A steps).
psqlq "CREATE TABLE bench_devices AS SELECT row_number() OVER (ORDER BY id)::int AS i, id FROM devices;
       CREATE UNIQUE INDEX ON bench_devices (i);
       CREATE TABLE bench_payload AS SELECT
         (SELECT rules_merged FROM devices ORDER BY id LIMIT 1) AS merged,
         (SELECT payload FROM commands WHERE tenant_id = 0 AND request_type = 'InstallProfile' ORDER BY id DESC LIMIT 1) AS profile,
         (SELECT payload FROM commands WHERE tenant_id = 0 AND request_type = 'SecurityInfo' ORDER BY id DESC LIMIT 1) AS security,
         (SELECT replace(payload, 'SecurityInfo', 'RemoveProfile') FROM commands WHERE tenant_id = 0 AND request_type = 'SecurityInfo' ORDER BY id DESC LIMIT 1) AS remove;
       ANALYZE bench_devices; ANALYZE bench_payload" >/dev/null
[ "$(psqlq "SELECT count(*) FROM bench_payload WHERE profile IS NOT NULL AND merged IS NOT NULL")" -eq 1 ] ||
    die "no broker profile queued to take the payload from"
bench_script() { # bench_script HASH_EXPRESSION
    cat <<EOF
\\set i random(1, $DEVICES)
SELECT x.enrollment_id, x.tenant_name, x.section, x.rules FROM bench_devices b, LATERAL rules_inputs(b.id) x WHERE b.i = :i;
SELECT rules_apply_gen(d.rules_gen, b.id, $1, p.merged, gen_random_uuid(), p.profile, gen_random_uuid(), p.remove, gen_random_uuid(), p.security) FROM bench_devices b JOIN devices d ON d.id = b.id, bench_payload p WHERE b.i = :i;
EOF
}
bench_script "d.rules_hash" >"$T/unchanged.sql"
bench_script "md5(random()::text)" >"$T/install.sql"
pgb() { # pgb NAME MODE: DEVICES transactions, one client, pgbench -M MODE
    local g0 n0 n1
    g0=$(pg_ticks)
    n0=$(now_us)
    client pgbench -n -M "$2" -c 1 -j 1 -t "$DEVICES" -f "$T/$1.sql" "$CONNINFO" >"$T/pgbench.txt" 2>&1 ||
        { cat "$T/pgbench.txt" >&2; die "pgbench failed"; }
    n1=$(now_us)
    bench_pgbench_figures
    printf '   %-30s %11s %8s %9.0f   (latency average %s ms per device, 2 statements; PG CPU %s%%)\n' \
        "pgbench, $1, $2" "$DEVICES" "$(secs $((n1 - n0)))" "$TPS" "$PGLAT" \
        "$(cpu_pct $(($(pg_ticks) - g0)) $(((n1 - n0) * 1000)))" >>"$T/steps.txt"
}
# -M extended sends each statement as the applier does (PQsendQueryParams:
# parsed and planned every time); -M prepared is the floor.
for mode in extended prepared; do
    say "reference: pgbench -M $mode, 1 client, rules_inputs + rules_apply_gen for $DEVICES random devices, unchanged path"
    pgb unchanged "$mode"
    say "reference: the same, install path (a new hash: InstallProfile + SecurityInfo inserted)"
    pgb install "$mode"
done
PROFILE_BYTES=$(psqlq "SELECT length(profile) FROM bench_payload")

# ----------------------------------------------------------------- report

echo
echo "== Re-merge by lmdm serve's rules applier: $DEVICES devices (A on all, B on $NB, C on $NC), passcode rules;"
echo "   lmdm: $WORKERS worker(s), one applier thread and connection; seeding the enrollments took $(secs "$SEED_US") s;"
echo "   load average $(cut -d' ' -f1-3 /proc/loadavg) on $NCPU CPU(s); InstallProfile payload $PROFILE_BYTES bytes"
printf '   %-30s %11s %8s %9s %13s %6s %6s %9s %8s %7s\n' step merges settle_s merges/s "installs/exp" remove secinfo last_cmd_ms "lmdm CPU" "PG CPU"
cat "$T/steps.txt"
echo "   (settle_s: from the action to no device dirty, polled every 50 ms; last_cmd_ms: to the last command's"
echo "    created_at; pgbench lines: the applier's two statements alone, one connection, random devices)"
if [ "$WRONG" -ne 0 ]; then echo "   $WRONG device(s) without minLength 10 in their merged result"; MISMATCH=1; fi

bench_log_errors
if [ "$MISMATCH" -ne 0 ]; then
    echo "$PROG: merges or commands differ from what was expected (see above)" >&2
    exit 4
fi
exit 0
