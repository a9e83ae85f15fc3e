#!/usr/bin/env bash
# `lmdm policy merge`: several tenants' device-wide rules merged to the
# strictest with provenance, and the broker's profile, from the command line
# (no database, no server).
. "$(dirname "$0")/lib.sh"

cat >"$T/a.json" <<'J'
{"tenant": "General", "passcode": {"minLength": 6, "maxInactivity": 5},
 "restrictions": {"allowOpenFromManagedToUnmanaged": false},
 "domains": {"WebDomains": ["general.example", "shared.example"]}}
J
cat >"$T/b.json" <<'J'
{"tenant": "St. Mary's", "passcode": {"minLength": 8, "requirePasscode": true},
 "encryption": {"required": true},
 "domains": {"WebDomains": ["stmarys.org", "shared.example"]}}
J
merge() { "$LMDM_BIN" policy merge "$@"; }
if ! merge --help >/dev/null 2>&1; then
    fail "\`lmdm policy merge\` is not available in $LMDM_BIN"
    e2e_finish
fi

out=$(merge "$T/a.json" "$T/b.json")
expect_eq "$(jq -r '.passcode.minLength.value' <<<"$out")" 8 "min length 6 and 8 -> 8"
expect_eq "$(jq -c '.passcode.minLength.required_by' <<<"$out")" '["St. Mary'"'"'s"]' "8 is required by the second tenant"
expect_eq "$(jq -r '.passcode.minLength.plain' <<<"$out")" "a passcode of at least 8 characters" "in plain words"
expect_eq "$(jq -r '.passcode.maxInactivity.value, .passcode.maxInactivity.required_by[0]' <<<"$out" | paste -sd/)" "5/General" "a key only one tenant sets"
expect_eq "$(jq -r '.restrictions.allowOpenFromManagedToUnmanaged.value' <<<"$out")" false "managed open-in kept in"
expect_eq "$(jq -c '[.domains.WebDomains[].domain]' <<<"$out")" '["general.example","shared.example","stmarys.org"]' "domains: sorted union"
expect_eq "$(jq -r '.domains.WebDomains[1].from | length' <<<"$out")" 2 "a shared domain comes from both"
expect_eq "$(jq -r '.profile.identifier' <<<"$out")" "lmdm.broker.rules" "the profile's identifier"
hash1=$(jq -r '.profile.sha256' <<<"$out")
expect_eq "$(jq -r '.profile.sha256' < <(merge "$T/b.json" "$T/a.json"))" "$hash1" "the order of the files changes nothing"

# The profile: minLength 8, deterministic.
xml=$(merge --profile "$T/a.json" "$T/b.json")
expect_contains "$xml" "<key>minLength</key>" "profile has minLength"
expect_eq "$(tr -d ' \t\n' <<<"$xml" | grep -o '<key>minLength</key><integer>[0-9]*</integer>')" \
    "<key>minLength</key><integer>8</integer>" "profile: minLength 8"
expect_contains "$xml" "<string>lmdm.broker.rules</string>" "profile: broker identifier"
expect_eq "$(merge --profile "$T/b.json" "$T/a.json" | sha256sum)" "$(sha256sum <<<"$xml")" "profile: same bytes from the same result"
mac=$(merge --profile --platform macos "$T/a.json" "$T/b.json")
expect_contains "$mac" "com.apple.MCX.FileVault2" "macOS: FileVault payload"
case "$mac" in *FDERecoveryKeyEscrow*) fail "macOS: no escrow payload" ;; *) pass "macOS: no escrow payload" ;; esac

# A third tenant whose rules are already met changes nothing on the device.
echo '{"tenant": "Clinic", "passcode": {"minLength": 4}}' >"$T/c.json"
expect_eq "$(merge "$T/a.json" "$T/b.json" "$T/c.json" | jq -r .profile.sha256)" "$hash1" "weaker third tenant: same profile hash"

# Bad files: exit 1, the file and the key named.
echo '{"tenant": "Bad", "passcode": {"minLength": 40}}' >"$T/bad.json"
rc=0; err=$(merge "$T/a.json" "$T/bad.json" 2>&1 >/dev/null) || rc=$?
expect_eq "$rc" 1 "out of range: exit 1"
expect_contains "$err" "$T/bad.json" "error names the file"
expect_contains "$err" "minLength: 40 is out of range 0..16" "error names the key and the range"
echo '{"passcode": {"maxFailedAttempts": 3}}' >"$T/wipe.json"
rc=0; err=$(merge "$T/wipe.json" 2>&1 >/dev/null) || rc=$?
expect_eq "$rc/$(grep -c maxFailedAttempts <<<"$err")" "1/1" "maxFailedAttempts refused, named"
echo '{"tenant": "X", "os": {}}' >"$T/unknown.json"
rc=0; err=$(merge "$T/unknown.json" 2>&1 >/dev/null) || rc=$?
expect_eq "$rc" 1 "unknown section: exit 1"
expect_contains "$err" '"os"' "unknown section named"
echo '{"tenant": ' >"$T/broken.json"
rc=0; err=$(merge "$T/broken.json" 2>&1 >/dev/null) || rc=$?
expect_eq "$rc" 1 "malformed JSON: exit 1"
expect_contains "$err" "$T/broken.json" "malformed JSON: file named"
rc=0; merge "$T/missing.json" >/dev/null 2>&1 || rc=$?
expect_eq "$rc" 1 "missing file: exit 1"
rc=0; merge >/dev/null 2>&1 || rc=$?
expect_eq "$rc" 2 "no file: usage, exit 2"
expect_contains "$(merge --help)" "usage: lmdm policy merge" "--help"

# Nothing required: no profile.
echo '{"tenant": "Nothing"}' >"$T/none.json"
rc=0; xml=$(merge --profile "$T/none.json" 2>/dev/null) || rc=$?
expect_eq "$rc/${#xml}" "0/0" "nothing required: no profile"

e2e_finish
