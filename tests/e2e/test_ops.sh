#!/usr/bin/env bash
# /healthz, /readyz, /metrics; the database going away and coming back; serve
# refusing an unmigrated database. Uses a PostgreSQL of its own so that
# stopping it disturbs no other test.
. "$(dirname "$0")/lib.sh"

PGD="$T/pg"
export PGPORT=$((20000 + RANDOM % 40000))
bash "$LMDM_SRC/deploy/pg.sh" init --fast "$PGD" >/dev/null
bash "$LMDM_SRC/deploy/pg.sh" start "$PGD" >/dev/null
trap 'bash "$LMDM_SRC/deploy/pg.sh" stop "$PGD" >/dev/null 2>&1 || true; e2e_cleanup' EXIT
bash "$LMDM_SRC/deploy/pg.sh" createdb "$PGD" lmdm >/dev/null
OWN_DB="$(bash "$LMDM_SRC/deploy/pg.sh" conninfo "$PGD" lmdm)"

e2e_certs
e2e_config "$OWN_DB" "db_retry_after = 7s" "workers = 1"

# Unmigrated: serve refuses with a clear message.
set +e
out=$(timeout 10 "$LMDM_BIN" serve --config "$CONF" 2>&1); rc=$?
set -e
expect_eq "$rc" 1 "serve exits 1 on an unmigrated database"
expect_contains "$out" "not migrated" "message says the database is not migrated"
expect_contains "$out" "lmdm migrate" "message says what to run"

e2e_migrate
e2e_serve

LATEST=$(ls "$LMDM_SRC/migrations" | sed -n 's/^0*\([0-9][0-9]*\)_.*/\1/p' | sort -n | tail -1)
expect_eq "$(curl -s "$PLAIN_URL/readyz")" "{\"status\":\"ready\",\"schema\":$LATEST}" "readyz ready with schema version"
expect_eq "$(code "$TLS_URL/healthz")" 200 "healthz"

m=$(curl -s "$PLAIN_URL/metrics")
expect_contains "$m" 'lmdm_http_requests_total{route="readyz",status="200"} 1' "requests by route and status"
expect_contains "$m" 'lmdm_http_request_duration_seconds_bucket{route="healthz",le="+Inf"}' "latency histogram"
expect_contains "$m" 'lmdm_connections_open' "open connections gauge"
expect_contains "$m" 'lmdm_db_pool_connections{state="healthy"} 4' "database pool healthy"

# Database goes away: readyz 503 with Retry-After, healthz still 200, no crash.
bash "$LMDM_SRC/deploy/pg.sh" stop "$PGD" >/dev/null
h=$(curl -s -D - "$PLAIN_URL/readyz")
expect_contains "$h" "HTTP/1.1 503" "readyz 503 while the database is down"
expect_contains "$h" "retry-after: 7" "503 carries Retry-After"
expect_contains "$h" '"error":"unavailable"' "503 body names the error"
h=$(curl -s -D - "$PLAIN_URL/readyz")
expect_contains "$h" "HTTP/1.1 503" "readyz still 503 (pool reconnecting)"
expect_eq "$(code "$PLAIN_URL/healthz")" 200 "healthz unaffected"
kill -0 "$LMDM_PID" && pass "broker still running" || fail "broker died"

# It comes back: readyz recovers on its own within the backoff.
bash "$LMDM_SRC/deploy/pg.sh" start "$PGD" >/dev/null
ok=""
for _ in $(seq 100); do
  if [ "$(code "$PLAIN_URL/readyz")" = 200 ]; then ok=1; break; fi
  sleep 0.1
done
expect_eq "$ok" 1 "readyz recovers after the database returns"
m=$(curl -s "$PLAIN_URL/metrics")
expect_contains "$m" 'lmdm_db_reconnects_total' "reconnects counted"
if printf '%s' "$m" | grep -q '^lmdm_db_reconnects_total 0$'; then fail "reconnects should be > 0"; else pass "reconnects > 0"; fi

e2e_finish
