#!/usr/bin/env bash
# ctest fixture pg.start: a private, throwaway PostgreSQL for this test run.
# Usage: tests/pg/start.sh DIR
#   Creates a cluster in a fresh /tmp/lmdm-testpg.XXXXXX (short, so the unix
#   socket path fits; reachable by the server user when run as root), starts it,
#   and writes DIR/conninfo (maintenance database "postgres") and DIR/pgdir.
set -euo pipefail

[ "$#" -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
HERE=$(cd "$(dirname "$0")" && pwd)
PGSH="$HERE/../../deploy/pg.sh"
STATE=$1
mkdir -p "$STATE"

# A crashed earlier run may have left a server and its directory behind.
if [ -f "$STATE/pgdir" ]; then
    bash "$HERE/stop.sh" "$STATE" || echo "pg.start: could not clean up the previous test server" >&2
fi
rm -f "$STATE/conninfo" "$STATE/pgdir"

PGDIR=$(mktemp -d /tmp/lmdm-testpg.XXXXXX)
# Record it before anything can fail so that pg.stop cleans up.
echo "$PGDIR" >"$STATE/pgdir"
chmod 755 "$PGDIR"

bash "$PGSH" init --fast "$PGDIR"
bash "$PGSH" start "$PGDIR"
bash "$PGSH" conninfo "$PGDIR" postgres >"$STATE/conninfo.tmp"
mv "$STATE/conninfo.tmp" "$STATE/conninfo"
echo "pg.start: test server up: $(cat "$STATE/conninfo")"
