#!/usr/bin/env bash
# The auditor's side end to end: tenant commands, decisions, answers and
# enrollments land in the ledger; a tenant's auditor key reads that tenant's
# entries only, the global auditor key all; admin keys cannot read the audit;
# the export verifies offline with the published key, and a tampered export
# does not (the failing entry is named); `lmdm audit verify --db` checks the
# live chain. No device identifier appears anywhere.
. "$(dirname "$0")/lib.sh"

SIM="$LMDM_BUILD/tests/sim/lmdm-sim"
[ -x "$SIM" ] || { echo "missing $SIM"; exit 1; }
e2e_start_full "mdm_max_body = 256k" "ledger_checkpoint_entries = 5" "ledger_checkpoint_interval = 1s"

sealed() { [ "$(psqlq "SELECT count(*) FROM ledger_pending")" = 0 ] && [ "$(psqlq "SELECT count(*) FROM ledger")" -gt 0 ]; }

out=$("$SIM" enroll --url "$TLS_URL" --cacert "$CA" --dir "$T/dev")
"$SIM" checkin --dir "$T/dev" --cacert "$CA" --message Authenticate >/dev/null
"$SIM" checkin --dir "$T/dev" --cacert "$CA" --message TokenUpdate >/dev/null
UDID=$(jq -r .udid "$T/dev/device.json")
SERIAL=$(jq -r .serial "$T/dev/device.json")
curl -s -o /dev/null --cacert "$CA" -c "$T/jar" "$(jq -r .owner_url <<<"$out")"

tenant() { # tenant NAME -> "ID ADMINKEY AUDITORKEY ENROLLMENT"
  local id key aud url page
  id=$("$LMDM_BIN" tenant add "$1" --config "$CONF")
  key=$("$LMDM_BIN" key issue --tenant "$id" --role admin --config "$CONF")
  aud=$("$LMDM_BIN" key issue --tenant "$id" --role auditor --config "$CONF")
  url=$(body "$(api POST /v1/invitations "$key" -H 'Content-Type: application/json' -d '{}')" | jq -r .url)
  page=$(curl -s --cacert "$CA" -b "$T/jar" "$url")
  curl -s -o /dev/null --cacert "$CA" -b "$T/jar" -H "Origin: $TLS_URL" \
    --data-urlencode action=accept --data-urlencode "csrf=$(csrf_of "$page")" "$url"
  echo "$id $key $aud $(body "$(api GET /v1/enrollments "$key")" | jq -r '.enrollments[0].id')"
}
read -r TA KA AA EA <<<"$(tenant "St. Mary's")"
read -r TB KB AB EB <<<"$(tenant "General Hospital")"
GLOBAL=$("$LMDM_BIN" key issue --global --role auditor --config "$CONF")

post() { api POST "/v1/enrollments/$2/commands" "$1" -H 'Content-Type: application/json' -d "$3" >/dev/null; }
post "$KA" "$EA" '{"CommandUUID":"A-1","Command":{"RequestType":"InstallApplication","Identifier":"org.stmarys.rounds"}}'
post "$KA" "$EA" '{"CommandUUID":"A-2","Command":{"RequestType":"EraseDevice"}}'
post "$KB" "$EB" '{"CommandUUID":"B-1","Command":{"RequestType":"DeviceLocation"}}'
"$SIM" run --dir "$T/dev" --cacert "$CA" >/dev/null
wait_for 15 sealed || fail "the ledger was not sealed"
sleep 1.2 # a checkpoint at the interval

# ---- who reads what ---------------------------------------------------------------------------------
expect_eq "$(status "$(api GET /v1/audit "$KA")")" 403 "an admin key cannot read the audit"
expect_eq "$(status "$(api GET /v1/audit "nope")")" 401 "no key, no audit"
a=$(body "$(api GET '/v1/audit?limit=1000' "$AA")")
expect_eq "$(jq -r "[.entries[] | select(.tenant_id != $TA)] | length" <<<"$a")" 0 "a tenant's auditor sees only its tenant's entries"
expect_contains "$(jq -c '[.entries[] | select(.request_type == "EraseDevice")][0]' <<<"$a")" '"decision":"block"' "the refused wipe is recorded"
expect_contains "$(jq -c '[.entries[] | select(.request_type == "EraseDevice")][0]' <<<"$a")" '"reason":"wipe"' "with its reason"
expect_contains "$(jq -r '[.entries[].event] | unique | join(",")' <<<"$a")" "command.result" "answers delivered are recorded"
expect_contains "$(jq -r '[.entries[].event] | unique | join(",")' <<<"$a")" "enrollment.accepted" "the owner's acceptance is recorded"
g=$(body "$(api GET '/v1/audit?limit=1000' "$GLOBAL")")
expect_eq "$(jq -r '[.entries[].tenant_id] | map(select(. != null)) | unique | length' <<<"$g")" 2 "the global auditor sees both tenants"
expect_eq "$(jq -r '[.entries[] | select(.request_type == "DeviceLocation")] | length' <<<"$g")" 1 "including the other tenant's refused location request"
b=$(body "$(api GET "/v1/audit?decision=block&limit=1000" "$GLOBAL")")
expect_eq "$(jq -r '[.entries[].decision] | unique | join(",")' <<<"$b")" "block" "filter by decision"
expect_eq "$(status "$(api GET '/v1/audit?since=yesterday' "$GLOBAL")")" 400 "a bad filter -> 400"
case "$a$g" in *"$UDID"* | *"$SERIAL"*) fail "a device identifier in the audit" ;; *) pass "no device identifier in the audit" ;; esac
expect_eq "$(status "$(api GET /v1/audit/checkpoints "$AA")")" 200 "checkpoints readable"
[ "$(body "$(api GET /v1/audit/checkpoints "$GLOBAL")" | jq '.checkpoints | length')" -ge 1 ] && pass "at least one signed checkpoint" ||
  fail "no checkpoint"

# ---- independent verification ------------------------------------------------------------------------
PK=$(curl -s --cacert "$CA" "$TLS_URL/v1/audit/key" | jq -r .public_key)
expect_eq "$PK" "$("$LMDM_BIN" audit key --config "$CONF")" "the published key is the broker's ledger key"
curl -s --cacert "$CA" -H "Authorization: Bearer $GLOBAL" "$TLS_URL/v1/audit/export" >"$T/export.jsonl"
rc=0; v=$("$LMDM_BIN" audit verify "$T/export.jsonl" --key "$PK" 2>&1) || rc=$?
expect_eq "$rc" 0 "the API export verifies offline: $v"
rc=0; "$LMDM_BIN" audit verify --db --config "$CONF" >/dev/null 2>&1 || rc=$?
expect_eq "$rc" 0 "the live ledger verifies"
# An auditor changes nothing but one decision in the export: caught, and named.
sed '0,/"decision":"block"/s//"decision":"allow"/' "$T/export.jsonl" >"$T/tampered.jsonl"
rc=0; v=$("$LMDM_BIN" audit verify "$T/tampered.jsonl" --key "$PK" 2>&1) || rc=$?
expect_eq "$rc" 1 "a tampered export fails"
expect_contains "$v" "pos" "and names the entry"
rc=0; "$LMDM_BIN" audit verify "$T/export.jsonl" --key "$(printf '%044d' 0 | head -c 43)=" >/dev/null 2>&1 || rc=$?
[ "$rc" -ne 0 ] && pass "another key does not verify the checkpoints" || fail "verified with a wrong key"

e2e_finish
