#!/usr/bin/env bash
# SIGTERM drains in-flight requests (and refuses new connections); SIGHUP
# reloads the TLS certificate; a bad certificate on SIGHUP keeps the old one.
. "$(dirname "$0")/lib.sh"
e2e_start "shutdown_timeout = 20s"

fingerprint() {
  echo | timeout 5 openssl s_client -connect "127.0.0.1:$TLS_PORT" -servername localhost 2>/dev/null |
    openssl x509 -noout -fingerprint -sha256 2>/dev/null
}

# SIGHUP: a new certificate is served without a restart.
before=$(fingerprint)
mkdir -p "$T/certs2"
bash "$LMDM_SRC/deploy/dev-certs.sh" "$T/certs2" >/dev/null
cp "$T/certs2/server.crt" "$T/certs/server.crt"; cp "$T/certs2/server.key" "$T/certs/server.key"
cp "$T/certs2/ca.crt" "$T/certs/ca.crt"
kill -HUP "$LMDM_PID"; sleep 0.5
after=$(fingerprint)
if [ -n "$before" ] && [ -n "$after" ] && [ "$before" != "$after" ]; then pass "SIGHUP reloads the certificate"; else fail "certificate unchanged after SIGHUP ($before / $after)"; fi
expect_contains "$(cat "$LOG")" "TLS certificate reloaded" "reload is logged"
echo "not a certificate" >"$T/certs/server.crt"
kill -HUP "$LMDM_PID"; sleep 0.5
expect_eq "$(fingerprint)" "$after" "a broken certificate on SIGHUP keeps the current one"
expect_contains "$(cat "$LOG")" "keeping the current one" "the refusal is logged"
expect_eq "$(code "$TLS_URL/healthz")" 200 "still serving TLS"

# SIGTERM with a request in flight: /readyz waits on a table another session locked.
psql -qAt "$DB_CONNINFO" -c "BEGIN; LOCK TABLE schema_migrations IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(3); COMMIT;" >/dev/null &
LOCKER=$!
sleep 0.5
curl -s -o "$T/inflight.out" -w '%{http_code}' "$PLAIN_URL/readyz" >"$T/inflight.code" &
CURL=$!
sleep 0.5
kill -TERM "$LMDM_PID"
sleep 0.2
kill -INT "$LMDM_PID" # a second signal (Ctrl-C after SIGTERM) must not cut the drain short
sleep 0.3
if kill -0 "$LMDM_PID" 2>/dev/null; then pass "broker waits for the in-flight request"; else fail "broker exited with a request in flight"; fi
set +e
curl -s -m 2 -o /dev/null "$PLAIN_URL/healthz"; rc=$?
set -e
if [ "$rc" -ne 0 ]; then pass "no new connections while draining"; else fail "new connection accepted while draining"; fi
wait "$CURL" || true
wait "$LOCKER" || true
expect_eq "$(cat "$T/inflight.code")" 200 "in-flight request completed with 200"
set +e
wait "$LMDM_PID"; rc=$?
set -e
LMDM_PID=""
expect_eq "$rc" 0 "clean exit after draining"
expect_contains "$(cat "$LOG")" "SIGTERM received" "drain logged"

e2e_finish
