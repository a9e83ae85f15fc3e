#!/usr/bin/env bash
# Two tenants on one device, end to end: invite -> consent -> enrollment seen
# by that tenant only; pseudonyms differ per tenant and hold no device
# identifier; commands of both interleave on the simulated device and each
# result reaches only its own tenant, through signed webhooks and the API;
# another tenant's enrollment and command answer 404; scoping of apps; a
# webhook receiver that is down for a while gets every event later, in order;
# the owner removes one tenant: exactly its apps are removed, it is told, and
# its enrollment answers 410; the other leaves through the API.
. "$(dirname "$0")/lib.sh"

SIM="$LMDM_BUILD/tests/sim/lmdm-sim"
SINK="$LMDM_BUILD/tests/tools/webhook-sink"
[ -x "$SIM" ] && [ -x "$SINK" ] || { echo "missing $SIM or $SINK"; exit 1; }

SINK_PIDS=()
trap 'for p in "${SINK_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; e2e_cleanup' EXIT

e2e_start_full "mdm_max_body = 256k" "webhook_backoff_max = 1" "webhook_timeout = 2s"

sink_has() { grep -c "$2" "$1" 2>/dev/null | grep -qx "$3"; } # sink_has FILE PATTERN COUNT

# ---- one device, its owner, two tenants with webhook receivers ----------------------------------
out=$("$SIM" enroll --url "$TLS_URL" --cacert "$CA" --dir "$T/dev")
"$SIM" checkin --dir "$T/dev" --cacert "$CA" --message Authenticate >/dev/null
"$SIM" checkin --dir "$T/dev" --cacert "$CA" --message TokenUpdate >/dev/null
UDID=$(jq -r .udid "$T/dev/device.json")
SERIAL=$(jq -r .serial "$T/dev/device.json")
OWNER_URL=$(jq -r '.owner_url // empty' <<<"$out")
[ -n "$OWNER_URL" ] && pass "enrolled; the profile carries the owner link" || fail "no owner link in the profile"
curl -s -o /dev/null --cacert "$CA" -c "$T/jar" "$OWNER_URL"

TA=$("$LMDM_BIN" tenant add "St. Mary's" --config "$CONF")
TB=$("$LMDM_BIN" tenant add "General Hospital" --config "$CONF")
KA=$("$LMDM_BIN" key issue --tenant "$TA" --role admin --config "$CONF")
KB=$("$LMDM_BIN" key issue --tenant "$TB" --role admin --config "$CONF")
KAUD=$("$LMDM_BIN" key issue --tenant "$TA" --role auditor --config "$CONF")
PK=$(curl -s --cacert "$CA" "$TLS_URL/v1/keys" | jq -r '.keys[0].public_key')

start_sink() { # start_sink NAME PORT: runs webhook-sink; sets SINK_PORT and SINK_PID
  "$SINK" --port "$2" --pubkey "$PK" --out "$T/$1.events" >"$T/$1.sink.log" 2>&1 &
  SINK_PID=$!
  SINK_PIDS+=("$SINK_PID")
  wait_for 5 grep -q '^listening' "$T/$1.sink.log" || fail "sink $1 did not start"
  SINK_PORT=$(sed -n 's/^listening 127.0.0.1:\([0-9]*\).*/\1/p' "$T/$1.sink.log" | head -n1)
}
start_sink a 0
PA=$SINK_PORT
start_sink b 0
PB=$SINK_PORT
SINK_B_PID=$SINK_PID
expect_eq "$(status "$(api PUT /v1/webhook "$KA" -H 'Content-Type: application/json' -d "{\"url\":\"http://127.0.0.1:$PA/hook\"}")")" 204 "tenant A webhook set"
expect_eq "$(status "$(api PUT /v1/webhook "$KB" -H 'Content-Type: application/json' -d "{\"url\":\"http://127.0.0.1:$PB/hook\"}")")" 204 "tenant B webhook set"

