#!/usr/bin/env bash
# Device-wide rules benchmark of lmdm (see bench/README.md, issue 6): merges
# per second in-process on one core of 10 tenants' passcode rules (target
# >= 200,000/s) and of 10 tenants' full rules with domains, each next to a
# memcpy of the inputs and to building the broker's profile from the result,
# measured in the same run; then the re-merge of 10,000 devices after one
# tenant changes its rule (time, profile reinstalls queued). No database, no
# server.
set -euo pipefail

PROG=${0##*/}
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$SRC/bench/lib.sh"

SECONDS_PER=2

usage() {
    cat <<USAGE
Usage: $PROG [options]

In-process merges of device-wide rules, pinned to one core, next to a memcpy of
the inputs and to building the broker's profile. See bench/README.md.

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

bench_inproc rules_bench --seconds "$SECONDS_PER"
