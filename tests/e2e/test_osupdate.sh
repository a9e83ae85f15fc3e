#!/usr/bin/env bash
# OS updates (issue 7), end to end with the simulator and a fixed clock
# (osupdate_clock_file). Rings it (0 days) and broad (7, the default); a feed
# with iOS 18.7 and macOS 13.7.8 released 2026-09-01; two tenants: St.
# Mary's wants every security release within 14 days (at most 2 deferrals,
# no later than broad), General wants 18.7 by 2026-09-10. Four devices:
#   A  iPhone, device enrollment, iOS 18.1, owner picks ring it -> the
#      enforcement declaration at once, 18.7 by 10 September 2026, 02:00 Berlin;
#   B  iPhone, device enrollment, ring broad -> nothing until the clock
#      reaches 2026-09-08, then the declaration;
#   C  iPhone, User Enrollment -> reminders only: tenants read not_enforceable;
#   D  Mac on 13.6, supervised (the operator says so) -> ScheduleOSUpdate.
# The owner of A schedules and defers within the rules; A reports 18.7 ->
# the tenants see it done and the declaration is withdrawn. A tenant's
# ScheduleOSUpdate becomes its requirement, never a command.
. "$(dirname "$0")/lib.sh"

SIM="$LMDM_BUILD/tests/sim/lmdm-sim"
[ -x "$SIM" ] || { echo "missing $SIM"; exit 1; }
CLOCK="$T/clock"
echo "2026-09-01T12:00:00Z" >"$CLOCK"
e2e_start_full "osupdate_clock_file = \"$CLOCK\"" "osupdate_timezone = \"Europe/Berlin\""
lmdm() { "$LMDM_BIN" "$@" --config "$CONF"; }

settled() { [ "$(psqlq "SELECT count(*) FROM osupdate_queue")" = 0 ]; }
settle() { sleep 0.3; wait_for 10 settled || fail "the planner did not settle"; }
dev_id() { psqlq "SELECT id FROM devices WHERE device_key = '$(jq -r 'if .user_enrollment then .enrollment_id else .udid end' "$1/device.json")'"; }
plan() { psqlq "SELECT plan ->> '$2' FROM device_osupdate WHERE device_id = $1"; }
cmds() { # cmds DEVICE_ID TYPE: broker commands of that type queued for it
  psqlq "SELECT count(*) FROM commands c JOIN channels ch ON ch.id = c.channel_id
          WHERE ch.device_id = $1 AND c.tenant_id = 0 AND c.request_type = '$2'"
}
ddm() { "$SIM" checkin --dir "$1" --cacert "$CA" --message DeclarativeManagement --endpoint "$2" | tail -n +2; }
report() { # report DIR VERSION: the device's DDM status report, with VERSION
  jq --arg v "$2" '.os_version = $v' "$1/device.json" >"$1/device.json.new" && mv "$1/device.json.new" "$1/device.json"
  "$SIM" checkin --dir "$1" --cacert "$CA" --message DeclarativeManagement --endpoint status | head -n1
}
view() { body "$(api GET "/v1/enrollments/$2/osupdate" "$1")"; }
set_clock() { echo "$1" >"$CLOCK"; sleep 1.3; settle; }

# ---- releases and rings ---------------------------------------------------------------------------------------------
cat >"$T/feed.json" <<'EOF'
{"releases": [
  {"platform": "iOS", "version": "18.7", "build": "22H20", "released": "2026-09-01", "security": true},
  {"platform": "iOS", "version": "18.6.3", "build": "22G120", "released": "2026-08-20", "security": false},
  {"platform": "macOS", "version": "13.7.8", "build": "22H730", "released": "2026-09-01", "security": true}
]}
EOF
out=$(lmdm releases import "$T/feed.json") || fail "import: $out"
expect_contains "$out" "3 releases, 3 new" "the feed is imported"
echo '{"releases": [{"platform": "iOS", "version": "19.x", "released": "2026-09-01", "security": true}]}' >"$T/bad.json"
if out=$(lmdm releases import "$T/bad.json" 2>&1); then fail "a bad feed was imported"; fi
expect_contains "$out" "19.x" "a bad feed is refused naming the entry"
expect_eq "$(psqlq "SELECT count(*) FROM os_releases")" 3 "a refused feed changes nothing"
out=$(lmdm releases import "$LMDM_VECTORS/macadmins_sofa/v2/ios_data_feed.json" --source sofa-test) ||
  fail "SOFA import: $out"