# ---- invite -> consent -> enrollment ---------------------------------------------------------------
accept() { # accept KEY -> accepts a fresh invitation of that tenant as the owner
  local r url page csrf
  r=$(post_json "$1" /v1/invitations '{"note":"rotation","rules":{"passcode":{"minLength":6}}}')
  url=$(body "$r" | jq -r .url)
  page=$(curl -s --cacert "$CA" -b "$T/jar" "$url")
  csrf=$(csrf_of "$page")
  curl -s -o /dev/null -w '%{http_code}' --cacert "$CA" -b "$T/jar" -H "Origin: $TLS_URL" \
    --data-urlencode "action=accept" --data-urlencode "csrf=$csrf" "$url"
}
expect_eq "$(body "$(api GET /v1/enrollments "$KA")" | jq -c .enrollments)" "[]" "before consent, tenant A sees nothing"
expect_eq "$(accept "$KA")" 200 "the owner accepts St. Mary's"
EA=$(body "$(api GET /v1/enrollments "$KA")" | jq -r '.enrollments[0].id')
expect_eq "$(body "$(api GET /v1/enrollments "$KB")" | jq -c .enrollments)" "[]" "tenant B sees nothing of A's enrollment"
expect_eq "$(accept "$KB")" 200 "the owner accepts General Hospital"
EB=$(body "$(api GET /v1/enrollments "$KB")" | jq -r '.enrollments[0].id')
case "$EA/$EB" in e??????????????????????????/e??????????????????????????) pass "pseudonymous ids" ;; *) fail "ids $EA $EB" ;; esac
[ "$EA" != "$EB" ] && pass "the two tenants get different ids for the same device" || fail "same id for both tenants"
all=$(body "$(api GET /v1/enrollments/"$EA" "$KA")")
case "$all$EA$EB" in *"$UDID"* | *"$SERIAL"*) fail "a device identifier reached a tenant" ;; *) pass "no UDID or serial number in what tenants see" ;; esac
expect_eq "$(jq -r .state <<<"$all")" "active" "enrollment is active"
expect_eq "$(status "$(api GET /v1/enrollments/"$EB" "$KA")")" 404 "another tenant's enrollment -> 404"
expect_eq "$(status "$(api GET /v1/enrollments/eaaaaaaaaaaaaaaaaaaaaaaaaaa "$KA")")" 404 "no such enrollment -> the same 404"
wait_for 10 sink_has "$T/a.events" '^enrollment.accepted ' 1 && pass "A was told: enrollment.accepted" || fail "no enrollment.accepted for A"

# ---- commands of both tenants, interleaved ------------------------------------------------------
install() { printf '{"CommandUUID":"%s","Command":{"RequestType":"InstallApplication","Identifier":"%s"}}' "$1" "$2"; }
r=$(post_json "$KA" "/v1/enrollments/$EA/commands" "$(install A-1 org.stmarys.rounds)")
expect_eq "$(status "$r")" 202 "A installs its app"
CA1=$(body "$r" | jq -r .id)
r=$(post_json "$KB" "/v1/enrollments/$EB/commands" "$(install B-1 org.general.app)")
expect_eq "$(status "$r")" 202 "B installs its app"
CB1=$(body "$r" | jq -r .id)
PLIST='<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict><key>CommandUUID</key><string>A-2</string><key>Command</key><dict><key>RequestType</key><string>ManagedApplicationList</string></dict></dict></plist>'
r=$(api POST "/v1/enrollments/$EA/commands" "$KA" -H 'Content-Type: application/x-apple-aspen-mdm' --data-binary "$PLIST")
expect_eq "$(status "$r")" 202 "A sends Apple's plist as is"
CA2=$(body "$r" | jq -r .id)
expect_eq "$(status "$(post_json "$KA" "/v1/enrollments/$EA/commands" "$(install A-1 org.stmarys.other)")")" 409 "a CommandUUID used twice -> 409"
r=$(post_json "$KB" "/v1/enrollments/$EB/commands" '{"Command":{"RequestType":"RemoveApplication","Identifier":"org.stmarys.rounds"}}')
expect_eq "$(body "$r" | jq -r .reason)" "not_owned" "B cannot remove A's app"
r=$(post_json "$KB" "/v1/enrollments/$EB/commands" "$(install B-9 org.stmarys.rounds)")
expect_eq "$(body "$r" | jq -r .reason)" "entity_owned_by_other_tenant" "B cannot take over A's app"
expect_contains "$(body "$r")" '"message":"another organization manages' "without naming the other tenant"
r=$(post_json "$KA" "/v1/enrollments/$EA/commands" '{"Command":{"RequestType":"EraseDevice"}}')
expect_eq "$(status "$r"):$(body "$r" | jq -r .reason)" "403:wipe" "wipe refused"
r=$(post_json "$KAUD" "/v1/enrollments/$EA/commands" "$(install A-7 org.stmarys.x)")
expect_eq "$(status "$r")" 403 "auditor key cannot enqueue"
r=$(post_json "$KA" "/v1/enrollments/$EA/commands" '{"Command":{"RequestType":')
expect_eq "$(status "$r"):$(body "$r" | jq -r .error)" "400:bad_json" "malformed JSON -> 400 with a code"
r=$(api POST "/v1/enrollments/$EA/commands" "$KA" -H 'Content-Type: application/xml' --data-binary '<plist><dict><key>Command</key><dict>')
expect_eq "$(status "$r"):$(body "$r" | jq -r .error)" "400:bad_plist" "malformed plist -> 400 with a code"
expect_eq "$(psqlq "SELECT count(*) FROM commands")" 3 "only the three accepted commands are queued"
expect_eq "$(psqlq "SELECT count(*) FROM commands WHERE payload LIKE '%<string>A-1</string>%' OR payload LIKE '%<string>B-1</string>%'")" 0 "the device never sees a tenant's CommandUUID"
expect_eq "$(status "$(api GET /v1/commands/"$CA1" "$KB")")" 404 "another tenant's command -> 404"
expect_eq "$(status "$(api DELETE /v1/commands/"$CA1" "$KB")")" 404 "another tenant cannot cancel it"

