#!/usr/bin/env bash
# The merged passcode rule as a declaration (issue 6, item 5), end to end with
# the simulator. A User Enrollment iPhone on iOS 18.1 reports its OSVersion at
# Authenticate, so the broker knows it supports
# com.apple.configuration.passcode.settings: two tenants ask for 6 and 8 ->
# no passcode payload in the broker profile, a DeclarativeManagement command,
# and the DeclarativeManagement check-ins serve a passcode declaration with
# MinimumLength 8 and an activation of it; the stricter tenant leaves -> 6
# with a new ServerToken; all leave -> the empty set. A device on iOS 16.1
# (too old for every passcode key of the declaration) keeps the profile.
. "$(dirname "$0")/lib.sh"

SIM="$LMDM_BUILD/tests/sim/lmdm-sim"
[ -x "$SIM" ] || { echo "missing $SIM"; exit 1; }
e2e_start_full "mdm_max_body = 256k"

put_rule() { api PUT "/v1/rules/$2" "$1" -H 'Content-Type: application/json' -d "$3"; }
settled() { [ "$(psqlq "SELECT count(*) FROM devices WHERE rules_dirty OR security_dirty")" = 0 ]; }
# Broker commands of one type queued for the device of DIR.
dev_id() { psqlq "SELECT id FROM devices WHERE device_key = '$(jq -r '.enrollment_id' "$1/device.json")'"; }
cmds() { # cmds DEVICE_ID TYPE
  psqlq "SELECT count(*) FROM commands c JOIN channels ch ON ch.id = c.channel_id
          WHERE ch.device_id = $1 AND c.tenant_id = 0 AND c.request_type = '$2'"
}
# The newest broker profile queued for a device, decoded.
profile_of() {
  psqlq "SELECT payload FROM commands c JOIN channels ch ON ch.id = c.channel_id WHERE ch.device_id = $1
          AND c.tenant_id = 0 AND c.request_type = 'InstallProfile' ORDER BY c.id DESC LIMIT 1" |
    tr -d '\n\t ' | sed -n 's:.*<key>Payload</key><data>\([^<]*\)</data>.*:\1:p' | base64 -d 2>/dev/null
}
# One DeclarativeManagement check-in; prints the body (the sim prints the status line first).
ddm() { "$SIM" checkin --dir "$T/dev" --cacert "$CA" --message DeclarativeManagement --endpoint "$1" | tail -n +2; }
ddm_status() { "$SIM" checkin --dir "$T/dev" --cacert "$CA" --message DeclarativeManagement --endpoint "$1" | head -n1; }

out=$("$SIM" enroll --url "$TLS_URL" --cacert "$CA" --dir "$T/dev" --user "doctor@stmarys.example")
"$SIM" checkin --dir "$T/dev" --cacert "$CA" --message Authenticate >/dev/null
"$SIM" checkin --dir "$T/dev" --cacert "$CA" --message TokenUpdate >/dev/null
curl -s -o /dev/null --cacert "$CA" -c "$T/jar" "$(jq -r .owner_url <<<"$out")"
DEV=$(dev_id "$T/dev")
[ -n "$DEV" ] || fail "the User Enrollment device is not registered"
expect_eq "$(psqlq "SELECT info ->> 'OSVersion' FROM devices WHERE id = $DEV")" 18.1 "the device reported its OS version"

# Before any rule: today's empty, stable set.
expect_eq "$(ddm tokens | jq -r .SyncTokens.DeclarationsToken)" lmdm-declarations-0 "no declaration yet: the empty set"
expect_eq "$(ddm declaration-items | jq -c .Declarations.Configurations)" "[]" "no configuration"

read -r TA KA EA <<<"$(tenant "St. Mary's")"
read -r TB KB EB <<<"$(tenant "General Hospital")"
wait_for 10 settled || fail "the applier did not settle"

