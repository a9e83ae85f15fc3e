#!/usr/bin/env bash
# The command line: help on every command, exit codes, config errors naming
# file, line and key, migrate status.
. "$(dirname "$0")/lib.sh"

for c in serve migrate config; do
  out=$("$LMDM_BIN" "$c" --help); rc=$?
  expect_eq "$rc" 0 "lmdm $c --help exits 0"
  expect_contains "$out" "usage: lmdm $c" "lmdm $c --help prints usage"
done
expect_contains "$("$LMDM_BIN" --help)" "commands:" "lmdm --help"
expect_contains "$("$LMDM_BIN" version)" "lmdm " "lmdm version"
set +e
"$LMDM_BIN" frobnicate >/dev/null 2>&1; rc=$?
expect_eq "$rc" 2 "unknown command exits 2"
"$LMDM_BIN" serve --bogus >/dev/null 2>&1; rc=$?
expect_eq "$rc" 2 "unknown option exits 2"

printf 'workers = 2\nmax_streams = 5000\n' >"$T/bad.conf"
out=$("$LMDM_BIN" config --check --config "$T/bad.conf" 2>&1); rc=$?
expect_eq "$rc" 1 "bad config exits 1"
expect_contains "$out" "bad.conf:2" "error names file and line"
expect_contains "$out" "max_streams" "error names the key"
out=$("$LMDM_BIN" serve --config "$T/missing.conf" 2>&1); rc=$?
expect_eq "$rc" 1 "missing config file exits 1"
expect_contains "$out" "missing.conf" "error names the missing file"
set -e
expect_contains "$("$LMDM_BIN" config --describe)" "max_body_size" "config --describe lists settings"
expect_contains "$("$LMDM_BIN" config --check --config "$LMDM_SRC/deploy/lmdm.conf.example")" "ok" "example config is valid"

# migrate: status before and after, second run applies nothing.
e2e_db
set +e
"$LMDM_BIN" migrate --database-url "$DB_CONNINFO" --dir "$LMDM_SRC/migrations" --status >/dev/null; rc=$?
set -e
expect_eq "$rc" 3 "migrate --status exits 3 when migrations are pending"
out=$("$LMDM_BIN" migrate --database-url "$DB_CONNINFO" --dir "$LMDM_SRC/migrations")
expect_contains "$out" "applied 0001_init.sql" "migrate applies the first migration"
out=$("$LMDM_BIN" migrate --database-url "$DB_CONNINFO" --dir "$LMDM_SRC/migrations")
expect_contains "$out" "0 migration(s) applied" "second migrate applies nothing"
out=$("$LMDM_BIN" migrate --database-url "$DB_CONNINFO" --dir "$LMDM_SRC/migrations" --status)
expect_contains "$out" "0 pending" "status after migrate"
set +e
out=$(LMDM_DATABASE_URL="host=/nonexistent dbname=x" "$LMDM_BIN" migrate --dir "$LMDM_SRC/migrations" 2>&1); rc=$?
set -e
expect_eq "$rc" 1 "migrate against an unreachable database exits 1"
expect_contains "$out" "cannot connect" "and says why"

e2e_finish