run=$("$SIM" run --dir "$T/dev" --cacert "$CA")
expect_eq "$(grep -c '"sent_status":"Acknowledged"' <<<"$run")" 3 "the device answered all three commands"
order=$(jq -r 'select(.next_request_type != null) | .next_request_type' <<<"$run" | tr '\n' ' ')
expect_eq "$order" "InstallApplication InstallApplication ManagedApplicationList " "tenants take turns"
wait_for 10 sink_has "$T/a.events" '^command.result ' 2 && pass "A got its two results" || fail "A results: $(cat "$T/a.events")"
wait_for 10 sink_has "$T/b.events" '^command.result ' 1 && pass "B got its one result" || fail "B results: $(cat "$T/b.events")"
a_events=$(cat "$T/a.events"); b_events=$(cat "$T/b.events")
expect_contains "$a_events" '"command_uuid":"A-1"' "A's result carries A's CommandUUID"
expect_contains "$a_events" '"command_uuid":"A-2"' "A's plist command result too"
case "$a_events" in *'"B-1"'* | *org.general.app*) fail "B's command reached A" ;; *) pass "nothing of B's reached A" ;; esac
case "$b_events" in *'"A-'* | *org.stmarys*) fail "A's command reached B" ;; *) pass "nothing of A's reached B" ;; esac
case "$a_events$b_events" in *"$UDID"* | *"$SERIAL"*) fail "a device identifier in a webhook" ;; *) pass "no device identifier in any webhook" ;; esac
grep -q BADSIG "$T/a.events" "$T/b.events" && fail "a webhook signature did not verify" || pass "every webhook signature verified"
r=$(body "$(api GET /v1/commands/"$CA2" "$KA")")
expect_eq "$(jq -r .state <<<"$r"):$(jq -r .status <<<"$r")" "acknowledged:Acknowledged" "result fetchable through the API"
expect_contains "$(jq -r .result <<<"$r")" "<string>A-2</string>" "API result with the tenant's CommandUUID"
case "$(jq -r .result <<<"$r")" in *"$UDID"*) fail "UDID in the API result" ;; *) pass "no UDID in the API result" ;; esac
list=$(body "$(api GET "/v1/enrollments/$EA/commands" "$KA")")
expect_eq "$(jq -r '[.commands[].command_uuid] | join(",")' <<<"$list")" "A-2,A-1" "A's history, newest first, only A's"

# ---- a NanoMDM-style client: raw plist, several ids, ?nopush ------------------------------------------
NANO_PLIST='<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict><key>CommandUUID</key><string>A-nano</string><key>Command</key><dict><key>RequestType</key><string>ManagedApplicationList</string></dict></dict></plist>'
r=$(curl -s --cacert "$CA" -X PUT -u "nanomdm:$KA" -w '\nHTTP %{http_code}' --data-binary "$NANO_PLIST" \
  "$TLS_URL/v1/enqueue/$EA,$EB?nopush")
