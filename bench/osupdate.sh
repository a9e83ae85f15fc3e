#!/usr/bin/env bash
# OS update plan benchmark of lmdm (see bench/README.md, issue 7): the plans
# of 100,000 devices with 3 tenants each against a SOFA-sized iOS release
# list, in-process on one core: plans per second, total time, peak RSS and
# bytes per device, next to lmdm_rules_merge of the same devices' 3 tenants'
# passcode rules measured in the same run. No database, no server.
set -euo pipefail

PROG=${0##*/}
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$SRC/bench/lib.sh"

DEVICES=100000
ROUNDS=3

usage() {
    cat <<USAGE
Usage: $PROG [options]

In-process OS update plans for many devices, pinned to one core, next to the
merge of the same devices' passcode rules. See bench/README.md.

Options:
  --devices N      devices (default $DEVICES)
  --rounds R       rounds; the best counts (default $ROUNDS)
  --build-dir DIR  build directory (default: \$LMDM_BUILD_DIR or build/)
  --no-build       use the binary already in the build directory
  --no-pin         do not pin to one CPU
  -h, --help       this help
USAGE
}

while [ "$#" -gt 0 ]; do
    case "$1" in
        --devices) DEVICES=${2:-}; posint "$DEVICES" --devices; shift ;;
        --rounds) ROUNDS=${2:-}; posint "$ROUNDS" --rounds; shift ;;
        *) bench_option "$@"; shift $((BENCH_ARGS - 1)) ;;
    esac
    shift
done

bench_inproc osupdate_bench --devices "$DEVICES" --rounds "$ROUNDS"
