#!/usr/bin/env bash
# The device side end to end: a simulated device enrolls from /enroll, checks
# in (Authenticate, TokenUpdate), commands queued in the database push the
# device through the APNs stand-in, the device polls, answers, the answers are
# stored exactly once; NotNow then Idle; CheckOut; someone else's identity,
# forged signatures and bad bodies are refused and change nothing.
. "$(dirname "$0")/lib.sh"

SIM="$LMDM_BUILD/tests/sim/lmdm-sim"
STANDIN="$LMDM_BUILD/tests/tools/apns-standin"
[ -x "$SIM" ] || { echo "missing $SIM"; exit 1; }
[ -x "$STANDIN" ] || { echo "missing $STANDIN"; exit 1; }
TOPIC="com.apple.mgmt.External.e2e-test"

e2e_db
e2e_certs
# APNs token key (what Apple hands out as a .p8) and its public half for the stand-in.
openssl ecparam -name prime256v1 -genkey -noout 2>/dev/null | openssl pkcs8 -topk8 -nocrypt -out "$T/apns.p8"
openssl ec -in "$T/apns.p8" -pubout -out "$T/apns.pub" 2>/dev/null
APNS_PORT=$(random_port)
"$STANDIN" --listen "127.0.0.1:$APNS_PORT" --cert "$T/certs/server.crt" --key "$T/certs/server.key" \
  --topic "$TOPIC" --key-id KEYID12345 --team-id TEAMID1234 --key-pub "$T/apns.pub" \
  --record "$T/pushes.jsonl" >"$T/standin.log" 2>&1 &
STANDIN_PID=$!
trap 'kill $STANDIN_PID 2>/dev/null || true; e2e_cleanup' EXIT

e2e_config "$DB_CONNINFO" \
  "ca_cert = \"$T/ca/ca.crt\"" "ca_key = \"$T/ca/ca.key\"" \
  "apns_auth = token" "apns_url = \"https://localhost:$APNS_PORT\"" "apns_topic = \"$TOPIC\"" \
  "apns_key_file = \"$T/apns.p8\"" "apns_key_id = KEYID12345" "apns_team_id = TEAMID1234" \
  "apns_ca_file = \"$CA\"" "mdm_max_body = 64k" "log_level = debug"
sed -i "s|^listen_tls = .*|&|" "$CONF"
echo "public_url = \"$TLS_URL\"" >>"$CONF"
mkdir -p "$T/ca"
"$LMDM_BIN" ca init --config "$CONF" >/dev/null
expect_eq "$(stat -c %a "$T/ca/ca.key")" 600 "CA key is readable only by its owner"
e2e_migrate
e2e_serve

counts() { psqlq "SELECT (SELECT count(*) FROM devices) || '/' || (SELECT count(*) FROM channels) || '/' || (SELECT count(*) FROM commands) || '/' || (SELECT count(*) FROM commands WHERE result IS NOT NULL)"; }

# The TLS handshake asks for a device certificate and names the broker CA.
names=$(echo | timeout 5 openssl s_client -connect "127.0.0.1:$TLS_PORT" -servername localhost 2>/dev/null | sed -n '/Acceptable client certificate CA names/,/^[A-Z]/p')
expect_contains "$names" "lmdm broker CA" "client certificate request names the broker CA"

