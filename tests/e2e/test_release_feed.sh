#!/usr/bin/env bash
# The polled release feed (issue 7, item 1): release_feed_url is fetched when
# the planner starts and every release_feed_interval. A good feed (SOFA v2
# for macOS, read from a local mirror) is imported whole; a broker pointed at
# a bad feed logs why and imports nothing.
. "$(dirname "$0")/lib.sh"

cp "$LMDM_VECTORS/macadmins_sofa/v2/macos_data_feed.json" "$T/macos.json"
e2e_start "release_feed_url = \"file://$T/macos.json\""
count() { psqlq "SELECT count(*) FROM os_releases WHERE platform = '$1'"; }
imported() { [ "$(count macOS)" -gt 0 ]; }
wait_for 20 imported || fail "the polled feed was not imported"
expect_eq "$(count macOS)" 126 "every macOS release of the feed"
expect_eq "$(count iOS)" 0 "and nothing else"
expect_eq "$(psqlq "SELECT source || ' ' || format FROM os_release_imports")" "file://$T/macos.json sofa-v2" \
  "the import names its source and format"
expect_eq "$(psqlq "SELECT build FROM os_releases WHERE platform = 'macOS' AND version = '26.6.2'")" 25G83 \
  "macOS 26.6.2 with its build"
grep -q "release feed file://$T/macos.json (sofa-v2): 126 releases, 126 new" "$LOG" &&
  pass "the import is logged" || fail "no log line for the import"
kill "$LMDM_PID"; wait "$LMDM_PID" 2>/dev/null || true

# A broken feed: refused whole, logged, nothing changes.
head -c 5000 "$T/macos.json" >"$T/broken.json"
sed -i "s|^release_feed_url = .*|release_feed_url = \"file://$T/broken.json\"|" "$CONF"
e2e_serve
logged() { grep -q "release feed file://$T/broken.json rejected" "$LOG"; }
wait_for 20 logged && pass "a broken feed is refused with its reason" || fail "no warning for the broken feed"
expect_eq "$(psqlq "SELECT count(*) FROM os_release_imports")" 1 "no import recorded for it"
expect_eq "$(count macOS)" 126 "the releases already imported stay"
e2e_finish