expect_contains "$out" "(sofa-v2)" "the real SOFA feed is taken as it is"
expect_eq "$(psqlq "SELECT build FROM os_releases WHERE platform = 'iOS' AND version = '26.6.1'")" 23G83 \
  "SOFA's iOS 26.6.1 is known with its build"
expect_eq "$(psqlq "SELECT released FROM os_releases WHERE platform = 'iOS' AND version = '18.7'")" 2025-09-15 \
  "a release the feed has too takes the feed's details"
# Keep the scenario's releases only (SOFA's are dated August 2026: before the clock, newer than 18.7 in
# places); the import history keeps both.
psqlq "DELETE FROM os_releases WHERE NOT (version IN ('18.7', '18.6.3', '13.7.8'))" >/dev/null
lmdm releases import "$T/feed.json" >/dev/null
echo '{"releases": [{"platform": "iOS", "version": "18.7.0", "build": "22H20", "released": "2026-09-01",
  "security": true}]}' >"$T/same.json"
expect_contains "$(lmdm releases import "$T/same.json")" "1 releases, 0 new" "18.7.0 is the release 18.7"
expect_eq "$(psqlq "SELECT count(*) FROM os_releases WHERE version LIKE '18.7%'")" 1 "... stored once"
lmdm ring add it --delay-days 0 >/dev/null
lmdm ring add broad --delay-days 7 --default >/dev/null
expect_eq "$(lmdm ring list | awk '$1 == "broad" {print $2, $3}')" "7 yes" "rings: broad is the default"
if lmdm ring add Bad! --delay-days 3 >/dev/null 2>&1; then fail "a bad ring name was taken"; fi

# ---- devices, tenants -----------------------------------------------------------------------------------------------
enroll() { # enroll NAME [sim enroll args...]: enrolled, owner session in $T/NAME.jar
  local d="$T/$1" out; shift
  out=$("$SIM" enroll --url "$TLS_URL" --cacert "$CA" --dir "$d" "$@")
  "$SIM" checkin --dir "$d" --cacert "$CA" --message Authenticate >/dev/null
  "$SIM" checkin --dir "$d" --cacert "$CA" --message TokenUpdate >/dev/null
  curl -s -o /dev/null --cacert "$CA" -c "$d.jar" "$(jq -r .owner_url <<<"$out")"
}
enroll A
enroll B
enroll C --user "doctor@stmarys.example"
enroll D --platform macos --supervised
jq '.os_version = "13.6" | .build_version = "22G120"' "$T/D/device.json" >"$T/D/x" && mv "$T/D/x" "$T/D/device.json"
"$SIM" checkin --dir "$T/D" --cacert "$CA" --message Authenticate >/dev/null
"$SIM" checkin --dir "$T/D" --cacert "$CA" --message TokenUpdate >/dev/null
A=$(dev_id "$T/A"); B=$(dev_id "$T/B"); C=$(dev_id "$T/C"); D=$(dev_id "$T/D")
lmdm osupdate supervised "$D" yes >/dev/null

accept() { # accept KEY NAME -> the enrollment id of device NAME for the tenant of KEY
  local before url page code
  before=$(body "$(api GET /v1/enrollments "$1")" | jq -r '[.enrollments[].id] | join(" ")')
  url=$(body "$(post_json "$1" /v1/invitations '{}')" | jq -r .url)
  page=$(curl -s --cacert "$CA" -b "$T/$2.jar" "$url")
  code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CA" -b "$T/$2.jar" -H "Origin: $TLS_URL" \
    --data-urlencode action=accept --data-urlencode "csrf=$(csrf_of "$page")" "$url")
  [ "$code" = 200 ] || fail "accepting on $2: $code"
  body "$(api GET /v1/enrollments "$1")" | jq -r --arg b "$before" \
    '[.enrollments[].id] - ($b | split(" ")) | .[0]'
}
TSM=$(lmdm tenant add "St. Mary's"); KSM=$(lmdm key issue --tenant "$TSM" --role admin)
TGH=$(lmdm tenant add "General Hospital"); KGH=$(lmdm key issue --tenant "$TGH" --role admin)
for n in A B C D; do
  eval "SM_$n=$(accept "$KSM" $n)"
  eval "GH_$n=$(accept "$KGH" $n)"
