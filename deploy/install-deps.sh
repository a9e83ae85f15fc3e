#!/usr/bin/env bash
# Installs every Debian package lmdm needs to build, test and run the quickstart.
# Non-interactive and idempotent: packages already present are left alone.
# Usage: deploy/install-deps.sh [--check] [--no-browser]
#   --check       only report what is missing, exit 1 if any
#   --no-browser  leave out what only the browser test needs (chromium, nodejs, npm)
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config git
  libnghttp2-dev libssl-dev libpq-dev libjansson-dev libsodium-dev
  libevent-dev libplist-dev libhttp-parser-dev libcurl4-openssl-dev
  postgresql postgresql-contrib
  nghttp2-client nghttp2-server curl openssl ca-certificates jq
  tzdata  # time zones of OS-update install times and deadlines (/usr/share/zoneinfo)
)
# The browser test of the owner pages (tests/e2e/test_browser.sh: headless
# Chromium driven by playwright-core from npm).
BROWSER_PACKAGES=(chromium nodejs npm)

CHECK=""
BROWSER=1
for arg in "$@"; do
  case "$arg" in
    -h|--help)
      sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'
      exit 0 ;;
    --check) CHECK=1 ;;
    --no-browser) BROWSER="" ;;
    *) echo "install-deps: unknown option $arg (see --help)" >&2; exit 2 ;;
  esac
done
[ -z "$BROWSER" ] || PACKAGES+=("${BROWSER_PACKAGES[@]}")

# Installed, or provided by an installed package: NodeSource's nodejs, for
# one, provides npm (and conflicts with Debian's), so npm is not asked for then.
installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed" && return 0
  local provided
  provided=$(dpkg-query -W -f='${Status}|${Provides}\n' 2>/dev/null | grep '^install ok installed|' || true)
  grep -Eq "[|,] ?$1( |,|\$)" <<<"$provided"
}

missing=()
for p in "${PACKAGES[@]}"; do
  installed "$p" || missing+=("$p")
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi
if [ -n "$CHECK" ]; then
  echo "install-deps: missing: ${missing[*]}"
  exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  # sudo only where it can work: a terminal to ask for a password, or none needed.
  if command -v sudo >/dev/null 2>&1 && { [ -t 0 ] || sudo -n true 2>/dev/null; }; then
    SUDO="sudo"
  else
    echo "install-deps: missing: ${missing[*]}" >&2
    echo "install-deps: installing them needs root; run: sudo $0${*:+ $*}" >&2
    exit 1
  fi
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