expect_eq "$(status "$r")" 200 "NanoMDM-style enqueue with Basic auth"
expect_eq "$(body "$r" | jq -r '.command_uuid + " " + .request_type + " " + (.no_push|tostring)')" "A-nano ManagedApplicationList true" \
  "answers like NanoMDM"
expect_eq "$(body "$r" | jq -r ".status[\"$EA\"].command_id | length")" 36 "queued for its own enrollment"
expect_eq "$(body "$r" | jq -r ".status[\"$EB\"].enqueue_error")" "not_found" "another tenant's enrollment: not found"
expect_eq "$(psqlq "SELECT no_push FROM commands WHERE tenant_command_uuid = 'A-nano'")" "t" "queued without a push"
"$SIM" run --dir "$T/dev" --cacert "$CA" >/dev/null
wait_for 10 sink_has "$T/a.events" '"command_uuid":"A-nano"' 1 && pass "its result reaches A" || fail "no A-nano result"

# ---- what never reaches the device ----------------------------------------------------------------
before=$(psqlq "SELECT count(*) FROM commands")
blocks=$(psqlq "SELECT count(*) FROM decisions WHERE tenant_id = $TB AND decision = 'block'")
for rt in EraseDevice DeviceLocation DeviceLock InstalledApplicationList; do
  r=$(post_json "$KB" "/v1/enrollments/$EB/commands" "{\"Command\":{\"RequestType\":\"$rt\"}}")
  expect_eq "$(status "$r"):$(body "$r" | jq -r .decision)" "403:block" "$rt refused"
done
r=$(post_json "$KB" "/v1/enrollments/$EB/commands" '{"CommandUUID":"B-info","Command":{"RequestType":"DeviceInformation","Queries":["SerialNumber","DeviceName","OSVersion"]}}')
expect_eq "$(status "$r")" 202 "DeviceInformation with one harmless query is accepted"
expect_eq "$(psqlq "SELECT count(*) FROM commands") " "$((before + 1)) " "only that one was queued"
expect_eq "$(psqlq "SELECT count(*) FROM decisions WHERE tenant_id = $TB AND decision = 'block'")" "$((blocks + 4))" "every refusal is recorded"
payload=$(psqlq "SELECT payload FROM commands WHERE tenant_command_uuid = 'B-info'")
case "$payload" in *SerialNumber* | *DeviceName*) fail "an identifying query reached the device" ;; *) pass "identifying queries stripped before the device" ;; esac
run=$("$SIM" run --dir "$T/dev" --cacert "$CA")
for rt in EraseDevice DeviceLocation DeviceLock InstalledApplicationList; do
  case "$run" in *"\"$rt\""*) fail "$rt reached the simulator" ;; esac
done
expect_contains "$run" '"request_type":"DeviceInformation"' "the device answered DeviceInformation"
wait_for 10 sink_has "$T/b.events" '"command_uuid":"B-info"' 1 && pass "B got the DeviceInformation result" || fail "no B-info result"
case "$(grep B-info "$T/b.events")" in *"$SERIAL"*) fail "the serial number reached B" ;; *) pass "no serial number in the answer B sees" ;; esac
sed -i '/B-info/d' "$T/b.events"

# ---- B's receiver is down for a while: nothing is lost, order holds -----------------------------
kill "$SINK_B_PID"; wait "$SINK_B_PID" 2>/dev/null || true
for i in 2 3 4; do
  post_json "$KB" "/v1/enrollments/$EB/commands" "{\"CommandUUID\":\"B-$i\",\"Command\":{\"RequestType\":\"ManagedApplicationList\"}}" >/dev/null
done
"$SIM" run --dir "$T/dev" --cacert "$CA" >/dev/null
failed_attempts() { [ "$(psqlq "SELECT count(*) FROM outbox WHERE tenant_id = $TB AND delivered_at IS NULL AND attempts > 0")" -ge 1 ]; }
wait_for 10 failed_attempts &&
  pass "deliveries to the dead receiver fail and are kept" || fail "no failed attempt recorded"
sleep 2
"$SINK" --port "$PB" --pubkey "$PK" --out "$T/b.events" >"$T/b2.sink.log" 2>&1 &
SINK_PIDS+=($!)
wait_for 15 sink_has "$T/b.events" '^command.result ' 4 && pass "the results arrive once the receiver is back" || fail "B events after recovery: $(cat "$T/b.events")"
expect_eq "$(grep '^command.result ' "$T/b.events" | grep -o '"command_uuid":"B-[0-9]"' | cut -d'"' -f4 | tr '\n' ' ')" "B-1 B-2 B-3 B-4 " "in order, none lost"

