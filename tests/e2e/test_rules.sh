#!/usr/bin/env bash
# Device-wide rules end to end with the simulator: two tenants ask for a
# passcode of 6 and 8 characters -> the device receives one broker profile
# with 8; the stricter tenant leaves -> 6; a third, weaker tenant causes no
# reinstall; the last leaves -> the profile is removed. Compliance per tenant,
# each seeing only its own requirements. Out-of-range rules are refused with
# the key and the range; a passcode payload inside a tenant's profile becomes
# that enrollment's rule. The device is a profile device (no OSVersion at
# Authenticate); test_declarations.sh covers devices that take a declaration.
. "$(dirname "$0")/lib.sh"

SIM="$LMDM_BUILD/tests/sim/lmdm-sim"
[ -x "$SIM" ] || { echo "missing $SIM"; exit 1; }
e2e_start_full "mdm_max_body = 256k" "compliance_interval = 2s"

put_rule() { api PUT "/v1/rules/$2" "$1" -H 'Content-Type: application/json' -d "$3"; }
broker_cmds() { psqlq "SELECT count(*) FROM commands WHERE tenant_id = 0 AND request_type IN ('InstallProfile', 'RemoveProfile')"; }
settled() { [ "$(psqlq "SELECT count(*) FROM devices WHERE rules_dirty OR security_dirty")" = 0 ]; }
# The minLength in the newest broker profile queued for the device.
profile_min_length() {
  psqlq "SELECT payload FROM commands WHERE tenant_id = 0 AND request_type = 'InstallProfile' ORDER BY id DESC LIMIT 1" |
    tr -d '\n\t ' | sed -n 's:.*<key>Payload</key><data>\([^<]*\)</data>.*:\1:p' | base64 -d 2>/dev/null |
    tr -d '\n\t ' | sed -n 's:.*<key>minLength</key><integer>\([0-9]*\)</integer>.*:\1:p'
}

out=$("$SIM" enroll --url "$TLS_URL" --cacert "$CA" --dir "$T/dev")
"$SIM" checkin --dir "$T/dev" --cacert "$CA" --message Authenticate >/dev/null
"$SIM" checkin --dir "$T/dev" --cacert "$CA" --message TokenUpdate >/dev/null
curl -s -o /dev/null --cacert "$CA" -c "$T/jar" "$(jq -r .owner_url <<<"$out")"

read -r TA KA EA <<<"$(tenant "St. Mary's")"
read -r TB KB EB <<<"$(tenant "General Hospital")"
wait_for 10 settled || fail "the applier did not settle"
expect_eq "$(broker_cmds)" 0 "no rules, no broker profile"

# ---- validation ------------------------------------------------------------------------------------
r=$(put_rule "$KA" passcode '{"minLength": 40}')
expect_eq "$(status "$r")" 400 "out-of-range value refused"
expect_contains "$(body "$r")" "minLength" "the error names the key"
expect_contains "$(body "$r")" "0..16" "and the range"
expect_eq "$(status "$(put_rule "$KA" passcode '{"maxFailedAttempts": 4}')")" 400 "maxFailedAttempts (a wipe trigger) refused"
expect_eq "$(status "$(put_rule "$KA" passcode '{"minLenght": 6}')")" 400 "unknown key refused"
expect_eq "$(status "$(put_rule "$KA" firewall '{}')")" 404 "unknown section"
expect_eq "$(psqlq "SELECT count(*) FROM tenant_rules")" 0 "nothing stored"

# ---- 6 and 8 -> 8 ---------------------------------------------------------------------------------------
expect_eq "$(status "$(put_rule "$KA" passcode '{"requirePasscode": true, "minLength": 6}')")" 200 "A asks for 6"
expect_eq "$(status "$(put_rule "$KB" passcode '{"requirePasscode": true, "minLength": 8}')")" 200 "B asks for 8"
expect_eq "$(body "$(api GET /v1/rules/passcode "$KA")" | jq -r .rule.minLength)" 6 "A reads back its own rule"
wait_for 10 settled || fail "the applier did not settle"
expect_eq "$(profile_min_length)" 8 "the device gets one profile with the strictest: 8"
# An iPhone under device enrollment leaves OSVersion out of Authenticate (the
# broker does not ask for the device-information right): the broker cannot
# tell it supports the passcode declaration, so the passcode stays in the
# profile (tests/e2e/test_declarations.sh covers the declaration path).
expect_eq "$(psqlq "SELECT coalesce(info ->> 'OSVersion', 'none') FROM devices")" none "the device did not report its OS version"
expect_eq "$(psqlq "SELECT count(*) FROM commands WHERE request_type = 'DeclarativeManagement'")" 0 "so no declaration"
n_installs=$(broker_cmds)
"$SIM" run --dir "$T/dev" --cacert "$CA" >"$T/run1"
expect_contains "$(cat "$T/run1")" '"request_type":"InstallProfile"' "the device installs the broker profile"
expect_contains "$(cat "$T/run1")" '"request_type":"SecurityInfo"' "and is asked for its security state"
wait_for 10 settled || fail "compliance not evaluated"
c=$(body "$(api GET "/v1/enrollments/$EA/compliance" "$KA")")
expect_eq "$(jq -r .requirements.passcode.rule.minLength <<<"$c")" 6 "A sees its own requirement (6), not B's"
case "$(jq -r .requirements.passcode.state <<<"$c")" in met | unmet) pass "compliance judged from the device's answer" ;;
  *) fail "compliance: $c" ;; esac
