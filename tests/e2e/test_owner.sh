#!/usr/bin/env bash
# The device owner end to end: the enrollment profile carries an owner link
# bound to the device's identity certificate; the link opens a session
# (cookie); the consent page shows a tenant's invitation in plain words,
# escaped; accept and decline need the owner's CSRF token and a same-origin
# form; the owner page lists and removes organizations, and only those of the
# owner's own device.
. "$(dirname "$0")/lib.sh"

SIM="$LMDM_BUILD/tests/sim/lmdm-sim"
[ -x "$SIM" ] || { echo "missing $SIM"; exit 1; }

e2e_start_full "mdm_max_body = 64k" "log_level = debug"

# page URL [curl args...] -> headers + body, "HTTP <code>" on the last line
page() { local u=$1; shift; curl -s -i --cacert "$CA" -w '\nHTTP %{http_code}' "$@" "$u"; }
hdrs() { sed -n '1,/^\r\{0,1\}$/p' <<<"$1" | tr -d '\r' | tr 'A-Z' 'a-z'; } # header block, lower case (h2)

if [ "$(code "$TLS_URL/owner")" = 404 ]; then
  fail "the owner routes are not wired into lmdm serve (lmdm_owner_routes in broker/main.c)"
  e2e_finish
fi

enroll() { # enroll DIR -> owner URL from the profile's web clip
  local out
  out=$("$SIM" enroll --url "$TLS_URL" --cacert "$CA" --dir "$1")
  "$SIM" checkin --dir "$1" --cacert "$CA" --message Authenticate >/dev/null
  "$SIM" checkin --dir "$1" --cacert "$CA" --message TokenUpdate >/dev/null
  jq -r '.owner_url // empty' <<<"$out"
}

# ---- the owner link in the enrollment profile --------------------------------
URL1=$(enroll "$T/dev1")
UDID1=$(jq -r .udid "$T/dev1/device.json")
case "$URL1" in "$TLS_URL/owner/login?token="*) pass "the profile carries the owner link (web clip)" ;;
  *) fail "owner link: '$URL1'" ;; esac