# ---- 6 and 8 -> a declaration with 8, no passcode payload in the profile ----------------------------------
put_rule "$KA" passcode '{"requirePasscode": true, "minLength": 6}' >/dev/null
put_rule "$KA" restrictions '{"allowManagedAppsCloudSync": false}' >/dev/null
put_rule "$KB" passcode '{"minLength": 8, "allowSimple": false}' >/dev/null
wait_for 10 settled || fail "the applier did not settle"
n1=$(cmds "$DEV" DeclarativeManagement) # 1, or 2 if the applier ran between the two tenants' rules
[ "$n1" -ge 1 ] && pass "the device is told to sync its declarations" || fail "no DeclarativeManagement command"
prof=$(profile_of "$DEV")
expect_contains "$prof" "com.apple.applicationaccess" "the broker profile still carries the other rules"
case "$prof" in *passwordpolicy* | *minLength*) fail "the profile carries the passcode: $prof" ;;
  *) pass "no passcode payload in the broker profile" ;; esac

tok1=$(ddm tokens | jq -r .SyncTokens.DeclarationsToken)
[ -n "$tok1" ] && [ "$tok1" != lmdm-declarations-0 ] && pass "a new DeclarationsToken" || fail "token: $tok1"
items=$(ddm declaration-items)
expect_eq "$(jq -r .DeclarationsToken <<<"$items")" "$tok1" "declaration-items carries the same token"
expect_eq "$(jq -r '.Declarations.Configurations[0].Identifier' <<<"$items")" lmdm.rules.passcode "the passcode configuration"
expect_eq "$(jq -r '.Declarations.Activations[0].Identifier' <<<"$items")" lmdm.rules.activation "and its activation"
st1=$(jq -r '.Declarations.Configurations[0].ServerToken' <<<"$items")
decl=$(ddm declaration/configuration/lmdm.rules.passcode)
expect_eq "$(jq -r .Type <<<"$decl")" com.apple.configuration.passcode.settings "Apple's declaration type"
expect_eq "$(jq -r .ServerToken <<<"$decl")" "$st1" "its ServerToken matches the item"
expect_eq "$(jq -r .Payload.MinimumLength <<<"$decl")" 8 "the strictest minimum length: 8"
expect_eq "$(jq -r .Payload.RequirePasscode <<<"$decl")" true "a passcode required"
expect_eq "$(jq -r .Payload.RequireComplexPasscode <<<"$decl")" true "allowSimple false -> RequireComplexPasscode true"
act=$(ddm declaration/activation/lmdm.rules.activation)
expect_eq "$(jq -r .Type <<<"$act")" com.apple.activation.simple "a simple activation"
expect_eq "$(jq -c .Payload.StandardConfigurations <<<"$act")" '["lmdm.rules.passcode"]' "activating the passcode"
expect_eq "$(jq -r .ServerToken <<<"$act")" "$(jq -r '.Declarations.Activations[0].ServerToken' <<<"$items")" \
  "the activation's ServerToken matches the item"
expect_contains "$(ddm_status declaration/configuration/other)" 404 "an unknown declaration -> 404"
expect_contains "$(ddm_status status)" 200 "a status report -> 200"

