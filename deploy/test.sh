#!/usr/bin/env bash
# Builds lmdm with warnings as errors and runs the whole test suite: unit,
# integration and end-to-end tests. The tests start their own private
# PostgreSQL (the ctest fixture pg.start / pg.stop) and stop it at the end.
# Exits with ctest's status. CI runs exactly this (.ci/run).
set -euo pipefail

PROG=${0##*/}
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

usage() {
    cat <<EOF
Usage: $PROG [--sanitize] [-R REGEX] [-j N]

Builds into build-test/ (LMDM_WERROR=ON) and runs ctest --output-on-failure.
Missing Debian packages are installed first (deploy/install-deps.sh; needs
root or sudo). Works as root (PostgreSQL then runs as the system user 'lmdm')
and as an ordinary user.

Options:
  --sanitize   build with AddressSanitizer and UBSan (LMDM_SANITIZE=ON) into
               build-test-sanitize/ instead
  -R REGEX     run only the tests whose names match REGEX (ctest -R), e.g.
               -R unit. or -R e2e.test_h2; the PostgreSQL fixture is added
               automatically when a selected test needs it
  -j N         tests run in parallel (default 2)
  -h, --help   this help
EOF
}

die() {
    echo "$PROG: $*" >&2
    exit 1
}

SANITIZE=0
REGEX=""
JOBS=2
while [ "$#" -gt 0 ]; do
    case "$1" in
        -h | --help) usage; exit 0 ;;
        --sanitize) SANITIZE=1 ;;
        -R)
            [ "$#" -ge 2 ] || die "-R needs a REGEX"
            REGEX=$2
            shift ;;
        -R*) REGEX=${1#-R} ;;
        -j)
            [ "$#" -ge 2 ] || die "-j needs a number"
            JOBS=$2
            shift ;;
        -j*) JOBS=${1#-j} ;;
        *) echo "$PROG: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
case "$JOBS" in '' | *[!0-9]* | 0) die "-j needs a positive number, not '$JOBS'" ;; esac

# ---------------------------------------------------------------- packages

# Installs only what is missing (via sudo when not root), or says what to run.
"$SRC/deploy/install-deps.sh" || exit 1

# ------------------------------------------------------------------- build

if [ "$SANITIZE" -eq 1 ]; then
    BUILD=$SRC/build-test-sanitize
    CMAKE_OPTS=(-DLMDM_WERROR=ON -DLMDM_SANITIZE=ON)
    # Report every finding with a stack and fail the test that triggered it.
    export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:halt_on_error=1:detect_stack_use_after_return=1:strict_string_checks=1}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
else
    BUILD=$SRC/build-test
    CMAKE_OPTS=(-DLMDM_WERROR=ON -DLMDM_SANITIZE=OFF)
fi
NPROC=$(nproc 2>/dev/null || echo 2)

echo "==> configuring $BUILD"
if [ -f "$BUILD/CMakeCache.txt" ]; then
    cmake -S "$SRC" -B "$BUILD" "${CMAKE_OPTS[@]}" >/dev/null
else
    cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo "${CMAKE_OPTS[@]}"
fi
echo "==> building (warnings are errors)"
cmake --build "$BUILD" -j "$NPROC"

# -------------------------------------------------------------------- test

CTEST_OPTS=(--output-on-failure -j "$JOBS")
[ -n "$REGEX" ] && CTEST_OPTS+=(-R "$REGEX")
echo "==> ctest ${CTEST_OPTS[*]}"
rc=0
(cd "$BUILD" && ctest "${CTEST_OPTS[@]}") || rc=$?
if [ "$rc" -eq 0 ]; then
    echo "==> all tests passed"
else
    echo "==> tests FAILED (ctest exit status $rc); logs: $BUILD/Testing/Temporary/LastTest.log" >&2
fi
exit "$rc"
