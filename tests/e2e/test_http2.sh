#!/usr/bin/env bash
# HTTP/2 over TLS (ALPN h2) and h2c prior knowledge: many streams on one
# connection, the same router and answers as HTTP/1.1, limits per stream.
. "$(dirname "$0")/lib.sh"
e2e_start "max_body_size = 64k" "max_header_size = 4k" "max_streams = 8"

v=$(curl -s --http2 --cacert "$CA" -o /dev/null -w '%{http_version} %{http_code}' "$TLS_URL/healthz")
expect_eq "$v" "2 200" "TLS + ALPN h2"
v=$(curl -s --http2-prior-knowledge -o /dev/null -w '%{http_version} %{http_code}' "$PLAIN_URL/healthz")
expect_eq "$v" "2 200" "h2c prior knowledge"
body=$(curl -s --http2-prior-knowledge "$PLAIN_URL/healthz")
expect_eq "$body" '{"status":"ok"}' "same body as HTTP/1.1"
r=$(curl -s --http2-prior-knowledge -w ' %{http_code}' "$PLAIN_URL/nope")
expect_contains "$r" '"error":"not_found"' "same router: not_found"

# 40 requests multiplexed on one connection (nghttp -m), more than max_streams at once.
out=$(nghttp -n -s -m 40 "$PLAIN_URL/healthz" 2>&1 || true)
n=$(printf '%s\n' "$out" | grep -c "/healthz" || true)
expect_eq "$n" 40 "40 streams on one h2c connection complete"
out=$(nghttp -n -v "https://localhost:$TLS_PORT/healthz" 2>&1 || true)
expect_contains "$out" "SETTINGS_MAX_CONCURRENT_STREAMS(0x03):8" "server advertises max_streams"

# Limits per stream.
big=$(head -c 6000 /dev/zero | tr '\0' 'a')
expect_eq "$(curl -s --http2-prior-knowledge -o /dev/null -w '%{http_code}' -H "X-Big: $big" "$PLAIN_URL/healthz")" 431 "h2 oversize headers -> 431"
head -c 100000 /dev/zero >"$T/big.bin"
expect_eq "$(curl -s --http2-prior-knowledge -o /dev/null -w '%{http_code}' -X PUT --data-binary @"$T/big.bin" "$PLAIN_URL/nope")" 413 "h2 oversize body -> 413"
expect_eq "$(code --http2 -X PUT --data-binary @"$T/big.bin" "$TLS_URL/nope")" 413 "h2 over TLS oversize body -> 413"
head -c 1000 /dev/zero >"$T/small.bin"
expect_eq "$(curl -s --http2-prior-knowledge -o /dev/null -w '%{http_code}' -X PUT --data-binary @"$T/small.bin" "$PLAIN_URL/nope")" 404 "h2 small body accepted and routed"

# The connection survives an early 413: the next request on it still works.
out=$(curl -s --http2-prior-knowledge -o /dev/null -w '%{http_code} %{num_connects}\n' \
  -X PUT --data-binary @"$T/big.bin" "$PLAIN_URL/nope" \
  --next -o /dev/null -w '%{http_code} %{num_connects}\n' "$PLAIN_URL/healthz" || true)
expect_eq "$(echo "$out" | sed -n 2p)" "200 0" "connection reused after an early 413"

# Garbage after the preface: the server answers with GOAWAY and closes, and keeps serving others.
printf 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x04\x99\x00\x00\x00\x00\x00garbage-garbage' >"$T/bad.bin"
timeout 5 bash -c "cat '$T/bad.bin' > /dev/tcp/127.0.0.1/$PLAIN_PORT" || true
expect_eq "$(curl -s --http2-prior-knowledge -o /dev/null -w '%{http_code}' "$PLAIN_URL/healthz")" 200 "still serving after a bad h2 client"

e2e_finish
