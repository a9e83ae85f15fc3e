#!/usr/bin/env bash
# Policy benchmark of lmdm (see bench/README.md, issue 5): decisions per
# second in-process on one core, for a small command and an InstallProfile
# with 10 payloads, and response filtering of a 200-app
# ManagedApplicationList; each next to libplist's round trip of the same
# document, measured in the same run. No database, no server.
set -euo pipefail

PROG=${0##*/}
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$SRC/bench/lib.sh"

SECONDS_PER=2

usage() {
    cat <<USAGE
Usage: $PROG [options]

In-process policy decisions and response filtering, pinned to one core, next to
libplist's parse + write of the same documents. See bench/README.md.

Options:
  --seconds S      seconds per figure (default $SECONDS_PER)
  --build-dir DIR  build directory (default: \$LMDM_BUILD_DIR or build/)
  --no-build       use the binary already in the build directory
  --no-pin         do not pin to one CPU
  -h, --help       this help
USAGE
}

while [ "$#" -gt 0 ]; do
    case "$1" in
        --seconds) SECONDS_PER=${2:-}; posint "$SECONDS_PER" --seconds; shift ;;
        *) bench_option "$@"; shift $((BENCH_ARGS - 1)) ;;
    esac
    shift
done

bench_inproc policy_bench --seconds "$SECONDS_PER"
