#!/usr/bin/env bash
# The owner pages in a real browser: Debian's headless Chromium driven by
# playwright-core (tests/browser/owner_pages.js). One simulated device, two
# tenants (one named with markup in it); one invitation accepted through the
# browser (consent page, Accept), the other with curl; each tenant installs an
# app and asks for a passcode rule, one sends EraseDevice (refused); the device
# runs its commands. Then the browser opens the owner link and checks the owner
# page (both tenants, their apps, the refused EraseDevice in plain words, which
# rule is in force, the tenant name with markup shown as text and no dialog),
# removes one tenant through the confirmation page, and reads /policy.
# Screenshots of every page: $LMDM_TEST_OUT/browser/*.png.
#
# Needs /usr/bin/chromium, node and npm (deploy/install-deps.sh installs them)
# and, the first time, the npm registry for `npm ci` (playwright-core, pinned
# in tests/browser/package-lock.json; installed under the build directory).
# Missing any of these is a failure, not a skip.
. "$(dirname "$0")/lib.sh"

SIM="$LMDM_BUILD/tests/sim/lmdm-sim"
[ -x "$SIM" ] || { echo "FAIL: missing $SIM"; exit 1; }
. "$(dirname "$0")/browser_lib.sh"
SHOTS="${LMDM_TEST_OUT:?run through ctest}/browser"
started=$SECONDS
browser_setup

e2e_start_full "mdm_max_body = 256k"

invitation() { body "$(post_json "$1" /v1/invitations '{"note":"Welcome <b>aboard</b>"}')" | jq -r .url; }
browser() { # browser PHASE: run the JS test with the environment below
  NODE_PATH="$NODE_DIR/node_modules" LMDM_CHROMIUM="$CHROMIUM" LMDM_SHOTS="$SHOTS" \
    timeout 60 node "$BROWSER_SRC/owner_pages.js" "$1"
}

# ---- one device and its owner --------------------------------------------------------------------
out=$("$SIM" enroll --url "$TLS_URL" --cacert "$CA" --dir "$T/dev")
"$SIM" checkin --dir "$T/dev" --cacert "$CA" --message Authenticate >/dev/null
"$SIM" checkin --dir "$T/dev" --cacert "$CA" --message TokenUpdate >/dev/null
OWNER_URL=$(jq -r '.owner_url // empty' <<<"$out")
[ -n "$OWNER_URL" ] || { fail "no owner link in the enrollment profile"; e2e_finish; }
curl -s -o /dev/null --cacert "$CA" -c "$T/jar" "$OWNER_URL"

EVIL='Evil <script>alert(1)</script> Clinic'
GOOD="St. Mary's Hospital"
TE=$("$LMDM_BIN" tenant add "$EVIL" --config "$CONF")
TG=$("$LMDM_BIN" tenant add "$GOOD" --config "$CONF")
KE=$("$LMDM_BIN" key issue --tenant "$TE" --role admin --config "$CONF")
KG=$("$LMDM_BIN" key issue --tenant "$TG" --role admin --config "$CONF")

# ---- St. Mary's is accepted with curl, the other through the browser -------------------------------
url=$(invitation "$KG")
page=$(curl -s --cacert "$CA" -b "$T/jar" "$url")
expect_eq "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CA" -b "$T/jar" -H "Origin: $TLS_URL" \
  --data-urlencode action=accept --data-urlencode "csrf=$(csrf_of "$page")" "$url")" 200 "$GOOD accepted (curl)"

rm -rf "$SHOTS"
mkdir -p "$SHOTS"
export LMDM_OWNER_URL="$OWNER_URL" LMDM_PUBLIC_URL="$TLS_URL" LMDM_TENANT_EVIL="$EVIL" LMDM_TENANT_GOOD="$GOOD"
export LMDM_INVITE_URL
LMDM_INVITE_URL=$(invitation "$KE")
t0=$SECONDS
if browser accept; then pass "browser: the invitation accepted on the consent page"; else fail "browser (accept)"; fi
echo "browser phase 'accept' took $((SECONDS - t0)) s"
EE=$(body "$(api GET /v1/enrollments "$KE")" | jq -r '.enrollments[0].id // empty')
EG=$(body "$(api GET /v1/enrollments "$KG")" | jq -r '.enrollments[0].id // empty')
[ -n "$EE" ] && pass "the browser's Accept created the enrollment" || { fail "no enrollment for the tenant accepted in the browser"; e2e_finish; }

