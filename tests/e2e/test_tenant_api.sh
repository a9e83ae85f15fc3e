#!/usr/bin/env bash
# The tenant API's gatekeeping, end to end against the real binary: API keys
# (missing, malformed, unknown, revoked, wrong role, disabled tenant), the
# public signing key, invitations, webhook settings, stable JSON errors,
# rate limits, and hostile bodies that change nothing. Both framings.
. "$(dirname "$0")/lib.sh"

e2e_db
e2e_certs
e2e_config "$DB_CONNINFO" "secret_key = \"$T/secret.key\"" "tenant_rate = 5" "tenant_burst = 30" \
  "public_url = \"https://mdm.example.org\""
e2e_migrate
out=$("$LMDM_BIN" secret init --config "$CONF")
expect_contains "$out" "master secret created" "lmdm secret init"
expect_eq "$(stat -c %a "$T/secret.key")" 600 "the master secret is readable only by its owner"
expect_eq "$("$LMDM_BIN" secret init --config "$CONF" >/dev/null 2>&1; echo $?)" 1 "an existing secret is never overwritten"
e2e_serve

# ---- tenants and keys (CLI) -------------------------------------------------
A=$("$LMDM_BIN" tenant add "St. Mary's" --config "$CONF")
B=$("$LMDM_BIN" tenant add "General <Hospital>" --config "$CONF")
expect_eq "$A/$B" "1/2" "two tenants registered"
list=$("$LMDM_BIN" tenant list --config "$CONF")
expect_contains "$list" "St. Mary's" "tenant list names the tenant"
KA=$("$LMDM_BIN" key issue --tenant "$A" --role admin --config "$CONF")
KB=$("$LMDM_BIN" key issue --tenant "$B" --role admin --config "$CONF")
KAUD=$("$LMDM_BIN" key issue --tenant "$A" --role auditor --config "$CONF")
case "$KA" in lmdm_????????????_*) pass "key has the documented shape" ;; *) fail "key shape: $KA" ;; esac
expect_eq "$(psqlq "SELECT count(*) FROM api_keys WHERE position('${KA:18:20}' in key_hash || id) > 0")" 0 "the key itself is not stored"
expect_eq "$("$LMDM_BIN" key issue --tenant 99 --role admin --config "$CONF" 2>&1 >/dev/null)" "lmdm key issue: no active tenant 99" "no key for a tenant that does not exist"
expect_eq "$("$LMDM_BIN" key issue --global --role admin --config "$CONF" >/dev/null 2>&1; echo $?)" 2 "a global key is auditor only"
expect_eq "$("$LMDM_BIN" key --help | head -1 | cut -c1-15)" "usage: lmdm key" "key --help"
expect_eq "$("$LMDM_BIN" tenant --help | head -1 | cut -c1-18)" "usage: lmdm tenant" "tenant --help"

api() { # api METHOD PATH KEY [curl args...] -> body, with "HTTP <code>" on the last line
  local m=$1 p=$2 k=$3; shift 3
  curl -s --cacert "$CA" -X "$m" -H "Authorization: Bearer $k" -w '\nHTTP %{http_code}' "$@" "$PLAIN_URL$p"
}
status() { tail -n1 <<<"$1" | cut -d' ' -f2; }
body() { sed '$d' <<<"$1"; }

# ---- authentication ---------------------------------------------------------
expect_eq "$(code "$PLAIN_URL/v1/enrollments")" 401 "no key -> 401"
r=$(curl -s -i "$PLAIN_URL/v1/enrollments")
expect_contains "$r" "WWW-Authenticate: Bearer" "401 names the scheme"
expect_contains "$r" '"error":"unauthorized"' "401 has a stable error body"
expect_eq "$(code -H 'Authorization: Bearer nonsense' "$PLAIN_URL/v1/enrollments")" 401 "malformed key -> 401"
expect_eq "$(code -H "Authorization: Bearer ${KA%?}x" "$PLAIN_URL/v1/enrollments")" 401 "wrong secret -> 401"
expect_eq "$(code -H "Authorization: Bearer lmdm_aaaaaaaaaaaa_${KA:18}" "$PLAIN_URL/v1/enrollments")" 401 "unknown key id -> 401"
r=$(api GET /v1/enrollments "$KA")
expect_eq "$(status "$r")" 200 "admin key lists enrollments"
expect_eq "$(body "$r")" '{"enrollments":[],"next":null}' "no enrollments yet"
r=$(api GET /v1/enrollments "$KA" --http2-prior-knowledge)
expect_eq "$(status "$r")" 200 "the API over h2c"
r=$(api POST /v1/enrollments/eaaaaaaaaaaaaaaaaaaaaaaaaaa/commands "$KAUD" -H 'Content-Type: application/json' -d '{"Command":{"RequestType":"ProfileList"}}')
expect_eq "$(status "$r")" 403 "auditor key cannot enqueue"
expect_contains "$(body "$r")" '"error":"forbidden_role"' "wrong role has a stable code"
NANO=$(printf 'nanomdm:%s' "$KA" | base64 -w0)
expect_eq "$(code -H "Authorization: Basic $NANO" "$PLAIN_URL/v1/enrollments")" 200 "NanoMDM-style Basic auth with the key as password"

# ---- public key ---------------------------------------------------------------
r=$(curl -s "$PLAIN_URL/v1/keys")
expect_contains "$r" '"alg":"Ed25519"' "GET /v1/keys publishes the Ed25519 key"

