# Shared end-to-end harness: sourced by tests/e2e/test_*.sh.
#
# e2e_start [extra config lines...]  fresh database (migrated), dev certificates,
#                                    a generated config, and the real `lmdm serve`
#                                    running in the background on free ports.
# Afterwards: $TLS_URL, $PLAIN_URL, $CA (CA file for curl), $LOG (broker log),
# $CONF, $DB_CONNINFO, $LMDM_PID, $T (scratch dir). Everything is cleaned up on exit.
set -euo pipefail

: "${LMDM_BIN:?run through ctest (LMDM_BIN unset)}"
: "${LMDM_SRC:?}"
T=$(mktemp -d /tmp/lmdm-e2e.XXXXXX)
chmod 755 "$T" # a private PostgreSQL run by the lmdm user may live in it
LMDM_PID=""
DB_NAME=""
FAILURES=0

server_conninfo() {
  if [ -n "${LMDM_TEST_PG:-}" ]; then echo "$LMDM_TEST_PG"; else cat "$LMDM_TEST_PG_FILE"; fi
}

e2e_cleanup() {
  if [ -n "$LMDM_PID" ] && kill -0 "$LMDM_PID" 2>/dev/null; then
    kill -TERM "$LMDM_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$LMDM_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$LMDM_PID" 2>/dev/null || true
  fi
  if [ -n "$DB_NAME" ]; then
    psql -qAt "$(server_conninfo)" -c "DROP DATABASE IF EXISTS \"$DB_NAME\" WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  if [ "$FAILURES" -ne 0 ] && [ -f "$T/lmdm.log" ]; then
    echo "---- broker log (last 40 lines) ----"; tail -n 40 "$T/lmdm.log"
  fi
  rm -rf "$T"
}
trap e2e_cleanup EXIT

fail() { echo "FAIL: $*"; FAILURES=$((FAILURES + 1)); }
pass() { echo "ok: $*"; }
expect_eq() { # expect_eq ACTUAL EXPECTED WHAT
  if [ "$1" = "$2" ]; then pass "$3"; else fail "$3: got '$1', expected '$2'"; fi
}
expect_contains() { # expect_contains HAYSTACK NEEDLE WHAT
  case "$1" in *"$2"*) pass "$3" ;; *) fail "$3: '$2' not in: $(printf '%s' "$1" | head -c 600)" ;; esac
}
e2e_finish() {
  if [ "$FAILURES" -ne 0 ]; then echo "$FAILURES check(s) failed"; exit 1; fi
  echo "all checks passed"
}

# A fresh, migrated database in the run's private PostgreSQL.
e2e_db() {
  DB_NAME="e2e_$$_$RANDOM"
  psql -qAt "$(server_conninfo)" -c "CREATE DATABASE \"$DB_NAME\"" >/dev/null
  DB_CONNINFO="$(server_conninfo | sed "s/dbname=[^ ]*/dbname=$DB_NAME/")"
}

e2e_certs() {
  mkdir -p "$T/certs"
  bash "$LMDM_SRC/deploy/dev-certs.sh" "$T/certs" >/dev/null
  CA="$T/certs/ca.crt"
}

random_port() { echo $((20000 + RANDOM % 12000)); } # below the kernel's ephemeral range (32768-)

# Write $CONF with the given database and extra lines (an extra line replaces
# the default line for the same key).
e2e_config() {
  local db="$1"; shift
  TLS_PORT=$(random_port); PLAIN_PORT=$(random_port)
  local defaults=(
    "listen_tls = 127.0.0.1:$TLS_PORT"
    "listen_plain = 127.0.0.1:$PLAIN_PORT"
    "workers = 2"
    "tls_cert = \"$T/certs/server.crt\""
    "tls_key = \"$T/certs/server.key\""
    "database_url = \"$db\""
    "migrations_dir = \"$LMDM_SRC/migrations\""
  )
  {
    for d in "${defaults[@]}"; do
      local key=${d%% =*} overridden=""
      for line in "$@"; do [ "${line%% =*}" = "$key" ] && overridden=1; done
      [ -n "$overridden" ] || echo "$d"
    done
    for line in "$@"; do echo "$line"; done
  } >"$T/lmdm.conf"
  CONF="$T/lmdm.conf"
  TLS_URL="https://localhost:$TLS_PORT"
  PLAIN_URL="http://127.0.0.1:$PLAIN_PORT"
}