TOKEN1=${URL1#*token=}
expect_eq "${#TOKEN1}" 43 "the owner token has 256 bits"
expect_eq "$(psqlq "SELECT count(*) FROM owner_tokens o JOIN devices d ON d.cert_fpr = o.cert_fpr WHERE d.device_key = '$UDID1'")" 1 \
  "the token is bound to the certificate the device authenticated with"
expect_eq "$(psqlq "SELECT count(*) FROM owner_tokens WHERE token_hash = '$TOKEN1' OR position('${TOKEN1:0:16}' in token_hash) > 0")" 0 \
  "only a hash of the token is stored"
DEV1=$(psqlq "SELECT id FROM devices WHERE device_key = '$UDID1'")

# ---- session ------------------------------------------------------------------
r=$(page "$URL1" -c "$T/jar1")
expect_eq "$(status "$r")" 303 "the owner link answers 303"
expect_contains "$(hdrs "$r")" "location: /owner" "and sends the owner to /owner"
cookie=$(grep -i '^set-cookie:' <<<"$r" | tr -d '\r')
expect_contains "$cookie" "lmdm_owner=$TOKEN1; Path=/; HttpOnly; SameSite=Lax; Secure" "cookie flags (HttpOnly, SameSite=Lax, Secure on https)"
expect_eq "$(status "$(page "$TLS_URL/owner/login?token=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")")" 403 "unknown token -> 403"
expect_eq "$(status "$(page "$TLS_URL/owner/login?token=x")")" 403 "malformed token -> 403"
expect_eq "$(status "$(page "$TLS_URL/owner")")" 401 "no session -> 401"
expect_eq "$(status "$(page "$TLS_URL/owner" -H 'Cookie: lmdm_owner=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA')")" 401 "invalid cookie -> 401"
r=$(page "$TLS_URL/owner" -b "$T/jar1")
expect_eq "$(status "$r")" 200 "the owner page opens with the cookie"
expect_contains "$r" "None. To add an organization" "no organization manages the device yet"
h=$(hdrs "$r")
expect_contains "$h" "content-type: text/html; charset=utf-8" "HTML with charset"
expect_contains "$h" "cache-control: no-store" "not cached"
expect_contains "$h" "x-frame-options: deny" "not framed"
expect_contains "$h" "content-security-policy: default-src 'none'; style-src 'unsafe-inline'; form-action 'self'" "CSP"
expect_contains "$h" "referrer-policy: same-origin" "no referrer to other sites"
r=$(page "$PLAIN_URL/owner" -H "Cookie: a=b; lmdm_owner=$TOKEN1" --http2-prior-knowledge)
expect_eq "$(status "$r")" 200 "the session works over h2c, among other cookies"

# ---- an invitation --------------------------------------------------------------
TENANT=$("$LMDM_BIN" tenant add "St. Mary's <Clinic> & Co" --config "$CONF")
KEY=$("$LMDM_BIN" key issue --tenant "$TENANT" --role admin --config "$CONF" 2>/dev/null)
invite() { # invite NOTE -> JSON
  curl -s --cacert "$CA" -X POST -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    -d "{\"note\": \"$1\", \"rules\": {\"passcode\": {\"minLength\": 6}, \"custom\": {\"<b>x</b>\": 1}}}" "$TLS_URL/v1/invitations"
}
inv=$(invite "Welcome <script>alert(1)</script>")
CODE=$(jq -r .code <<<"$inv")
expect_eq "$(jq -r .url <<<"$inv")" "$TLS_URL/invite/$CODE" "the invitation URL is the consent page"

r=$(page "$TLS_URL/invite/$CODE")
expect_eq "$(status "$r")" 200 "consent page without a session"
expect_contains "$r" "St. Mary&#39;s &lt;Clinic&gt; &amp; Co asks to manage" "tenant name shown, escaped"
expect_contains "$r" "Welcome &lt;script&gt;alert(1)&lt;/script&gt;" "note shown, escaped"
if grep -q '<script\|<Clinic>\|<b>x' <<<"$r"; then fail "raw markup of the tenant on the page"; else pass "no tenant markup on the page"; fi
expect_contains "$r" "A passcode of at least 6 characters" "rules in plain words"
expect_contains "$r" "custom.&lt;b&gt;x&lt;/b&gt;: 1" "unknown rule keys shown as key: value"
expect_contains "$r" "Its accounts: mail, Exchange, calendars" "what it will manage"
expect_contains "$r" "follows the strictest" "rules are merged to the strictest"
expect_contains "$r" "can exchange data with each other" "the managed-apps data exchange limit"
expect_contains "$r" "Erase or lock the device" "what it can never do"
expect_contains "$r" "serial number, phone number or name" "never: identifiers"
expect_contains "$r" "first open your device" "without a session: how to open the owner page"
if grep -q '<form' <<<"$r"; then fail "buttons without a session"; else pass "no buttons without a session"; fi
expect_eq "$(status "$(page "$TLS_URL/invite/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")")" 404 "unknown invitation -> 404"
expect_eq "$(status "$(page "$TLS_URL/invite/a%3Cb%3E")")" 404 "malformed code -> 404"

r=$(page "$TLS_URL/invite/$CODE" -b "$T/jar1")
CSRF=$(csrf_of "$r")
expect_eq "${#CSRF}" 64 "with a session: forms carry a CSRF token"
expect_contains "$r" 'value="accept"' "accept button"
expect_contains "$r" 'value="decline"' "decline button"

post() { # post URL JAR FORM [curl args...]
  local u=$1 j=$2 f=$3; shift 3
  page "$u" -b "$j" -X POST -H 'Content-Type: application/x-www-form-urlencoded' --data-raw "$f" "$@"
}
counts() { psqlq "SELECT (SELECT count(*) FROM enrollments) || '/' || (SELECT count(*) FROM invitations) || '/' || (SELECT count(*) FROM outbox)"; }
before=$(counts)
expect_eq "$before" "0/1/0" "nothing stored yet"
expect_eq "$(status "$(post "$TLS_URL/invite/$CODE" "$T/jar1" "action=accept")")" 403 "accept without CSRF token -> 403"
[ "${CSRF: -1}" = 0 ] && WRONG="${CSRF%?}1" || WRONG="${CSRF%?}0"
expect_eq "$(status "$(post "$TLS_URL/invite/$CODE" "$T/jar1" "action=accept&csrf=$WRONG")")" 403 "wrong CSRF token -> 403"
expect_eq "$(status "$(post "$TLS_URL/invite/$CODE" "$T/jar1" "action=accept&csrf=$CSRF" -H 'Origin: https://evil.example')")" 403 "foreign Origin -> 403"
expect_eq "$(status "$(post "$TLS_URL/invite/$CODE" /dev/null "action=accept&csrf=$CSRF")")" 401 "no session -> 401"
expect_eq "$(status "$(post "$TLS_URL/invite/$CODE" "$T/jar1" "action=accept&action=decline&csrf=$CSRF")")" 400 "ambiguous form -> 400"
expect_eq "$(status "$(post "$TLS_URL/invite/$CODE" "$T/jar1" "action=accept&csrf=%zz")")" 400 "broken form encoding -> 400"
expect_eq "$(status "$(post "$TLS_URL/invite/$CODE" "$T/jar1" "action=accept&csrf=$CSRF&pad=$(head -c 5000 /dev/zero | tr '\0' a)")")" 413 "form body limit"
expect_eq "$(counts)" "$before" "refused forms changed nothing"

r=$(post "$TLS_URL/invite/$CODE" "$T/jar1" "action=accept&csrf=$CSRF" -H "Origin: $TLS_URL")
expect_eq "$(status "$r")" 200 "accept with CSRF token and own Origin"
expect_contains "$r" "You accepted St. Mary&#39;s &lt;Clinic&gt; &amp; Co" "accepted page"
expect_eq "$(psqlq "SELECT state || ' ' || (pseudonym ~ '^e[a-z2-7]{26}\$') || ' ' || (rules->'passcode'->>'minLength') FROM enrollments WHERE device_id = $DEV1 AND tenant_id = $TENANT")" \
  "active true 6" "enrollment stored with its pseudonym and the rules the owner saw"
expect_eq "$(psqlq "SELECT count(*) FROM invitations")" 0 "the invitation is used up"
expect_eq "$(psqlq "SELECT string_agg(event, ',') FROM outbox")" "enrollment.accepted" "the tenant is told"
P1=$(psqlq "SELECT pseudonym FROM enrollments WHERE device_id = $DEV1")
expect_eq "$(status "$(page "$TLS_URL/invite/$CODE" -b "$T/jar1")")" 404 "a used code -> 404"
r=$(post "$TLS_URL/invite/$CODE" "$T/jar1" "action=accept&csrf=$CSRF")
expect_eq "$(status "$r")" 404 "accepting a used code again -> 404"
expect_contains "$r" "This invitation is no longer valid" "and says so"

# ---- decline ---------------------------------------------------------------------
CODE2=$(invite "second" | jq -r .code)
CSRF2=$(csrf_of "$(page "$TLS_URL/invite/$CODE2" -b "$T/jar1")")
expect_eq "$(status "$(post "$TLS_URL/invite/$CODE2" "$T/jar1" "action=accept&csrf=$CSRF")")" 403 "a CSRF token is bound to its invitation"
before=$(psqlq "SELECT count(*) FROM outbox")
r=$(post "$TLS_URL/invite/$CODE2" "$T/jar1" "action=decline&csrf=$CSRF2")
expect_eq "$(status "$r")" 200 "decline"
expect_contains "$r" "was not told anything about this device" "declined page"
expect_eq "$(psqlq "SELECT count(*) FROM invitations")/$(psqlq "SELECT count(*) FROM enrollments")/$(psqlq "SELECT count(*) FROM outbox")" \
  "0/1/$before" "decline deletes the invitation and stores nothing else"

# ---- the owner page and removal ----------------------------------------------------
r=$(page "$TLS_URL/owner" -b "$T/jar1")
expect_contains "$r" "<strong>St. Mary&#39;s &lt;Clinic&gt; &amp; Co</strong>" "the owner page lists the tenant"
expect_contains "$r" "href=\"/owner/enrollments/$P1/remove\"" "with a way to remove it"

# A second device, enrolled with the same tenant, cannot touch the first's enrollment.
URL2=$(enroll "$T/dev2")
expect_eq "$(status "$(page "$URL2" -c "$T/jar2")")" 303 "second device's owner signs in"
CODE3=$(invite "for dev2" | jq -r .code)
CSRF3=$(csrf_of "$(page "$TLS_URL/invite/$CODE3" -b "$T/jar2")")
expect_eq "$(status "$(post "$TLS_URL/invite/$CODE3" "$T/jar1" "action=accept&csrf=$CSRF3")")" 403 "a CSRF token is bound to its owner"
expect_eq "$(status "$(post "$TLS_URL/invite/$CODE3" "$T/jar2" "action=accept&csrf=$CSRF3")")" 200 "second device accepts its own invitation"
expect_eq "$(psqlq "SELECT count(DISTINCT pseudonym) FROM enrollments WHERE state = 'active'")" 2 "each device has its own pseudonym"
expect_eq "$(status "$(page "$TLS_URL/owner/enrollments/$P1/remove" -b "$T/jar2")")" 404 "another owner cannot open the removal page"
r1=$(page "$TLS_URL/owner/enrollments/$P1/remove" -b "$T/jar1")
RCSRF=$(csrf_of "$r1")
expect_eq "$(status "$(post "$TLS_URL/owner/enrollments/$P1/remove" "$T/jar2" "csrf=$RCSRF")")" 403 "another owner cannot remove it, even with the owner's form token"
expect_eq "$(psqlq "SELECT count(*) FROM enrollments WHERE state = 'active'")" 2 "both enrollments still active"
expect_eq "$(status "$(page "$TLS_URL/owner/enrollments/eaaaaaaaaaaaaaaaaaaaaaaaaaa/remove" -b "$T/jar1")")" 404 "unknown enrollment -> 404"
expect_eq "$(status "$(post "$TLS_URL/owner/enrollments/$P1/remove" "$T/jar1" "")")" 403 "removal without CSRF token -> 403"

expect_eq "$(status "$r1")" 200 "removal asks for confirmation first"
expect_contains "$r1" "Remove St. Mary&#39;s &lt;Clinic&gt; &amp; Co?" "confirmation names the tenant"
expect_contains "$r1" "Its apps and accounts will be removed from this device" "and says what happens"
expect_contains "$r1" "action=\"/owner/enrollments/$P1/remove\"" "with the POST form"
r=$(post "$TLS_URL/owner/enrollments/$P1/remove" "$T/jar1" "csrf=$RCSRF" -H "Origin: $TLS_URL")
expect_eq "$(status "$r")" 200 "removal confirmed"
expect_contains "$r" "Removed" "removed page"
expect_eq "$(psqlq "SELECT state || '/' || ended_by FROM enrollments WHERE pseudonym = '$P1'")" "removed/owner" "enrollment removed by the owner"
expect_eq "$(psqlq "SELECT state FROM enrollments WHERE device_id <> $DEV1")" "active" "the other device's enrollment is untouched"
expect_eq "$(psqlq "SELECT count(*) FROM outbox WHERE event = 'enrollment.removed'")" 1 "the tenant is told"
expect_eq "$(status "$(post "$TLS_URL/owner/enrollments/$P1/remove" "$T/jar1" "csrf=$RCSRF")")" 409 "removing twice -> 409"
r=$(page "$TLS_URL/owner" -b "$T/jar1")
expect_contains "$r" "Recently ended" "the owner page shows what ended"
expect_contains "$r" "removed by you" "and how"

# ---- secrets stay out of the log ---------------------------------------------------
for s in "$TOKEN1" "$CODE" "$CODE2" "$CSRF"; do
  if grep -qF "$s" "$LOG"; then fail "a secret is in the broker log"; fi
done
pass "no owner token, invitation code or CSRF token in the log"

e2e_finish