# ---- invitations ----------------------------------------------------------------
r=$(api POST /v1/invitations "$KA" -H 'Content-Type: application/json' -d '{"note":"Cardiology","rules":{"passcode":{"minLength":6}},"expires_in":3600}')
expect_eq "$(status "$r")" 201 "invitation created"
code1=$(body "$r" | sed -n 's/.*"code":"\([^"]*\)".*/\1/p')
expect_contains "$(body "$r")" "\"url\":\"https://mdm.example.org/invite/$code1\"" "invitation URL on the public URL"
expect_eq "$(psqlq "SELECT count(*) FROM invitations WHERE position('${code1:0:20}' in code_hash) > 0")" 0 "the code is stored only hashed"
expect_eq "$(psqlq "SELECT note FROM invitations")" "Cardiology" "note stored"
r=$(api POST /v1/invitations "$KA" -H 'Content-Type: application/json' -d '{"expires_in":99999999}')
expect_eq "$(status "$r")" 400 "expiry beyond invitation_ttl refused"
r=$(api POST /v1/invitations "$KA" -H 'Content-Type: application/json' -d '{"note":')
expect_eq "$(status "$r")" 400 "malformed JSON -> 400"
expect_contains "$(body "$r")" '"error":"bad_json"' "malformed JSON has a stable code"
expect_eq "$(psqlq "SELECT count(*) FROM invitations")" 1 "refused invitations stored nothing"

# ---- commands on enrollments that do not exist or are not the tenant's ------------------
r=$(api POST /v1/enrollments/eaaaaaaaaaaaaaaaaaaaaaaaaaa/commands "$KA" -H 'Content-Type: application/json' -d '{"Command":{"RequestType":"EraseDevice"}}')
expect_eq "$(status "$r")" 404 "an enrollment that does not exist is 404 whatever the command"
r=$(api POST /v1/enrollments/eaaaaaaaaaaaaaaaaaaaaaaaaaa/commands "$KA" -H 'Content-Type: application/json' -d '{"Command":{"RequestType":"RemoveApplication","Identifier":"org.example.app"}}')
expect_eq "$(status "$r")" 404 "unknown enrollment -> 404"
r=$(api POST /v1/enrollments/eaaaaaaaaaaaaaaaaaaaaaaaaaa/commands "$KA" -H 'Content-Type: application/xml' --data-binary '<plist><dict><key>Command</key><string>x</string>')
expect_eq "$(status "$r")" 400 "malformed plist -> 400"
expect_contains "$(body "$r")" '"error":"bad_plist"' "with a stable code"
r=$(api POST /v1/enrollments/eaaaaaaaaaaaaaaaaaaaaaaaaaa/commands "$KA" -H 'Content-Type: text/plain' -d 'hello')
expect_eq "$(status "$r")" 415 "unknown media type -> 415"
expect_eq "$(status "$(api GET /v1/commands/not-a-uuid "$KA")")" 404 "command id that is not a UUID -> 404"
expect_eq "$(status "$(api GET /v1/commands/6f1c7f1e-2b7e-4c47-9b44-3f1f2f6f0a11 "$KA")")" 404 "unknown command -> 404"
expect_eq "$(status "$(api DELETE /v1/commands/6f1c7f1e-2b7e-4c47-9b44-3f1f2f6f0a11 "$KA")")" 404 "cancel unknown command -> 404"
expect_eq "$(psqlq "SELECT count(*) FROM commands")" 0 "nothing was queued"

# ---- webhook settings ----------------------------------------------------------------
expect_eq "$(status "$(api PUT /v1/webhook "$KA" -H 'Content-Type: application/json' -d '{"url":"ftp://x"}')")" 400 "webhook URL must be http(s)"
expect_eq "$(status "$(api PUT /v1/webhook "$KA" -H 'Content-Type: application/json' -d '{"url":"https://hooks.example.org/lmdm","format":"micromdm"}')")" 204 "webhook set"
r=$(api GET /v1/webhook "$KA")
expect_contains "$(body "$r")" '"url":"https://hooks.example.org/lmdm","format":"micromdm","pending_events":0' "webhook read back"
expect_eq "$(psqlq "SELECT coalesce(webhook_url, '-') FROM tenants WHERE id = $B")" "-" "the other tenant's webhook untouched"
expect_eq "$(status "$(api DELETE /v1/webhook "$KA")")" 204 "webhook removed"

# ---- revocation and disabling ------------------------------------------------------------
KA2=$("$LMDM_BIN" key issue --tenant "$A" --role admin --config "$CONF")
"$LMDM_BIN" key revoke "$KA2" --config "$CONF" >/dev/null
expect_eq "$(status "$(api GET /v1/enrollments "$KA2")")" 401 "revoked key -> 401 at once"
expect_contains "$("$LMDM_BIN" key list --tenant "$A" --config "$CONF")" "revoked" "key list shows the revocation"
"$LMDM_BIN" tenant disable "$B" --config "$CONF" >/dev/null
expect_eq "$(status "$(api GET /v1/enrollments "$KB")")" 401 "disabled tenant's key -> 401"

# ---- rate limit ------------------------------------------------------------------------------
r=""
for _ in $(seq 80); do
  r=$(curl -s -i -H "Authorization: Bearer $KA" "$PLAIN_URL/v1/enrollments")
  case "$r" in "HTTP/1.1 429"*) break ;; esac
done
expect_contains "$r" "HTTP/1.1 429" "a burst over tenant_burst gets 429"
expect_contains "$r" "Retry-After:" "429 says when to retry"
expect_eq "$(status "$(api GET /v1/enrollments "$KAUD")")" 403 "the role is checked before the rate limit"

e2e_finish
