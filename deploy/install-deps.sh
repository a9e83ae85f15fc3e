#!/usr/bin/env bash
# Installs every Debian package lmdm needs to build, test and run the quickstart.
# Non-interactive and idempotent: packages already present are left alone.
# Usage: deploy/install-deps.sh [--check]   (--check: only report what is missing, exit 1 if any)
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config git
  libnghttp2-dev libssl-dev libpq-dev libjansson-dev libsodium-dev
  libevent-dev libplist-dev libhttp-parser-dev libcurl4-openssl-dev
  postgresql postgresql-contrib
  nghttp2-client nghttp2-server curl openssl ca-certificates
)

case "${1:-}" in
  -h|--help)
    sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'
    exit 0 ;;
esac

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi
if [ "${1:-}" = "--check" ]; then
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
    echo "install-deps: installing them needs root; run: sudo $0" >&2
    exit 1
  fi
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