# ---- enrollment -------------------------------------------------------------
"$SIM" enroll --url "$TLS_URL" --cacert "$CA" --dir "$T/dev1" >/dev/null
UDID=$(jq -r .udid "$T/dev1/device.json" 2>/dev/null || sed -n 's/.*"udid": *"\([^"]*\)".*/\1/p' "$T/dev1/device.json")
[ -n "$UDID" ] && pass "device enrolled from /enroll" || fail "no UDID after enroll"
out=$("$SIM" checkin --dir "$T/dev1" --cacert "$CA" --message Authenticate)
expect_contains "$out" "200" "Authenticate accepted"
expect_eq "$(psqlq "SELECT state FROM devices WHERE device_key = '$UDID'")" "authenticated" "Authenticate starts an enrollment"
# Not reachable until TokenUpdate: the queue refuses nothing, but no push goes out.
out=$("$SIM" checkin --dir "$T/dev1" --cacert "$CA" --message TokenUpdate)
expect_contains "$out" "200" "TokenUpdate accepted"
expect_eq "$(psqlq "SELECT state FROM devices WHERE device_key = '$UDID'")" "enrolled" "TokenUpdate completes the enrollment"
expect_eq "$(psqlq "SELECT push_token IS NOT NULL FROM channels c JOIN devices d ON d.id = c.device_id WHERE d.device_key = '$UDID' AND user_key = ''")" "t" "push token stored"

# ---- a command: queued -> pushed -> fetched -> answered -> stored ----------
cat >"$T/profilelist.plist" <<'PL'
<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict><key>RequestType</key><string>ProfileList</string></dict></plist>
PL
cat >"$T/devinfo.plist" <<'PL'
<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict><key>RequestType</key><string>DeviceInformation</string>
<key>Queries</key><array><string>OSVersion</string><string>Model</string></array></dict></plist>
PL
CMD1=$("$LMDM_BIN" command enqueue --config "$CONF" --device "$UDID" --tenant 1 "$T/profilelist.plist" | cut -d' ' -f1)
for _ in $(seq 200); do [ -s "$T/pushes.jsonl" ] && break; sleep 0.1; done
push=$(cat "$T/pushes.jsonl" 2>/dev/null || true)
expect_contains "$push" "\"push_type\":\"mdm\"" "the device was pushed through APNs"
expect_contains "$push" "$TOPIC" "push carries the topic"
run=$("$SIM" run --dir "$T/dev1" --cacert "$CA")
expect_contains "$run" "$CMD1" "device fetched the queued command"
expect_contains "$run" "ProfileList" "with its RequestType"
expect_eq "$(psqlq "SELECT state FROM commands WHERE command_uuid = '$CMD1'")" "acknowledged" "answer recorded"
expect_contains "$(psqlq "SELECT result FROM commands WHERE command_uuid = '$CMD1'")" "ProfileList" "the whole answer is stored"

# Two tenants interleaved: round robin between tenants, order within each.
A1=$("$LMDM_BIN" command enqueue --config "$CONF" --device "$UDID" --tenant 1 "$T/profilelist.plist" | cut -d' ' -f1)
A2=$("$LMDM_BIN" command enqueue --config "$CONF" --device "$UDID" --tenant 1 "$T/devinfo.plist" | cut -d' ' -f1)
B1=$("$LMDM_BIN" command enqueue --config "$CONF" --device "$UDID" --tenant 2 "$T/profilelist.plist" | cut -d' ' -f1)
run=$("$SIM" run --dir "$T/dev1" --cacert "$CA" --http1)
order=$(printf '%s\n' "$run" | grep -o '"command_uuid":"[^"]*"' | cut -d'"' -f4 | tr 'A-Z' 'a-z' | paste -sd' ')
# Tenant 1 was served last (CMD1), so tenant 2 goes first.
expect_eq "$order" "$B1 $A1 $A2" "tenants take turns; each tenant's commands keep their order (HTTP/1.1)"

# NotNow holds a command back until the next Idle.
N1=$("$LMDM_BIN" command enqueue --config "$CONF" --device "$UDID" "$T/profilelist.plist" | cut -d' ' -f1)
"$SIM" run --dir "$T/dev1" --cacert "$CA" --notnow ProfileList >/dev/null
expect_eq "$(psqlq "SELECT state FROM commands WHERE command_uuid = '$N1'")" "notnow" "NotNow recorded"
run=$("$SIM" run --dir "$T/dev1" --cacert "$CA" --http2)
expect_contains "$run" "$N1" "the NotNow command comes back after Idle (HTTP/2)"
expect_eq "$(psqlq "SELECT state FROM commands WHERE command_uuid = '$N1'")" "acknowledged" "and is then answered"

