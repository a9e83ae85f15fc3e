#!/usr/bin/env bash
# Generates a development CA and a TLS server certificate for lmdm, with the
# openssl command line tool. For development and tests only: the CA key sits
# unencrypted next to the certificates.
set -euo pipefail

PROG=${0##*/}
CA_DAYS=3650     # 10 years
SERVER_DAYS=825  # the longest validity Apple platforms accept for a TLS server certificate
RENEW_DAYS=30    # certificates expiring sooner than this are replaced
RUN_USER=lmdm    # when run as root, the server key is handed to this user if it exists

usage() {
    cat <<EOF
Usage: $PROG [--force] DIR

Creates, in DIR (created if needed):
  ca.key, ca.crt          a development certificate authority (EC P-256, $CA_DAYS days)
  server.key, server.crt  a TLS server certificate signed by that CA (EC P-256,
                          $SERVER_DAYS days) for DNS:localhost, IP:127.0.0.1, IP:::1
                          and this machine's host name ($(hostname 2>/dev/null || echo '?'))

Idempotent: files that are present, valid, matching and not expiring within
$RENEW_DAYS days are kept; anything else is (re)generated. A new CA always
brings a new server certificate. Keys are mode 600; run as root, server.key
is owned by the user '$RUN_USER' if it exists (the broker runs as that user
and must read it; it never needs ca.key, which stays with root).

Clients trust the server with the CA, e.g.:
  curl --cacert DIR/ca.crt https://localhost:8443/healthz

Options:
  --force     regenerate everything
  -h, --help  this help
EOF
}

die() {
    echo "$PROG: $*" >&2
    exit 1
}

FORCE=0
DIR=""
while [ "$#" -gt 0 ]; do
    case "$1" in
        -h | --help) usage; exit 0 ;;
        --force) FORCE=1 ;;
        --) shift; [ "$#" -eq 1 ] || die "expected exactly one DIR (see --help)"; DIR=$1 ;;
        -*) die "unknown option '$1' (see --help)" ;;
        *) [ -z "$DIR" ] || die "expected exactly one DIR (see --help)"; DIR=$1 ;;
    esac
    shift
done
[ -n "$DIR" ] || { usage >&2; exit 2; }
command -v openssl >/dev/null 2>&1 || die "openssl not found (run deploy/install-deps.sh)"

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)

# Names the server certificate must cover. The host name is added only when
# it is a plain DNS name (it is what other machines on a LAN would use).
HOST=$(hostname 2>/dev/null || uname -n)
DNS_NAMES=(localhost)
if [[ "$HOST" =~ ^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]] && [ "$HOST" != localhost ]; then
    DNS_NAMES+=("$HOST")
fi
IPS=(127.0.0.1 ::1)

# Fresh files are written next to the final ones, then renamed, so that an
# interrupted run never leaves a half-written key behind. Keys are created
# with mode 600 from the start.
umask 077
TMP=$(mktemp -d "$DIR/.dev-certs.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

pubkey_of_key() { openssl pkey -in "$1" -pubout 2>/dev/null; }
pubkey_of_cert() { openssl x509 -in "$1" -noout -pubkey 2>/dev/null; }

# cert_ok CERT KEY: both exist, the key belongs to the certificate, and the
# certificate does not expire within RENEW_DAYS.
cert_ok() {
    local cert=$1 key=$2 a b
    [ -s "$cert" ] && [ -s "$key" ] || return 1
    a=$(pubkey_of_key "$key") || return 1
    b=$(pubkey_of_cert "$cert") || return 1
    [ -n "$a" ] && [ "$a" = "$b" ] || return 1
    openssl x509 -in "$cert" -noout -checkend $((RENEW_DAYS * 86400)) >/dev/null 2>&1
}

server_ok() {
    cert_ok "$DIR/server.crt" "$DIR/server.key" || return 1
    openssl verify -CAfile "$DIR/ca.crt" "$DIR/server.crt" >/dev/null 2>&1 || return 1
    local n
    for n in "${DNS_NAMES[@]}"; do
        openssl x509 -in "$DIR/server.crt" -noout -checkhost "$n" 2>/dev/null | grep -q "does match" || return 1
    done
    for n in "${IPS[@]}"; do
        openssl x509 -in "$DIR/server.crt" -noout -checkip "$n" 2>/dev/null | grep -q "does match" || return 1
    done
}

new_key() {
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null ||
        die "cannot generate an EC P-256 key"
}

make_ca() {
    echo "$PROG: generating a development CA in $DIR"
    new_key "$TMP/ca.key"
    openssl req -x509 -new -sha256 -key "$TMP/ca.key" -days "$CA_DAYS" \
        -subj "/O=lmdm development/CN=lmdm development CA ($HOST)" \
        -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" \
        -out "$TMP/ca.crt" 2>"$TMP/err" || { cat "$TMP/err" >&2; die "cannot create the CA certificate"; }
    chmod 644 "$TMP/ca.crt"
    mv -f "$TMP/ca.key" "$DIR/ca.key"
    mv -f "$TMP/ca.crt" "$DIR/ca.crt"
}

make_server() {
    local san="" n
    for n in "${DNS_NAMES[@]}"; do san+="${san:+,}DNS:$n"; done
    for n in "${IPS[@]}"; do san+="${san:+,}IP:$n"; done
    echo "$PROG: generating a server certificate for $san"
    new_key "$TMP/server.key"
    openssl req -new -sha256 -key "$TMP/server.key" -subj "/O=lmdm development/CN=localhost" \
        -out "$TMP/server.csr" 2>"$TMP/err" || { cat "$TMP/err" >&2; die "cannot create the certificate request"; }
    cat >"$TMP/ext.cnf" <<EOF
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = $san
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
    openssl x509 -req -sha256 -in "$TMP/server.csr" -CA "$DIR/ca.crt" -CAkey "$DIR/ca.key" \
        -set_serial "0x$(openssl rand -hex 16)" -days "$SERVER_DAYS" -extfile "$TMP/ext.cnf" \
        -out "$TMP/server.crt" 2>"$TMP/err" || { cat "$TMP/err" >&2; die "cannot sign the server certificate"; }
    chmod 644 "$TMP/server.crt"
    mv -f "$TMP/server.key" "$DIR/server.key"
    mv -f "$TMP/server.crt" "$DIR/server.crt"
}

changed=0
if [ "$FORCE" -eq 1 ] || ! cert_ok "$DIR/ca.crt" "$DIR/ca.key"; then
    make_ca
    make_server
    changed=1
elif ! server_ok; then
    make_server
    changed=1
fi

chmod 600 "$DIR/ca.key" "$DIR/server.key"
chmod 644 "$DIR/ca.crt" "$DIR/server.crt"
if [ "$(id -u)" -eq 0 ] && id -u "$RUN_USER" >/dev/null 2>&1; then
    chown "$RUN_USER:" "$DIR/server.key"
fi

if [ "$changed" -eq 0 ]; then
    echo "$PROG: certificates in $DIR are present and valid; kept"
fi
echo "$PROG: CA $DIR/ca.crt, server certificate $DIR/server.crt, key $DIR/server.key"