# ---- a tenant whose wipe means "retire" -------------------------------------------------------------
TC=$("$LMDM_BIN" tenant add "Clinic C" --config "$CONF")
KC=$("$LMDM_BIN" key issue --tenant "$TC" --role admin --config "$CONF")
expect_eq "$(accept "$KC")" 200 "the owner accepts Clinic C"
EC=$(body "$(api GET /v1/enrollments "$KC")" | jq -r '.enrollments[0].id')
expect_eq "$(status "$(post_json "$KC" "/v1/enrollments/$EC/commands" "$(install C-1 org.clinic.app)")")" 202 "C installs its app"
"$SIM" run --dir "$T/dev" --cacert "$CA" >/dev/null
r=$(post_json "$KC" "/v1/enrollments/$EC/commands" '{"Command":{"RequestType":"EraseDevice"}}')
expect_eq "$(status "$r"):$(body "$r" | jq -r .reason)" "403:wipe" "by default a wipe is refused"
expect_contains "$("$LMDM_BIN" tenant set "$TC" --wipe-as-retire on --config "$CONF")" "wipe-as-retire on" "operator sets wipe-as-retire"
r=$(post_json "$KC" "/v1/enrollments/$EC/commands" '{"Command":{"RequestType":"EraseDevice"}}')
expect_eq "$(status "$r"):$(body "$r" | jq -r .decision)" "202:retire" "now the wipe retires the tenant"
expect_eq "$(psqlq "SELECT request_type FROM commands WHERE state = 'queued' AND payload LIKE '%org.clinic.app%'")" "RemoveApplication" \
  "exactly C's app is removed"
expect_eq "$(psqlq "SELECT count(*) FROM commands WHERE request_type = 'EraseDevice'")" 0 "nothing is erased"
expect_eq "$(status "$(api GET /v1/enrollments/"$EC" "$KC")")" 410 "C's enrollment has ended"
"$SIM" run --dir "$T/dev" --cacert "$CA" >/dev/null

# ---- leaving --------------------------------------------------------------------------------------
pagex=$(curl -s --cacert "$CA" -b "$T/jar" "$TLS_URL/owner/enrollments/$EA/remove")
csrf=$(csrf_of "$pagex")
expect_contains "$pagex" "St. Mary" "the confirmation names the organization"
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CA" -b "$T/jar" -H "Origin: $TLS_URL" \
  --data-urlencode "csrf=$csrf" "$TLS_URL/owner/enrollments/$EA/remove")
expect_eq "$code" 200 "the owner removes St. Mary's"
expect_eq "$(psqlq "SELECT request_type || ' ' || tenant_id FROM commands WHERE state = 'queued'")" "RemoveApplication 0" \
  "exactly one removal queued, owned by the broker"
expect_contains "$(psqlq "SELECT payload FROM commands WHERE state = 'queued'")" "org.stmarys.rounds" "it removes A's app, not B's"
wait_for 10 sink_has "$T/a.events" '^enrollment.removed ' 1 && pass "A was told: enrollment.removed" || fail "no enrollment.removed for A"
expect_eq "$(status "$(api GET /v1/enrollments/"$EA" "$KA")")" 410 "the removed enrollment answers 410"
expect_eq "$(status "$(post_json "$KA" "/v1/enrollments/$EA/commands" "$(install A-5 org.stmarys.rounds)")")" 410 "no more commands for it"
expect_eq "$(body "$(api GET /v1/enrollments/"$EB" "$KB")" | jq -r .state)" "active" "B is untouched"
run=$("$SIM" run --dir "$T/dev" --cacert "$CA")
expect_contains "$run" '"request_type":"RemoveApplication"' "the device removes the app"

r=$(api DELETE "/v1/enrollments/$EB" "$KB")
expect_eq "$(status "$r")" 200 "B leaves through the API"
expect_contains "$(psqlq "SELECT payload FROM commands WHERE state = 'queued'")" "org.general.app" "its app removal is queued"
expect_eq "$(status "$(api DELETE "/v1/enrollments/$EB" "$KB")")" 410 "leaving twice -> 410"

e2e_finish
