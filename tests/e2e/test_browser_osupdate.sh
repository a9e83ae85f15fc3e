#!/usr/bin/env bash
# The owner's OS-update controls in a real browser: Debian's headless Chromium
# driven by playwright-core (tests/browser/osupdate_pages.js), with a fixed
# clock (osupdate_clock_file: 1 September 2026, 12:00 UTC) and osupdate_timezone
# Europe/Berlin. A feed with iOS 18.7 (security, released that day); rings it
# (0 days) and broad (7, the default); one simulated iPhone (device
# enrollment) reporting iOS 18.1 in a DeclarativeManagement status report; one
# tenant, named with markup, requiring every security release within 14 days
# with at most one deferral. In the browser the owner sees the pending update
# and its deadline, picks ring it, defers once, is refused a second later time,
# moves the install earlier and switches to New York time (the steps are in
# osupdate_pages.js). Afterwards the stored plan is checked here.
# Screenshots of every page: $LMDM_TEST_OUT/browser-osupdate/*.png.
#
# Needs /usr/bin/chromium, node, npm and playwright-core, set up by
# tests/e2e/browser_lib.sh as for test_browser.sh. Missing any of these is a
# failure, not a skip.
. "$(dirname "$0")/lib.sh"

SIM="$LMDM_BUILD/tests/sim/lmdm-sim"
[ -x "$SIM" ] || { echo "FAIL: missing $SIM"; exit 1; }
. "$(dirname "$0")/browser_lib.sh"
SHOTS="${LMDM_TEST_OUT:?run through ctest}/browser-osupdate"
started=$SECONDS
browser_setup

CLOCK="$T/clock"
echo "2026-09-01T12:00:00Z" >"$CLOCK"
e2e_start_full "osupdate_clock_file = \"$CLOCK\"" "osupdate_timezone = \"Europe/Berlin\""
lmdm() { "$LMDM_BIN" "$@" --config "$CONF"; }
settled() { [ "$(psqlq "SELECT count(*) FROM osupdate_queue")" = 0 ]; }
settle() { wait_for 10 settled || fail "the planner did not settle"; }
plan() { psqlq "SELECT plan ->> '$1' FROM device_osupdate WHERE device_id = $DEV"; }

# ---- releases and rings --------------------------------------------------------------------------
echo '{"releases": [{"platform": "iOS", "version": "18.7", "build": "22H20", "released": "2026-09-01",
                   "security": true}]}' >"$T/feed.json"
expect_contains "$(lmdm releases import "$T/feed.json")" "1 releases, 1 new" "iOS 18.7 imported"
lmdm ring add it --delay-days 0 >/dev/null
lmdm ring add broad --delay-days 7 --default >/dev/null

# ---- one iPhone, its owner, one tenant -----------------------------------------------------------
out=$("$SIM" enroll --url "$TLS_URL" --cacert "$CA" --dir "$T/dev")
"$SIM" checkin --dir "$T/dev" --cacert "$CA" --message Authenticate >/dev/null
"$SIM" checkin --dir "$T/dev" --cacert "$CA" --message TokenUpdate >/dev/null
OWNER_URL=$(jq -r '.owner_url // empty' <<<"$out")
[ -n "$OWNER_URL" ] || { fail "no owner link in the enrollment profile"; e2e_finish; }
curl -s -o /dev/null --cacert "$CA" -c "$T/jar" "$OWNER_URL"
DEV=$(psqlq "SELECT id FROM devices WHERE device_key = '$(jq -r .udid "$T/dev/device.json")'")

TENANT="St. Mary's <img src=x onerror=alert(1)> Clinic"
TENANT_HTML="St. Mary&#39;s &lt;img src=x onerror=alert(1)&gt; Clinic"
read -r _ KEY _ <<<"$(tenant "$TENANT")"
r=$(api PUT /v1/rules/osupdate "$KEY" -H 'Content-Type: application/json' \
  -d '{"latest_security_within_days": 14, "max_deferrals": 1}')
expect_eq "$(status "$r")" 200 "the tenant requires security releases within 14 days, one deferral"

# The iPhone reports iOS 18.1 in a DDM status report (as test_osupdate.sh does).
jq '.os_version = "18.1"' "$T/dev/device.json" >"$T/dev/x" && mv "$T/dev/x" "$T/dev/device.json"
r=$("$SIM" checkin --dir "$T/dev" --cacert "$CA" --message DeclarativeManagement --endpoint status | head -n1)
expect_eq "$r" "HTTP/2 200" "the iPhone reports iOS 18.1"
planned() { settled && [ "$(plan current_version)" = 18.1 ]; }
wait_for 10 planned || fail "no plan for iOS 18.1"
expect_eq "$(plan state)/$(plan target)/$(plan ring)" "waiting/18.7/broad" "the plan: 18.7, ring broad, waiting"
expect_eq "$(plan deadline_local)" 2026-09-15T02:00:00 "deadline: 14 days after the release, 02:00 Berlin"

# ---- the owner in the browser --------------------------------------------------------------------
rm -rf "$SHOTS"
mkdir -p "$SHOTS"
t0=$SECONDS
if NODE_PATH="$NODE_DIR/node_modules" LMDM_CHROMIUM="$CHROMIUM" LMDM_SHOTS="$SHOTS" LMDM_OWNER_URL="$OWNER_URL" \
  LMDM_PUBLIC_URL="$TLS_URL" LMDM_TENANT="$TENANT" LMDM_TENANT_HTML="$TENANT_HTML" \
  timeout 60 node "$BROWSER_SRC/osupdate_pages.js"; then
  pass "browser: the owner's OS-update choices"
else
  fail "browser: the owner's OS-update choices"
fi
echo "browser took $((SECONDS - t0)) s"

# ---- what the browser's choices stored -----------------------------------------------------------
settle
expect_eq "$(plan ring)/$(plan timezone)" "it/America/New_York" "stored: ring it, New York time"
expect_eq "$(plan install_local)/$(plan install_at)" "2026-09-03T14:00:00/2026-09-03T18:00:00Z" \
  "stored: the owner's install time, 20:00 Berlin = 14:00 New York = 18:00 UTC"
expect_eq "$(plan deadline_local)/$(plan deadline)" "2026-09-15T02:00:00/2026-09-15T06:00:00Z" \
  "stored: the deadline, 02:00 New York time"
expect_eq "$(plan owner_chose)/$(plan deferrals_left)" "true/0" "stored: the owner's choice, no deferral left"
expect_eq "$(psqlq "SELECT owner_target || '/' || deferrals_used FROM device_osupdate WHERE device_id = $DEV")" \
  "18.7/1" "one deferral used, for 18.7 (the refused later time used none)"
for s in 1-owner-initial 2-owner-ring-it 3-owner-deferred 4-refused-later 4-refused-empty 5-owner-earlier \
  6-owner-new-york; do
  [ -s "$SHOTS/$s.png" ] && pass "screenshot $s.png" || fail "no screenshot $SHOTS/$s.png"
done
if grep -qF "${OWNER_URL#*token=}" "$LOG"; then fail "the owner token is in the broker log"
else pass "no owner token in the log"; fi
echo "whole test: $((SECONDS - started)) s"
e2e_finish