# The device runs its commands (DeclarativeManagement, the profile, SecurityInfo): compliance judged.
"$SIM" run --dir "$T/dev" --cacert "$CA" >"$T/run1"
expect_contains "$(cat "$T/run1")" '"request_type":"DeclarativeManagement"' "the device receives DeclarativeManagement"
wait_for 10 settled || fail "compliance not evaluated"
want=$(psqlq "SELECT CASE (security ->> 'PasscodeCompliant')::boolean WHEN true THEN 'met' WHEN false THEN 'unmet' END
               FROM devices WHERE id = $DEV")
[ -n "$want" ] || fail "the device did not answer SecurityInfo"
expect_eq "$(body "$(api GET "/v1/enrollments/$EA/compliance" "$KA")" | jq -r .requirements.passcode.state)" "$want" \
  "passcode compliance judged from PasscodeCompliant"

# The same rules again change nothing.
put_rule "$KB" passcode '{"allowSimple": false, "minLength": 8}' >/dev/null
wait_for 10 settled || fail "the applier did not settle"
expect_eq "$(cmds "$DEV" DeclarativeManagement)" "$n1" "an unchanged merge sends no new sync"

# ---- B leaves -> 6, a new ServerToken ------------------------------------------------------------------
expect_eq "$(status "$(api DELETE "/v1/enrollments/$EB" "$KB")")" 200 "B leaves"
wait_for 10 settled || fail "the applier did not settle"
expect_eq "$(cmds "$DEV" DeclarativeManagement)" $((n1 + 1)) "the device is told to sync again"
decl=$(ddm declaration/configuration/lmdm.rules.passcode)
expect_eq "$(jq -r .Payload.MinimumLength <<<"$decl")" 6 "relaxed to 6 when the stricter tenant is gone"
expect_eq "$(jq -r '.Payload.RequireComplexPasscode // "absent"' <<<"$decl")" absent "B's complexity rule went with it"
st2=$(jq -r .ServerToken <<<"$decl")
[ "$st2" != "$st1" ] && pass "a new ServerToken" || fail "the ServerToken did not change"
expect_eq "$(ddm tokens | jq -r .SyncTokens.DeclarationsToken)" "$st2" "and a new DeclarationsToken"

# ---- all leave -> the empty set ----------------------------------------------------------------------------
api DELETE "/v1/enrollments/$EA" "$KA" >/dev/null
wait_for 10 settled || fail "the applier did not settle"
expect_eq "$(cmds "$DEV" DeclarativeManagement)" $((n1 + 2)) "a last sync"
expect_eq "$(ddm tokens | jq -r .SyncTokens.DeclarationsToken)" lmdm-declarations-0 "the empty set again"
expect_eq "$(ddm declaration-items | jq -c '.Declarations | [.Activations, .Configurations]')" "[[],[]]" "no declarations"
expect_contains "$(ddm_status declaration/configuration/lmdm.rules.passcode)" 404 "the passcode declaration is gone"
expect_eq "$(psqlq "SELECT request_type FROM commands c JOIN channels ch ON ch.id = c.channel_id WHERE ch.device_id = $DEV
                     AND c.tenant_id = 0 AND c.request_type IN ('InstallProfile', 'RemoveProfile') ORDER BY c.id DESC LIMIT 1")" \
  RemoveProfile "the profile with the other rules is removed"

# ---- an older iOS keeps the passcode in the profile -------------------------------------------------------
"$SIM" enroll --url "$TLS_URL" --cacert "$CA" --dir "$T/old" --user "nurse@stmarys.example" >"$T/old.json"
jq '.os_version = "16.1"' "$T/old/device.json" >"$T/old/d.json" && mv "$T/old/d.json" "$T/old/device.json"
"$SIM" checkin --dir "$T/old" --cacert "$CA" --message Authenticate >/dev/null
"$SIM" checkin --dir "$T/old" --cacert "$CA" --message TokenUpdate >/dev/null
curl -s -o /dev/null --cacert "$CA" -c "$T/jar2" "$(jq -r .owner_url "$T/old.json")"
OLD=$(dev_id "$T/old")
expect_eq "$(psqlq "SELECT info ->> 'OSVersion' FROM devices WHERE id = $OLD")" 16.1 "the older device reported 16.1"
page_accept() { # accept tenant KEY's invitation in cookie jar $1
  local url page
  url=$(body "$(api POST /v1/invitations "$2" -H 'Content-Type: application/json' -d '{}')" | jq -r .url)
  page=$(curl -s --cacert "$CA" -b "$1" "$url")
  curl -s -o /dev/null -w '%{http_code}' --cacert "$CA" -b "$1" -H "Origin: $TLS_URL" \
    --data-urlencode action=accept --data-urlencode "csrf=$(csrf_of "$page")" "$url"
}
expect_eq "$(page_accept "$T/jar2" "$KB")" 200 "the older device accepts General Hospital again"
wait_for 10 settled || fail "the applier did not settle"
expect_contains "$(profile_of "$OLD" | tr -d '\n\t ')" "<key>minLength</key><integer>8</integer>" "its passcode is in the broker profile"
expect_eq "$(cmds "$OLD" DeclarativeManagement)" 0 "and no declaration"
expect_eq "$("$SIM" checkin --dir "$T/old" --cacert "$CA" --message DeclarativeManagement --endpoint tokens |
  tail -n +2 | jq -r .SyncTokens.DeclarationsToken)" lmdm-declarations-0 "its declaration set stays empty"
[ "$(psqlq "SELECT count(*) FROM ledger WHERE event = 'rules.applied' AND request_type = 'DeclarativeManagement'")" -ge 2 ] &&
  pass "the ledger records each declaration applied" || fail "no ledger entry for the declarations"

e2e_finish