# ---- what the tenants do -----------------------------------------------------------------------------
install() { printf '{"Command":{"RequestType":"InstallApplication","Identifier":"%s"}}' "$1"; }
expect_eq "$(status "$(api PUT /v1/rules/passcode "$KE" -H 'Content-Type: application/json' -d '{"requirePasscode": true, "minLength": 6}')")" 200 \
  "the clinic asks for 6 characters"
expect_eq "$(status "$(api PUT /v1/rules/passcode "$KG" -H 'Content-Type: application/json' -d '{"requirePasscode": true, "minLength": 8}')")" 200 \
  "St. Mary's asks for 8"
expect_eq "$(status "$(post_json "$KE" "/v1/enrollments/$EE/commands" "$(install org.evil.clinic)")")" 202 "the clinic installs its app"
expect_eq "$(status "$(post_json "$KG" "/v1/enrollments/$EG/commands" "$(install org.stmarys.rounds)")")" 202 "St. Mary's installs its app"
expect_eq "$(status "$(api PUT /v1/rules/domains "$KG" -H 'Content-Type: application/json' -d '{"WebDomains": ["stmarys.example"]}')")" 200 \
  "St. Mary's manages its web domain"
MAIL=$(printf '<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>PayloadType</key><string>Configuration</string><key>PayloadIdentifier</key><string>org.stmarys.mail</string><key>PayloadUUID</key><string>5A3C0C1E-0000-4000-8000-000000000001</string><key>PayloadVersion</key><integer>1</integer><key>PayloadContent</key><array><dict><key>PayloadType</key><string>com.apple.eas.account</string><key>PayloadIdentifier</key><string>org.stmarys.mail.eas</string><key>PayloadUUID</key><string>5A3C0C1E-0000-4000-8000-000000000002</string><key>PayloadVersion</key><integer>1</integer><key>Host</key><string>mail.stmarys.example</string><key>EmailAddress</key><string>dr@stmarys.example</string></dict></array></dict></plist>' | base64 -w0)
expect_eq "$(status "$(post_json "$KG" "/v1/enrollments/$EG/commands" "{\"Command\":{\"RequestType\":\"InstallProfile\",\"Payload\":{\"\$data\":\"$MAIL\"}}}")")" 202 \
  "St. Mary's installs its mail account (a profile)"
r=$(post_json "$KE" "/v1/enrollments/$EE/commands" '{"Command":{"RequestType":"EraseDevice"}}')
expect_eq "$(status "$r"):$(body "$r" | jq -r .reason)" "403:wipe" "the clinic's EraseDevice is refused"
merged() { [ "$(psqlq "SELECT count(*) FROM devices WHERE rules_merged IS NOT NULL AND NOT rules_dirty")" = 1 ]; }
wait_for 10 merged || fail "the device-wide rules were not merged"
run=$("$SIM" run --dir "$T/dev" --cacert "$CA")
expect_eq "$(psqlq "SELECT count(*) FROM commands WHERE tenant_id <> 0 AND state = 'acknowledged'")" 3 \
  "the device ran the tenants' three commands"

# ---- the owner page, removal and /policy in the browser -------------------------------------------------
export LMDM_APP_EVIL=org.evil.clinic LMDM_APP_GOOD=org.stmarys.rounds LMDM_PROFILE_GOOD=org.stmarys.mail
t0=$SECONDS
if browser owner; then pass "browser: owner page, removal and policy page"; else fail "browser (owner)"; fi
echo "browser phase 'owner' took $((SECONDS - t0)) s"
expect_eq "$(psqlq "SELECT state || '/' || coalesce(ended_by, '') FROM enrollments WHERE pseudonym = '$EE'")" \
  "removed/owner" "the enrollment removed in the browser is removed, by the owner"
expect_eq "$(psqlq "SELECT state FROM enrollments WHERE pseudonym = '$EG'")" "active" "the other one is untouched"
for shot in owner consent accepted remove-confirm removed owner-after-removal policy; do
  [ -s "$SHOTS/$shot.png" ] && pass "screenshot $shot.png" || fail "no screenshot $SHOTS/$shot.png"
done
if grep -qF "${OWNER_URL#*token=}" "$LOG"; then fail "the owner token is in the broker log"; else pass "no owner token in the log"; fi
echo "whole test: $((SECONDS - started)) s"
e2e_finish
