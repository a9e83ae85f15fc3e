#!/usr/bin/env bash
# ctest fixture pg.stop: stops the test server started by start.sh and removes
# its directory. Usage: tests/pg/stop.sh DIR
set -euo pipefail

[ "$#" -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
HERE=$(cd "$(dirname "$0")" && pwd)
PGSH="$HERE/../../deploy/pg.sh"
STATE=$1

if [ ! -f "$STATE/pgdir" ]; then
    echo "pg.stop: no test server recorded in $STATE"
    exit 0
fi
PGDIR=$(cat "$STATE/pgdir")
# Only ever delete what start.sh created.
case "$PGDIR" in
    /tmp/lmdm-testpg.??????) ;;
    *) echo "pg.stop: refusing to remove unexpected directory '$PGDIR'" >&2; exit 1 ;;
esac
if [ -d "$PGDIR" ]; then
    bash "$PGSH" stop "$PGDIR"
    rm -rf "$PGDIR"
fi
rm -f "$STATE/pgdir" "$STATE/conninfo"
echo "pg.stop: removed $PGDIR"
