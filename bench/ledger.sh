#!/usr/bin/env bash
# Audit ledger benchmark of lmdm (see bench/README.md, issue 8): `lmdm audit
# verify` speed on a generated 1,000,000-entry export, entries per second on
# one core (target >= 500,000/s), next to reading the file, BLAKE2b of its
# bytes and the entry hashes alone, measured in the same run. No database,
# no server.
set -euo pipefail

PROG=${0##*/}
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$SRC/bench/lib.sh"

ENTRIES=1000000
ROUNDS=3

usage() {
    cat <<USAGE
Usage: $PROG [options]

Verification of a generated audit ledger export, pinned to one core, next to
reading the file and hashing its bytes. See bench/README.md.

Options:
  --entries N      entries in the export (default $ENTRIES)
  --rounds R       rounds; each figure is the best (default $ROUNDS)
  --build-dir DIR  build directory (default: \$LMDM_BUILD_DIR or build/)
  --no-build       use the binary already in the build directory
  --no-pin         do not pin to one CPU
  -h, --help       this help
USAGE
}

while [ "$#" -gt 0 ]; do
    case "$1" in
        --entries) ENTRIES=${2:-}; posint "$ENTRIES" --entries; shift ;;
        --rounds) ROUNDS=${2:-}; posint "$ROUNDS" --rounds; shift ;;
        *) bench_option "$@"; shift $((BENCH_ARGS - 1)) ;;
    esac
    shift
done

bench_inproc ledger_bench --entries "$ENTRIES" --rounds "$ROUNDS"