# ---- identity ---------------------------------------------------------------
"$SIM" enroll --url "$TLS_URL" --cacert "$CA" --dir "$T/dev2" >/dev/null
"$SIM" checkin --dir "$T/dev2" --cacert "$CA" --message Authenticate >/dev/null
"$SIM" checkin --dir "$T/dev2" --cacert "$CA" --message TokenUpdate >/dev/null
# mTLS instead of the signature works too.
out=$("$SIM" run --dir "$T/dev2" --cacert "$CA" --mode mtls 2>&1); rc=$?
expect_eq "$rc" 0 "mTLS identity accepted"

before=$(counts)
idle_body() { printf '<?xml version="1.0" encoding="UTF-8"?>\n<plist version="1.0"><dict><key>Status</key><string>Idle</string><key>UDID</key><string>%s</string></dict></plist>\n' "$1"; }
sign() { # sign BODYFILE CERT KEY -> base64 detached CMS
  openssl cms -sign -binary -noattr -outform DER -in "$1" -signer "$2" -inkey "$3" -nosmimecap 2>/dev/null | base64 -w0
}
idle_body "$UDID" >"$T/idle1.xml"
# dev2's identity signing a message that claims to be dev1: refused (bound certificate).
openssl pkey -in "$T/dev2/identity.pem" -out "$T/dev2.key" 2>/dev/null
openssl x509 -in "$T/dev2/identity.pem" -out "$T/dev2.crt" 2>/dev/null
sig2=$(sign "$T/idle1.xml" "$T/dev2.crt" "$T/dev2.key")
code_=$(code -X PUT -H "Mdm-Signature: $sig2" -H 'Content-Type: application/x-apple-aspen-mdm' --data-binary @"$T/idle1.xml" "$TLS_URL/mdm/connect")
expect_eq "$code_" 403 "another device's identity is refused"
expect_contains "$(cat "$LOG")" "certificate differs" "and logged"
# A valid signature replayed over another body: refused.
printf '<?xml version="1.0"?><plist version="1.0"><dict><key>Status</key><string>Idle</string><key>UDID</key><string>%s</string></dict></plist>' "$UDID" >"$T/other.xml"
code_=$(code -X PUT -H "Mdm-Signature: $sig2" --data-binary @"$T/other.xml" "$TLS_URL/mdm/connect")
expect_eq "$code_" 403 "a signature over another body is refused"
# No identity at all.
expect_eq "$(code -X PUT --data-binary @"$T/idle1.xml" "$TLS_URL/mdm/connect")" 401 "no identity -> 401"
# An identity from a CA the broker does not trust.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$T/rogue.key" -out "$T/rogue.crt" \
  -subj "/CN=rogue" -days 30 2>/dev/null
sigr=$(sign "$T/idle1.xml" "$T/rogue.crt" "$T/rogue.key")
expect_eq "$(code -X PUT -H "Mdm-Signature: $sigr" --data-binary @"$T/idle1.xml" "$TLS_URL/mdm/connect")" 403 "untrusted CA -> 403"
expect_eq "$(code -X PUT -H "Mdm-Signature: not base64 !!" --data-binary @"$T/idle1.xml" "$TLS_URL/mdm/connect")" 403 "garbage signature -> 403"
# An expired certificate issued by the broker CA.
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$T/old.key" -out "$T/old.csr" -subj "/CN=old" 2>/dev/null
openssl x509 -req -in "$T/old.csr" -CA "$T/ca/ca.crt" -CAkey "$T/ca/ca.key" -out "$T/old.crt" -days 1 \
  -set_serial 7 -not_before 20200101000000Z -not_after 20200102000000Z 2>/dev/null ||
  openssl ca -help >/dev/null 2>&1 || true
if [ -s "$T/old.crt" ]; then
  sigo=$(sign "$T/idle1.xml" "$T/old.crt" "$T/old.key")
  expect_eq "$(code -X PUT -H "Mdm-Signature: $sigo" --data-binary @"$T/idle1.xml" "$TLS_URL/mdm/connect")" 403 "expired certificate -> 403"