# Start `lmdm serve` with $CONF; wait until /healthz answers. Retries on port clashes.
e2e_serve() {
  LOG="$T/lmdm.log"
  for attempt in 1 2 3 4 5; do
    "$LMDM_BIN" serve --config "$CONF" >>"$LOG" 2>&1 &
    LMDM_PID=$!
    for _ in $(seq 100); do
      if curl -fsS -o /dev/null "$PLAIN_URL/healthz" 2>/dev/null; then return 0; fi
      kill -0 "$LMDM_PID" 2>/dev/null || break
      sleep 0.05
    done
    if grep -q "cannot listen" "$LOG" && [ "$attempt" -lt 5 ]; then
      wait "$LMDM_PID" 2>/dev/null || true
      local old_tls=$TLS_PORT old_plain=$PLAIN_PORT
      TLS_PORT=$(random_port); PLAIN_PORT=$(random_port)
      sed -i "s/:$old_tls\$/:$TLS_PORT/; s/:$old_plain\$/:$PLAIN_PORT/" "$CONF"
      TLS_URL="https://localhost:$TLS_PORT"; PLAIN_URL="http://127.0.0.1:$PLAIN_PORT"
      continue
    fi
    echo "lmdm serve did not come up:"; cat "$LOG"; exit 1
  done
}

e2e_migrate() {
  "$LMDM_BIN" migrate --config "$CONF" >/dev/null
}

e2e_start() {
  e2e_db
  e2e_certs
  e2e_config "$DB_CONNINFO" "$@"
  e2e_migrate
  e2e_serve
}

# A broker with everything a device and a tenant need: broker CA, master
# secret, public_url on the TLS listener, push topic; extra config lines as
# arguments. Gives psqlq "SQL" for one-value queries.
e2e_start_full() {
  e2e_db
  e2e_certs
  e2e_config "$DB_CONNINFO" \
    "ca_cert = \"$T/ca/ca.crt\"" "ca_key = \"$T/ca/ca.key\"" "secret_key = \"$T/secret.key\"" \
    "apns_topic = \"com.apple.mgmt.External.e2e\"" "$@"
  echo "public_url = \"$TLS_URL\"" >>"$CONF"
  mkdir -p "$T/ca"
  "$LMDM_BIN" ca init --config "$CONF" >/dev/null
  "$LMDM_BIN" secret init --config "$CONF" >/dev/null
  e2e_migrate
  e2e_serve
}
psqlq() { psql -qAt "$DB_CONNINFO" -c "$1"; }

# The tenant API over TLS: api METHOD PATH KEY [curl args...] prints the body
# and "HTTP <code>" on a last line; status/body split that; post_json KEY PATH
# JSON posts JSON. csrf_of PAGE: the first CSRF token of an owner page.
# wait_for SECONDS COMMAND...: until COMMAND succeeds (1 if it never does).
api() {
  local m=$1 p=$2 k=$3; shift 3
  curl -s --cacert "$CA" -X "$m" -H "Authorization: Bearer $k" -w '\nHTTP %{http_code}' "$@" "$TLS_URL$p"
}
status() { tail -n1 <<<"$1" | cut -d' ' -f2; }
body() { sed '$d' <<<"$1"; }
post_json() { api POST "$2" "$1" -H 'Content-Type: application/json' -d "$3"; }
csrf_of() { grep -o 'name="csrf" value="[0-9a-f]*"' <<<"$1" | head -n1 | cut -d'"' -f4; }
wait_for() { local n=$(($1 * 10)); shift; for _ in $(seq "$n"); do "$@" && return 0; sleep 0.1; done; return 1; }

# tenant NAME: a new tenant with an admin key, invited and accepted by the
# owner whose session cookie is in $T/jar; prints "ID KEY ENROLLMENT".
tenant() { # tenant NAME -> "ID KEY ENROLLMENT" after the owner accepted it
  local id key url page code
  id=$("$LMDM_BIN" tenant add "$1" --config "$CONF")
  key=$("$LMDM_BIN" key issue --tenant "$id" --role admin --config "$CONF")
  url=$(body "$(api POST /v1/invitations "$key" -H 'Content-Type: application/json' -d '{}')" | jq -r .url)
  page=$(curl -s --cacert "$CA" -b "$T/jar" "$url")
  code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CA" -b "$T/jar" -H "Origin: $TLS_URL" \
    --data-urlencode action=accept --data-urlencode "csrf=$(csrf_of "$page")" "$url")
  [ "$code" = 200 ] || fail "accepting $1: $code"
  echo "$id $key $(body "$(api GET /v1/enrollments "$key")" | jq -r '.enrollments[0].id')"
}

# curl shortcuts: status code only, and full output with headers.
code() { curl -s -o /dev/null -w '%{http_code}' --cacert "$CA" "$@"; }