done

# Requirements; bad ones are refused with the key named.
r=$(api PUT /v1/rules/osupdate "$KSM" -H 'Content-Type: application/json' -d '{"latest_security_within_days": 500}')
expect_eq "$(status "$r")" 400 "an out-of-range requirement is refused"
expect_contains "$(body "$r")" "latest_security_within_days" "... naming the key"
r=$(api PUT /v1/rules/osupdate "$KSM" -H 'Content-Type: application/json' -d '{"latest_ring": "never"}')
expect_eq "$(status "$r")" 400 "an unknown ring is refused"
r=$(api PUT /v1/rules/osupdate "$KSM" -H 'Content-Type: application/json' -d '{"min_version": "18.7"}')
expect_contains "$(body "$r")" "go together" "min_version needs its date"
r=$(api PUT /v1/rules/osupdate "$KSM" -H 'Content-Type: application/json' \
  -d '{"latest_security_within_days": 14, "max_deferrals": 2, "latest_ring": "broad"}')
expect_eq "$(status "$r")" 200 "St. Mary's requirement is stored"
r=$(api PUT /v1/rules/osupdate "$KGH" -H 'Content-Type: application/json' \
  -d '{"min_version": "18.7", "min_version_by": "2026-09-10"}')
expect_eq "$(status "$r")" 200 "General's requirement is stored"
expect_eq "$(body "$(api GET /v1/rules/osupdate "$KGH")" | jq -r .rule.min_version_by)" 2026-09-10 "it reads back"
expect_eq "$(body "$(api GET '/v1/releases?platform=iOS' "$KGH")" | jq -c '[.releases[].version]')" '["18.7","18.6.3"]' \
  "tenants read the releases, newest first"
expect_eq "$(body "$(api GET /v1/rings "$KGH")" | jq -c '[.[].name]')" '["it","broad"]' "and the rings"
expect_eq "$(status "$(api GET '/v1/releases?platform=tvOS' "$KGH")")" 400 "an unknown platform is refused"

# Device-enrolled iPhones report their version in a DDM status report (no device-information right).
settle
expect_eq "$(jq -r .state <<<"$(view "$KGH" "$GH_B")")" unknown "B's version is not known before it reports"
expect_eq "$(report "$T/A" 18.1)" "HTTP/2 200" "A reports iOS 18.1"
report "$T/B" 18.1 >/dev/null
expect_eq "$(psqlq "SELECT info ->> 'OSVersion' FROM devices WHERE id = $A")" 18.1 "the broker keeps the version"
r=$("$SIM" checkin --dir "$T/A" --cacert "$CA" --message DeclarativeManagement --endpoint status \
  --data <(echo '{"StatusItems": 7}') | head -n1) || true
expect_eq "$r" "HTTP/2 400" "a malformed status report is refused"
expect_eq "$(psqlq "SELECT info ->> 'OSVersion' FROM devices WHERE id = $A")" 18.1 "... and changes nothing"

# The owner of A picks ring it; of D too.
ring() { # ring NAME RING
  local page
  page=$(curl -s --cacert "$CA" -b "$T/$1.jar" "$TLS_URL/owner")
  curl -s -o /dev/null -w '%{http_code}' --cacert "$CA" -b "$T/$1.jar" -H "Origin: $TLS_URL" \
    --data-urlencode action=ring --data-urlencode "ring=$2" --data-urlencode "csrf=$(csrf_of "$page")" \
    "$TLS_URL/owner/osupdate"
}
settle
expect_eq "$(ring A it)" 303 "A's owner picks ring it"
settle

# ---- A: ring it -> the declaration at once ---------------------------------------------------------------------------
expect_eq "$(plan "$A" state)" scheduled "A: the update is scheduled"
expect_eq "$(plan "$A" target)" 18.7 "A: target 18.7"
expect_eq "$(plan "$A" deadline_local)" 2026-09-10T02:00:00 "A: the earliest deadline (General's), local time"
expect_eq "$(plan "$A" deadline)" 2026-09-10T00:00:00Z "A: ... which is 00:00 UTC in summer time"
expect_eq "$(plan "$A" install_local)" 2026-09-01T02:00:00 "A: installs at the first night of its ring"
expect_eq "$(plan "$A" mechanism)" declaration "A: iOS 18 takes the enforcement declaration"
expect_eq "$(psqlq "SELECT plan -> 'deadline_from' ->> 0 FROM device_osupdate WHERE device_id = $A")" \
  "General Hospital" "A: the deadline's provenance"
