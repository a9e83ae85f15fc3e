#!/usr/bin/env bash
# Runs a development lmdm broker on this machine, from this checkout:
# installs missing Debian packages, builds, sets up ./var/ (a private
# PostgreSQL cluster on a unix socket, a development CA and certificate, a
# config file), applies the migrations and runs `lmdm serve` in the foreground.
# Ctrl-C stops the broker and PostgreSQL; running it again reuses ./var/.
set -euo pipefail

PROG=${0##*/}
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VAR=$SRC/var
CONF=$VAR/lmdm.conf
BUILD=${LMDM_BUILD_DIR:-$SRC/build}
case "$BUILD" in /*) ;; *) BUILD=$SRC/$BUILD ;; esac
LMDM=$BUILD/lmdm
TLS_PORT=${LMDM_TLS_PORT:-8443}
PLAIN_PORT=${LMDM_PLAIN_PORT:-8080}
RUN_USER=lmdm # when run as root, PostgreSQL and the broker run as this system user

usage() {
    cat <<EOF
Usage: $PROG [--no-build]

Runs a development lmdm broker from this checkout ($SRC):
  1. installs missing Debian packages (deploy/install-deps.sh; needs root or sudo),
  2. builds into ${BUILD#"$SRC"/}/ (cmake, RelWithDebInfo),
  3. sets up var/: a PostgreSQL cluster in var/pg (unix socket only), the database
     'lmdm', a development CA and TLS certificate in var/certs, and var/lmdm.conf
     (written once; edit it freely, delete it to get a fresh one),
  4. applies the migrations and runs 'lmdm serve' in the foreground.
Ctrl-C (or SIGTERM) stops the broker gracefully, then PostgreSQL. Running this
again reuses var/ and its data.

Run as root, PostgreSQL and the broker run as the system user '$RUN_USER' (created
if needed); as an ordinary user, they run as you.

Options:
  --no-build   use the existing ${BUILD#"$SRC"/}/lmdm without building
  -h, --help   this help

Environment (read when var/lmdm.conf is first written):
  LMDM_TLS_PORT    TLS port on 127.0.0.1 (default 8443)
  LMDM_PLAIN_PORT  plaintext (h2c, HTTP/1.1) port on 127.0.0.1 (default 8080)
  LMDM_BUILD_DIR   build directory (default: build)
EOF
}

say() { echo "==> $*"; }
die() {
    echo "$PROG: $*" >&2
    exit 1
}

BUILD_IT=1
while [ "$#" -gt 0 ]; do
    case "$1" in
        -h | --help) usage; exit 0 ;;
        --no-build) BUILD_IT=0 ;;
        *) echo "$PROG: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
for p in "$TLS_PORT" "$PLAIN_PORT"; do
    case "$p" in '' | *[!0-9]*) die "port '$p' is not a number" ;; esac
    if [ "$p" -lt 1 ] || [ "$p" -gt 65535 ]; then die "port $p is out of range"; fi
done
if [ -n "${LMDM_DATABASE_URL:-}" ]; then
    echo "$PROG: ignoring LMDM_DATABASE_URL: the quickstart uses its own PostgreSQL in var/pg" >&2
    unset LMDM_DATABASE_URL
fi
unset LMDM_CONFIG
IS_ROOT=0
[ "$(id -u)" -eq 0 ] && IS_ROOT=1

# ---------------------------------------------------------------- packages

# Installs only what is missing (via sudo when not root), or says what to run.
"$SRC/deploy/install-deps.sh" --no-browser || exit 1

# ------------------------------------------------------------------- build

if [ "$BUILD_IT" -eq 1 ]; then
    if [ ! -f "$BUILD/CMakeCache.txt" ]; then
        say "configuring $BUILD"
        cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo
    fi
    say "building lmdm"
    cmake --build "$BUILD" --target lmdm -j "$(nproc 2>/dev/null || echo 2)"
fi
[ -x "$LMDM" ] || die "$LMDM not found; run without --no-build"

# ------------------------------------------------------------------ var/

# One quickstart per checkout: a second one would share the cluster and the
# ports, and its exit would stop the first one's PostgreSQL. Long-lived
# children get the lock descriptor closed (9>&-) so that a PostgreSQL left
# behind by a killed run does not keep the lock.
mkdir -p "$VAR"
exec 9>"$VAR/.quickstart.lock"
flock -n 9 || die "another quickstart is already running in $SRC (var/.quickstart.lock)"

# Root runs everything as the owner of an existing cluster (pg.sh does the
# same), else as $RUN_USER: the broker must be able to enter the cluster's
# socket directory, which only its owner can.
RUN_AS=()
if [ "$IS_ROOT" -eq 1 ]; then
    if [ -d "$VAR/pg/data" ]; then
        owner=$(stat -c %U "$VAR/pg/data")
        [ "$owner" = root ] || [ "$owner" = UNKNOWN ] || RUN_USER=$owner
    fi
fi

PG_STARTED=0
LMDM_PID=""
STOPPING=0
GOT_SIGNAL=0

# shellcheck disable=SC2317 # trap handlers
cleanup() {
    local rc=$?
    trap - INT TERM
    if [ -n "$LMDM_PID" ] && kill -0 "$LMDM_PID" 2>/dev/null; then
        kill -TERM "$LMDM_PID" 2>/dev/null || true
        wait "$LMDM_PID" 2>/dev/null || true
    fi
    if [ "$PG_STARTED" -eq 1 ]; then
        say "stopping PostgreSQL"
        bash "$SRC/deploy/pg.sh" stop "$VAR/pg" 9>&- || rc=1
    fi
    exit "$rc"
}
# A signal before the broker runs ends the script (the EXIT trap cleans up).
# Once it runs, the first signal is passed on as SIGTERM (graceful drain); a
# second one stops it at once.
# shellcheck disable=SC2317
on_signal() {
    GOT_SIGNAL=1
    if [ -z "$LMDM_PID" ]; then
        exit 130
    fi
    if [ "$STOPPING" -eq 0 ]; then
        STOPPING=1
        echo "$PROG: stopping lmdm: in-flight requests may finish (up to shutdown_timeout); Ctrl-C again stops it at once" >&2
        kill -TERM "$LMDM_PID" 2>/dev/null || true
    else
        echo "$PROG: stopping lmdm at once" >&2
        kill -KILL "$LMDM_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap on_signal INT TERM

say "PostgreSQL cluster in $VAR/pg"
bash "$SRC/deploy/pg.sh" init "$VAR/pg" 9>&-
PG_STARTED=1
bash "$SRC/deploy/pg.sh" start "$VAR/pg" 9>&-
bash "$SRC/deploy/pg.sh" createdb "$VAR/pg" lmdm 9>&-
CONNINFO=$(bash "$SRC/deploy/pg.sh" conninfo "$VAR/pg" lmdm)

if [ "$IS_ROOT" -eq 1 ]; then
    # pg.sh has created the user if it was missing. setpriv execs the broker
    # directly; runuser would stay as its parent and SIGKILL it 2 s after a
    # SIGTERM, cutting the graceful drain short.
    id -u "$RUN_USER" >/dev/null 2>&1 || die "user '$RUN_USER' does not exist"
    RUN_AS=(setpriv --reuid="$RUN_USER" --regid="$(id -g "$RUN_USER")" --init-groups --)
fi

say "development certificates in $VAR/certs"
bash "$SRC/deploy/dev-certs.sh" "$VAR/certs"

conf_quote() {
    local v=$1
    v=${v//\\/\\\\}
    v=${v//\"/\\\"}
    printf '"%s"' "$v"
}

if [ ! -f "$CONF" ]; then
    say "writing $CONF"
    umask_old=$(umask)
    umask 077
    cat >"$CONF.tmp" <<EOF
# lmdm configuration for the development broker of deploy/quickstart.sh.
# Written once: edit it freely (quickstart.sh never overwrites it; delete it to
# get a fresh one). Every key: deploy/lmdm.conf.example or 'lmdm config --describe'.

listen_tls = "127.0.0.1:$TLS_PORT"
listen_plain = "127.0.0.1:$PLAIN_PORT"
tls_cert = $(conf_quote "$VAR/certs/server.crt")
tls_key = $(conf_quote "$VAR/certs/server.key")

# Devices: the broker CA (created below with 'lmdm ca init') issues device
# identities and signs the enrollment profile served at /enroll.
public_url = "https://localhost:$TLS_PORT"
ca_cert = $(conf_quote "$VAR/ca/ca.crt")
ca_key = $(conf_quote "$VAR/ca/ca.key")
# A real deployment sets the UID of its MDM push certificate and apns_auth =
# certificate; the quickstart sends no pushes.
apns_topic = "com.apple.mgmt.External.quickstart"
apns_auth = off

# Tenants: the master secret (created below with 'lmdm secret init') behind
# API key hashes, pseudonymous enrollment ids and webhook signatures.
secret_key = $(conf_quote "$VAR/secret.key")

# The private cluster in var/pg (unix socket only).
database_url = $(conf_quote "$CONNINFO")
migrations_dir = $(conf_quote "$SRC/migrations")

log_level = info
log_format = text
EOF
    umask "$umask_old"
    mv "$CONF.tmp" "$CONF"
fi
if [ ! -f "$VAR/ca/ca.key" ] && grep -q '^ca_key = ' "$CONF"; then
    say "creating the broker CA in var/ca"
    mkdir -p "$VAR/ca"
    "$LMDM" ca init --config "$CONF"
fi
if [ ! -f "$VAR/secret.key" ] && grep -q '^secret_key = ' "$CONF"; then
    say "creating the master secret var/secret.key"
    "$LMDM" secret init --config "$CONF"
fi
if [ "$IS_ROOT" -eq 1 ]; then
    [ -f "$VAR/ca/ca.key" ] && chown "$RUN_USER:" "$VAR/ca/ca.key" "$VAR/ca/ca.crt" && chmod 711 "$VAR/ca"
    [ -f "$VAR/secret.key" ] && chown "$RUN_USER:" "$VAR/secret.key"
    # The broker reads the config and the server key; nothing else under var/
    # needs to change hands (pg.sh owns var/pg).
    chgrp "$(id -g "$RUN_USER")" "$CONF"
    chmod 640 "$CONF"
    chown "$RUN_USER:" "$VAR/certs/server.key"
    if ! "${RUN_AS[@]}" test -x "$LMDM" -a -r "$CONF" -a -r "$SRC/migrations" -a -r "$VAR/certs/server.key"; then
        p=$SRC blocked=""
        while [ "$p" != / ]; do
            "${RUN_AS[@]}" test -x "$p" || blocked=$p
            p=$(dirname "$p")
        done
        die "user '$RUN_USER' cannot reach this checkout${blocked:+ ($blocked is not traversable by other users)}.
Move the checkout (e.g. under /opt or /srv) or run: chmod o+x ${blocked:-<its parent directories>}"
    fi
fi

"$LMDM" config --check --config "$CONF" >/dev/null ||
    die "$CONF is not valid (see above); fix it or delete it to get a fresh one"

say "applying migrations"
${RUN_AS[@]+"${RUN_AS[@]}"} "$LMDM" migrate --config "$CONF"

# ------------------------------------------------------------------- serve

# "host:port" from the config; a key that is absent has the broker's default.
conf_get() {
    local key=$1 def=$2 line
    if ! grep -qE "^[[:space:]]*${key}[[:space:]]*=" "$CONF"; then
        echo "$def"
        return
    fi
    line=$(grep -E "^[[:space:]]*${key}[[:space:]]*=" "$CONF" | tail -n 1)
    line=${line#*=}
    line=${line%%#*}
    line=$(echo "$line" | tr -d '"' | tr -d '[:space:]')
    echo "$line"
}
url_host() { # listener "host:port" -> host:port usable in a URL on this machine
    local hp=$1 host port
    port=${hp##*:}
    host=${hp%:*}
    case "$host" in
        0.0.0.0) host=127.0.0.1 ;;
        "[::]") host="[::1]" ;;
    esac
    echo "$host:$port"
}
LISTEN_TLS=$(conf_get listen_tls 0.0.0.0:8443)
LISTEN_PLAIN=$(conf_get listen_plain 127.0.0.1:8080)
TLS_BASE="" PLAIN_BASE=""
[ -n "$LISTEN_TLS" ] && TLS_BASE="https://$(url_host "$LISTEN_TLS")"
[ -n "$LISTEN_PLAIN" ] && PLAIN_BASE="http://$(url_host "$LISTEN_PLAIN")"
CA=$VAR/certs/ca.crt
probe() { # probe PATH -> HTTP status of the first listener, "000" if none answers
    if [ -n "$TLS_BASE" ]; then
        curl -s -o /dev/null -w '%{http_code}' --max-time 2 --cacert "$CA" "$TLS_BASE$1" 2>/dev/null || true
    else
        curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$PLAIN_BASE$1" 2>/dev/null || true
    fi
}

# The broker gets its own session: Ctrl-C in the terminal reaches only this
# script, which passes exactly one SIGTERM on.
say "starting lmdm serve${RUN_AS[*]:+ as user $RUN_USER}"
setsid ${RUN_AS[@]+"${RUN_AS[@]}"} "$LMDM" serve --config "$CONF" 9>&- &
LMDM_PID=$!

# Print the URLs once the broker answers, so that they are known to work.
for _ in $(seq 150); do
    if [ "$STOPPING" -eq 1 ] || ! kill -0 "$LMDM_PID" 2>/dev/null; then break; fi
    if [ "$(probe /healthz)" = 200 ]; then
        ready=$(probe /readyz)
        cat <<EOF

lmdm is running (pid $LMDM_PID${RUN_AS[*]:+, user $RUN_USER}); /readyz answers $ready.
EOF
        if [ -n "$TLS_BASE" ]; then
            cat <<EOF
  $TLS_BASE/healthz   process up
  $TLS_BASE/readyz    database reachable and migrated
  $TLS_BASE/metrics   Prometheus metrics
  $TLS_BASE/enroll    enrollment profile (.mobileconfig) for a device
  $TLS_BASE/mdm/checkin, /mdm/connect   the Apple MDM endpoints
      TLS with HTTP/2 or HTTP/1.1 (ALPN); certificate signed by the development CA $CA
EOF
        fi
        if [ -n "$PLAIN_BASE" ]; then
            cat <<EOF
  $PLAIN_BASE/healthz, /readyz, /metrics
      plaintext: HTTP/1.1 or HTTP/2 with prior knowledge (h2c)
EOF
        fi
        echo
        echo "Try:"
        [ -n "$TLS_BASE" ] && echo "  curl --cacert $CA $TLS_BASE/readyz"
        [ -n "$PLAIN_BASE" ] && echo "  curl --http2-prior-knowledge $PLAIN_BASE/metrics"
        cat <<EOF

Config $CONF, data $VAR/pg, broker log below.
Ctrl-C stops lmdm and PostgreSQL; run $PROG again to restart with the same data.

EOF
        break
    fi
    sleep 0.1
done

# `wait` also returns (with 128+n) when a trapped signal arrives; the broker
# may still run then, or may have ended meanwhile, in which case the next
# `wait` returns its saved status (or 127 if that one was already collected).
rc=0 last=""
while :; do
    GOT_SIGNAL=0
    st=0
    wait "$LMDM_PID" || st=$?
    if [ "$GOT_SIGNAL" -eq 1 ] && [ "$st" -gt 128 ]; then
        last=$st
        continue
    fi
    if [ "$st" -eq 127 ] && [ -n "$last" ]; then st=$last; fi
    rc=$st
    break
done
LMDM_PID=""
if [ "$STOPPING" -eq 1 ] && [ "$rc" -eq 0 ]; then
    say "lmdm stopped"
    exit 0
fi
echo "$PROG: lmdm exited with status $rc" >&2
exit "$rc"