fi

# Bad bodies, signed by the right device: 400 and nothing stored.
openssl pkey -in "$T/dev1/identity.pem" -out "$T/dev1.key" 2>/dev/null
openssl x509 -in "$T/dev1/identity.pem" -out "$T/dev1.crt" 2>/dev/null
bad() { # bad FILE PATH WHAT EXPECTED
  local s; s=$(sign "$1" "$T/dev1.crt" "$T/dev1.key")
  expect_eq "$(code -X PUT -H "Mdm-Signature: $s" --data-binary @"$1" "$TLS_URL$2")" "$4" "$3"
}
printf 'this is not a plist' >"$T/b1"; bad "$T/b1" /mdm/connect "non-plist body -> 400" 400
printf '<?xml version="1.0"?><plist version="1.0"><dict><key>MessageType</key><string>Reboot</string><key>UDID</key><string>%s</string></dict></plist>' "$UDID" >"$T/b2"
bad "$T/b2" /mdm/checkin "unknown MessageType -> 400" 400
printf '<?xml version="1.0"?><plist version="1.0"><dict><key>Status</key><string>Sleeping</string><key>UDID</key><string>%s</string></dict></plist>' "$UDID" >"$T/b3"
bad "$T/b3" /mdm/connect "unknown Status -> 400" 400
printf '<?xml version="1.0"?><plist version="1.0"><dict><key>Status</key><string>Acknowledged</string><key>UDID</key><string>%s</string><key>CommandUUID</key><string>0b8b5c57-1111-2222-3333-444455556666</string></dict></plist>' "$UDID" >"$T/b4"
bad "$T/b4" /mdm/connect "a CommandUUID never sent to this device -> 400" 400
expect_contains "$(cat "$LOG")" "was never sent to this device" "and it is logged"
head -c 70000 /dev/zero | tr '\0' 'a' >"$T/big"
expect_eq "$(code -X PUT --data-binary @"$T/big" "$TLS_URL/mdm/connect")" 413 "body over mdm_max_body -> 413"
expect_eq "$(counts)" "$before" "refused requests changed nothing in the database"

# A check-in sent to the command URL (profile without CheckInURL) is a check-in.
out=$("$SIM" checkin --dir "$T/dev2" --cacert "$CA" --message GetBootstrapToken --to-server-url 2>&1 || true)
expect_contains "$out" "200" "check-in on /mdm/connect recognised by its Content-Type"

# ---- every check-in message type is answered --------------------------------
for m in SetBootstrapToken GetBootstrapToken DeclarativeManagement UserAuthenticate; do
  out=$("$SIM" checkin --dir "$T/dev2" --cacert "$CA" --message "$m" 2>&1 || true)
  expect_contains "$out" "200" "$m answered 200"
done
out=$("$SIM" checkin --dir "$T/dev2" --cacert "$CA" --message GetToken 2>&1 || true)
expect_contains "$out" "400" "GetToken: no token service -> 400"

# ---- CheckOut ---------------------------------------------------------------
Q=$("$LMDM_BIN" command enqueue --config "$CONF" --device "$UDID" "$T/profilelist.plist" | cut -d' ' -f1)
out=$("$SIM" checkin --dir "$T/dev1" --cacert "$CA" --message CheckOut)
expect_contains "$out" "200" "CheckOut accepted"
expect_eq "$(psqlq "SELECT state FROM devices WHERE device_key = '$UDID'")" "checked_out" "device marked gone"
expect_eq "$(psqlq "SELECT state FROM commands WHERE command_uuid = '$Q'")" "cancelled" "what was queued for it is stopped"
set +e
"$LMDM_BIN" command enqueue --config "$CONF" --device "$UDID" "$T/profilelist.plist" >/dev/null 2>&1; rc=$?
set -e
expect_eq "$rc" 1 "nothing more can be queued for a checked-out device"

e2e_finish