[ "$(cmds "$A" DeclarativeManagement)" -ge 1 ] && pass "A is told to sync" || fail "no DeclarativeManagement for A"
"$SIM" run --dir "$T/A" --cacert "$CA" >"$T/A.run"
expect_contains "$(jq -r 'select(.request_type == "DeclarativeManagement") | .sent_status' "$T/A.run")" \
  Acknowledged "the simulated iPhone receives and acknowledges the DeclarativeManagement command"
items=$(ddm "$T/A" declaration-items)
expect_contains "$(jq -c '[.Declarations.Configurations[].Identifier]' <<<"$items")" lmdm.broker.osupdate \
  "A's declaration set holds the enforcement"
decl=$(ddm "$T/A" declaration/configuration/lmdm.broker.osupdate)
expect_eq "$(jq -r .Type <<<"$decl")" com.apple.configuration.softwareupdate.enforcement.specific "its type"
expect_eq "$(jq -r '.Payload.TargetOSVersion + " " + .Payload.TargetLocalDateTime' <<<"$decl")" \
  "18.7 2026-09-01T02:00:00" "TargetOSVersion and TargetLocalDateTime"
act=$(ddm "$T/A" declaration/activation/lmdm.rules.activation)
expect_contains "$(jq -c .Payload.StandardConfigurations <<<"$act")" lmdm.broker.status \
  "the activation also subscribes to the version status"
v=$(view "$KSM" "$SM_A")
expect_eq "$(jq -r '.state + " " + .required_version + " " + .required_by' <<<"$v")" "scheduled 18.7 2026-09-15" \
  "St. Mary's sees its own requirement: 18.7 by 2026-09-15"
expect_eq "$(jq -r .deadline <<<"$v")" 2026-09-10T00:00:00Z "... and the device's deadline"
case "$v" in *General*) fail "St. Mary's sees another tenant: $v" ;; esac

# ---- B: ring broad -> waiting; C: reminders; D: ScheduleOSUpdate ------------------------------------------------------
expect_eq "$(plan "$B" state)" waiting "B waits for its ring"
expect_eq "$(plan "$B" start_local)" 2026-09-08T00:00:00 "B's ring starts 7 days after the release"
expect_eq "$(ddm "$T/B" tokens | jq -r .SyncTokens.DeclarationsToken)" lmdm-declarations-0 "B has no declaration yet"
expect_eq "$(plan "$C" mechanism)" reminder "C (User Enrollment): reminders only"
expect_eq "$(jq -r '.state + " " + (.enforceable | tostring)' <<<"$(view "$KGH" "$GH_C")")" \
  "not_enforceable false" "tenants read not_enforceable, not compliant"
expect_eq "$(cmds "$C" DeclarativeManagement)$(cmds "$C" ScheduleOSUpdate)" 00 "nothing is sent to C"
page=$(curl -s --cacert "$CA" -b "$T/C.jar" "$TLS_URL/owner")
expect_contains "$page" "please install it yourself" "C's owner is reminded"
expect_eq "$(plan "$D" mechanism)" command "D (macOS 13, supervised): ScheduleOSUpdate"
expect_eq "$(plan "$D" target)" 13.7.8 "D: the security release of its major version"
expect_eq "$(plan "$D" state)" waiting "D waits for ring broad"
expect_eq "$(cmds "$D" ScheduleOSUpdate)" 0 "nothing is sent before the ring starts"
expect_contains "$(jq -r .state <<<"$(view "$KGH" "$GH_D")")" pending_release "General's 18.7 has no macOS release"
last_schedule() {
  psqlq "SELECT payload FROM commands c JOIN channels ch ON ch.id = c.channel_id WHERE ch.device_id = $D
          AND c.request_type = 'ScheduleOSUpdate' ORDER BY c.id DESC LIMIT 1" | tr -d ' \t\n'
}