[ "$(jq -r .checked_at <<<"$c")" != null ] && pass "with the time of the check" || fail "no checked_at"
expect_eq "$(status "$(api GET "/v1/enrollments/$EB/compliance" "$KA")")" 404 "another tenant's compliance -> 404"

# Compliance stays current: after compliance_interval the device is asked again.
sec_count() { psqlq "SELECT count(*) FROM commands WHERE tenant_id = 0 AND request_type = 'SecurityInfo'"; }
n_sec=$(sec_count)
asked_again() { [ "$(sec_count)" -gt "$n_sec" ]; }
wait_for 10 asked_again &&
  pass "the device is asked again whether it complies" || fail "no SecurityInfo refresh"
"$SIM" run --dir "$T/dev" --cacert "$CA" >/dev/null

owner=$(curl -s --cacert "$CA" -b "$T/jar" "$TLS_URL/owner")
expect_contains "$owner" "at least 8 characters" "the owner page shows the rule in force"
expect_contains "$owner" "required by General Hospital" "and which organization drove it"

# ---- a weaker third tenant changes nothing on the device ------------------------------------------------
read -r TC KC EC <<<"$(tenant "Clinic C")"
put_rule "$KC" passcode '{"minLength": 4}' >/dev/null
wait_for 10 settled || fail "the applier did not settle"
expect_eq "$(broker_cmds)" "$n_installs" "a weaker rule causes no reinstall"

# ---- the stricter tenant leaves -> 6; the rest leave -> removed ------------------------------------------
expect_eq "$(status "$(api DELETE "/v1/enrollments/$EB" "$KB")")" 200 "B leaves"
wait_for 10 settled || fail "the applier did not settle"
expect_eq "$(profile_min_length)" 6 "the profile is relaxed to 6 only when the stricter tenant is gone"
api DELETE "/v1/enrollments/$EC" "$KC" >/dev/null
wait_for 10 settled || true
expect_eq "$(profile_min_length)" 6 "still 6 while A requires it"
api DELETE "/v1/enrollments/$EA" "$KA" >/dev/null
wait_for 10 settled || fail "the applier did not settle"
expect_eq "$(psqlq "SELECT request_type FROM commands WHERE tenant_id = 0 AND request_type IN ('InstallProfile', 'RemoveProfile') ORDER BY id DESC LIMIT 1")" \
  "RemoveProfile" "no tenant requires anything: the profile is removed"
expect_contains "$(psqlq "SELECT payload FROM commands WHERE request_type = 'RemoveProfile' ORDER BY id DESC LIMIT 1")" \
  "lmdm.broker.rules" "exactly the broker's rules profile"

# ---- a passcode payload inside a tenant's profile becomes its rule ----------------------------------------
read -r TD KD ED <<<"$(tenant "Dental D")"
PROF=$(printf '<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>PayloadType</key><string>Configuration</string><key>PayloadIdentifier</key><string>org.dental.pass</string><key>PayloadUUID</key><string>2D9B9C1A-0000-4000-8000-000000000001</string><key>PayloadVersion</key><integer>1</integer><key>PayloadContent</key><array><dict><key>PayloadType</key><string>com.apple.mobiledevice.passwordpolicy</string><key>PayloadIdentifier</key><string>org.dental.pass.p</string><key>PayloadUUID</key><string>2D9B9C1A-0000-4000-8000-000000000002</string><key>PayloadVersion</key><integer>1</integer><key>minLength</key><integer>10</integer></dict></array></dict></plist>' | base64 -w0)
r=$(api POST "/v1/enrollments/$ED/commands" "$KD" -H 'Content-Type: application/json' \
  -d "{\"Command\":{\"RequestType\":\"InstallProfile\",\"Payload\":{\"\$data\":\"$PROF\"}}}")
expect_eq "$(status "$r"):$(body "$r" | jq -r .state)" "202:accepted_for_merge" "a passcode-only profile is merged, not installed"
expect_eq "$(psqlq "SELECT rules ->> 'minLength' FROM tenant_rules WHERE tenant_id = $TD AND enrollment_id IS NOT NULL")" 10 \
  "it became the enrollment's passcode rule"
wait_for 10 settled || fail "the applier did not settle"
expect_eq "$(profile_min_length)" 10 "and the broker profile follows it"

e2e_finish
