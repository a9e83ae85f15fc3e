#!/usr/bin/env bash
# `lmdm policy table` and `lmdm policy decide`, the command-line view of
# policy/ for auditors and tests: no database, no server.
. "$(dirname "$0")/lib.sh"

table=$("$LMDM_BIN" policy table)
expect_eq "$(head -n1 <<<"$table")" "$(printf 'kind\tname\tdecision\treason\tforbidden_under_user_enrollment\trationale')" "TSV header"
expect_eq "$(grep -c '^command' <<<"$table")" 66 "one row per RequestType"
expect_eq "$(grep -c '^payload' <<<"$table")" 122 "one row per PayloadType"
expect_eq "$(awk -F'\t' '$1 == "command" && $2 == "EraseDevice" {print $3 "/" $4}' <<<"$table")" "block/wipe" "EraseDevice: block, wipe"
expect_eq "$(awk -F'\t' '$2 == "com.apple.security.root" {print $3 "/" $4}' <<<"$table")" "block/root_certificate" "root certificates blocked"
expect_eq "$(awk -F'\t' 'NF != 6' <<<"$table" | wc -l)" 0 "every row has six columns"
expect_eq "$(awk -F'\t' '$3 == "block" && $4 == "-"' <<<"$table" | wc -l)" 0 "every block has a reason code"

cat >"$T/owned.json" <<'J'
{"apps": ["org.stmarys.rounds"], "profiles": ["org.stmarys.mail"], "other_apps": ["org.general.app"], "other_profiles": []}
J
plist() { printf '<?xml version="1.0"?><plist version="1.0"><dict><key>Command</key><dict>%s</dict></dict></plist>' "$1" >"$T/cmd.plist"; }
decide() { "$LMDM_BIN" policy decide --entities "$T/owned.json" "$@" "$T/cmd.plist"; }

plist '<key>RequestType</key><string>EraseDevice</string>'
rc=0; out=$(decide) || rc=$?
expect_eq "$(jq -r '.decision + "/" + .reason' <<<"$out")/$rc" "block/wipe/3" "decide: wipe blocked, exit 3"
plist '<key>RequestType</key><string>InstallApplication</string><key>Identifier</key><string>org.general.app</string>'
expect_eq "$(decide | jq -r .reason)" "entity_owned_by_other_tenant" "decide: another tenant's app"
plist '<key>RequestType</key><string>RemoveApplication</string><key>Identifier</key><string>org.stmarys.rounds</string>'
rc=0; out=$(decide) || rc=$?
expect_eq "$(jq -r .decision <<<"$out")/$rc" "scope/0" "decide: own app removal allowed, exit 0"
expect_eq "$(decide --platform macos --user-enrollment | jq -r .reason)" "forbidden_under_user_enrollment" "decide: User Enrollment on macOS"
plist '<key>RequestType</key><string>DeviceInformation</string><key>Queries</key><array><string>SerialNumber</string><string>OSVersion</string></array>'
expect_eq "$(decide | jq -r '.decision + " " + (.kept_queries|tostring)')" "scope 1" "decide: identifying queries are stripped"
echo '{"Command":{"RequestType":"ManagedApplicationList"}}' >"$T/cmd.json"
expect_eq "$("$LMDM_BIN" policy decide "$T/cmd.json" | jq -r .decision)" "allow" "decide: JSON input"
echo '<plist><dict><key>Command</key>' >"$T/cmd.plist"
rc=0; out=$(decide) || rc=$?
expect_eq "$(jq -r '.decision + "/" + .error' <<<"$out")/$rc" "invalid/bad_plist/1" "decide: malformed plist -> invalid, exit 1"
echo '[1]' >"$T/bad.json"
expect_eq "$("$LMDM_BIN" policy decide --entities "$T/bad.json" "$T/cmd.json" >/dev/null 2>&1; echo $?)" 1 "decide: malformed entities file"
expect_eq "$("$LMDM_BIN" policy decide >/dev/null 2>&1; echo $?)" 2 "decide: usage"
expect_contains "$("$LMDM_BIN" policy --help)" "usage: lmdm policy table" "policy --help"

e2e_finish