# ---- the owner of A schedules and defers -----------------------------------------------------------------------------
osu_post() { # osu_post NAME ACTION [field=value]
  local page n=$1 a=$2; shift 2
  page=$(curl -s --cacert "$CA" -b "$T/$n.jar" "$TLS_URL/owner")
  curl -s -o "$T/post.html" -w '%{http_code}' --cacert "$CA" -b "$T/$n.jar" -H "Origin: $TLS_URL" \
    --data-urlencode "action=$a" --data-urlencode "csrf=$(csrf_of "$page")" \
    ${1:+--data-urlencode "$1"} "$TLS_URL/owner/osupdate"
}
page=$(curl -s --cacert "$CA" -b "$T/A.jar" "$TLS_URL/owner")
expect_contains "$page" "General Hospital requires 18.7 by 10 September 2026" "the owner sees why"
expect_contains "$page" "St. Mary&#39;s requires 18.7 by 15 September 2026" "... for each organization"
expect_eq "$(osu_post A schedule when=2026-09-12T10:00)" 409 "a time past the deadline is refused"
expect_eq "$(osu_post A schedule when=2026-09-05T21:00)" 303 "the owner schedules 5 September 2026, 21:00"
settle
expect_eq "$(plan "$A" install_local)" 2026-09-05T21:00:00 "A's plan takes the owner's time"
expect_eq "$(plan "$A" deferrals_left)" 1 "later than planned: one deferral used"
expect_eq "$(jq -r .Payload.TargetLocalDateTime <<<"$(ddm "$T/A" declaration/configuration/lmdm.broker.osupdate)")" \
  2026-09-05T21:00:00 "the declaration follows"
expect_eq "$(osu_post A defer)" 303 "the owner defers one day"
settle
expect_eq "$(plan "$A" install_local)" 2026-09-06T21:00:00 "deferred to 6 September 2026, 21:00"
expect_eq "$(osu_post A defer)" 409 "no deferral left"
expect_contains "$(cat "$T/post.html")" "Nothing was changed" "... and the owner is told"
expect_eq "$(osu_post A schedule when=2026-09-03T20:00)" 303 "earlier is always allowed"
settle
expect_eq "$(plan "$A" install_local)" 2026-09-03T20:00:00 "moved earlier"
expect_eq "$(psqlq "SELECT plan ->> 'ring' FROM device_osupdate WHERE device_id = $A")" it "ring kept"

# D's owner picks an evening after the ring starts (a deferral: later than the first night).
expect_eq "$(osu_post D schedule when=2026-09-09T21:00)" 303 "D's owner schedules 9 September 2026, 21:00"
settle
expect_eq "$(plan "$D" install_local)" 2026-09-09T21:00:00 "D installs then"

# Bad choices are refused and change nothing.
expect_eq "$(ring A nosuch)" 400 "an unknown ring is refused"
expect_eq "$(osu_post A timezone timezone=Mars/Olympus)" 400 "an unknown time zone is refused"
expect_contains "$(cat "$T/post.html")" "Nothing was changed" "... saying so"
expect_eq "$(osu_post A sleep)" 400 "an unknown action is refused"
expect_eq "$(psqlq "SELECT coalesce(timezone, '-') || ' ' || ring FROM device_osupdate WHERE device_id = $A")" "- it" \
  "... and nothing changed"

# A ring later than a tenant allows is refused.
lmdm ring add late --delay-days 14 >/dev/null
settle
expect_eq "$(ring A late)" 409 "ring late is later than St. Mary's allows"

# ---- the clock moves: B's ring starts --------------------------------------------------------------------------------
set_clock "2026-09-08T12:00:00Z"
expect_eq "$(plan "$B" state)" scheduled "B's ring has started"
expect_eq "$(jq -r .Payload.TargetLocalDateTime <<<"$(ddm "$T/B" declaration/configuration/lmdm.broker.osupdate)")" \
  2026-09-08T02:00:00 "B gets its declaration"
expect_eq "$(plan "$D" state)" scheduled "D's ring has started"
expect_contains "$(last_schedule)" "<key>InstallAction</key><string>InstallLater</string>" \
  "D: ScheduleOSUpdate InstallLater until the install time"
expect_contains "$(last_schedule)" "<key>MaxUserDeferrals</key><integer>1</integer>" "D: with the deferral left"
expect_contains "$(last_schedule)" "<key>ProductVersion</key><string>13.7.8</string>" "D: for 13.7.8"
"$SIM" run --dir "$T/D" --cacert "$CA" >"$T/D.run"
expect_contains "$(jq -r 'select(.request_type == "ScheduleOSUpdate") | .sent_status' "$T/D.run")" Acknowledged \
  "the simulated Mac acknowledges ScheduleOSUpdate"
set_clock "2026-09-09T19:00:00Z"
expect_contains "$(last_schedule)" "<string>InstallASAP</string>" "D: InstallASAP at the install time"

# ---- A installs 18.7 -> done everywhere ------------------------------------------------------------------------------
report "$T/A" 18.7 >/dev/null
settle
expect_eq "$(plan "$A" state)" up_to_date "A is up to date"
expect_eq "$(jq -r '.state + " " + .current_version' <<<"$(view "$KSM" "$SM_A")")" "up_to_date 18.7" \
  "St. Mary's sees it done"
expect_eq "$(jq -r .state <<<"$(view "$KGH" "$GH_A")")" up_to_date "General sees it done"
expect_eq "$(ddm "$T/A" declaration-items | jq -c '[.Declarations.Configurations[].Identifier]')" "[]" \
  "the enforcement is withdrawn"
n=$(psqlq "SELECT count(*) FROM outbox WHERE event = 'osupdate.changed' AND enrollment_id =
            (SELECT id FROM enrollments WHERE pseudonym = '$SM_A') AND data -> 'osupdate' ->> 'state' = 'up_to_date'")
expect_eq "$n" 1 "an osupdate.changed event tells St. Mary's"
[ "$(psqlq "SELECT count(*) FROM ledger WHERE event = 'osupdate.enforced'")" -ge 4 ] &&
  pass "the ledger records each enforcement" || fail "osupdate.enforced missing from the ledger"

# ---- past the deadline ------------------------------------------------------------------------------------------------
set_clock "2026-09-11T00:00:00Z"
expect_eq "$(plan "$B" state)" overdue "B is overdue"
expect_eq "$(jq -r .state <<<"$(view "$KGH" "$GH_B")")" overdue "General sees B overdue"

# ---- a tenant's ScheduleOSUpdate becomes its requirement -------------------------------------------------------------
r=$(post_json "$KGH" "/v1/enrollments/$GH_B/commands" \
  '{"RequestType": "ScheduleOSUpdate", "Updates": [{"ProductVersion": "26.0", "InstallAction": "InstallASAP"}]}')
expect_eq "$(status "$r")" 202 "ScheduleOSUpdate is accepted"
expect_eq "$(body "$r" | jq -r .state)" accepted_for_merge "... for the merged plan, not forwarded"
expect_eq "$(psqlq "SELECT rule ->> 'min_version' FROM tenant_osupdate WHERE enrollment_id =
                     (SELECT id FROM enrollments WHERE pseudonym = '$GH_B')")" 26.0 "it is B's requirement now"
settle
expect_eq "$(jq -r .state <<<"$(view "$KGH" "$GH_B")")" pending_release "26.0 is not released: pending_release"
expect_eq "$(psqlq "SELECT count(*) FROM commands WHERE tenant_id = $TGH AND request_type = 'ScheduleOSUpdate'")" 0 \
  "no tenant ScheduleOSUpdate reaches a device"
expect_eq "$(status "$(api GET "/v1/enrollments/$SM_B/osupdate" "$KGH")")" 404 "another tenant's enrollment: 404"
r=$(post_json "$KGH" "/v1/enrollments/$GH_A/commands" \
  '{"RequestType": "ScheduleOSUpdate", "Updates": [{"ProductKey": "iOSUpdate22H20", "InstallAction": "Default"}]}')
expect_eq "$(status "$r")" 400 "a ScheduleOSUpdate without a version is refused"
expect_contains "$(body "$r")" "ProductVersion" "... saying what it needs"
expect_eq "$(psqlq "SELECT count(*) FROM tenant_osupdate WHERE enrollment_id =
                     (SELECT id FROM enrollments WHERE pseudonym = '$GH_A')")" 0 "... and stores nothing"

e2e_finish
