#!/usr/bin/env bash
# HTTP/1.1 over TLS and plaintext: keep-alive, pipelining, routing errors,
# limits (413, 431, 408), malformed requests, the access log.
. "$(dirname "$0")/lib.sh"
e2e_start "max_body_size = 64k" "max_header_size = 4k" "read_timeout = 1s" "log_level = info"

# TLS with ALPN http/1.1, two requests on one kept-alive connection.
out=$(curl -s --http1.1 --cacert "$CA" -w '%{http_code} %{http_version} %{num_connects}\n' \
  -o /dev/null "$TLS_URL/healthz" -o /dev/null "$TLS_URL/healthz")
expect_eq "$(echo "$out" | sed -n 1p)" "200 1.1 1" "TLS HTTP/1.1 first request"
expect_eq "$(echo "$out" | sed -n 2p)" "200 1.1 0" "TLS HTTP/1.1 second request reuses the connection"

body=$(curl -s --http1.1 "$PLAIN_URL/healthz")
expect_eq "$body" '{"status":"ok"}' "plaintext HTTP/1.1 /healthz body"

# Routing errors with JSON bodies.
r=$(curl -s -w ' %{http_code}' "$PLAIN_URL/nope")
expect_contains "$r" '"error":"not_found"' "unknown path -> not_found"
expect_contains "$r" " 404" "unknown path -> 404"
hdrs=$(curl -s -D - -o /dev/null -X DELETE "$PLAIN_URL/healthz")
expect_contains "$hdrs" "HTTP/1.1 405" "wrong method -> 405"
expect_contains "$hdrs" "allow: GET, HEAD" "405 lists allowed methods"
hdrs=$(curl -s -I "$PLAIN_URL/healthz")
expect_contains "$hdrs" "content-length: 16" "HEAD keeps content-length"

# Pipelining: two requests in one write, answered in order on one connection.
exec 3<>"/dev/tcp/127.0.0.1/$PLAIN_PORT"
printf 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3
resp=$(timeout 5 cat <&3 || true)
exec 3<&-
first=$(printf '%s' "$resp" | grep -n '^HTTP/1.1' | head -1)
second=$(printf '%s' "$resp" | grep '^HTTP/1.1' | sed -n 2p)
expect_contains "$first" "HTTP/1.1 200" "pipelined request 1 answered first"
expect_contains "$second" "HTTP/1.1 404" "pipelined request 2 answered second"

# Malformed request line -> 400 and the connection is closed.
exec 3<>"/dev/tcp/127.0.0.1/$PLAIN_PORT"
printf 'GARBAGE\x01\x02 / HTTP/9\r\n\r\n' >&3
resp=$(timeout 5 cat <&3 || true)
exec 3<&-
expect_contains "$resp" "HTTP/1.1 400" "malformed request -> 400"
expect_contains "$resp" "connection: close" "malformed request closes the connection"

# Oversize headers -> 431.
big=$(head -c 6000 /dev/zero | tr '\0' 'a')
expect_eq "$(curl -s -o /dev/null -w '%{http_code}' -H "X-Big: $big" "$PLAIN_URL/healthz")" 431 "oversize headers -> 431"
expect_eq "$(code --http1.1 -H "X-Big: $big" "$TLS_URL/healthz")" 431 "oversize headers over TLS -> 431"
many=()
for i in $(seq 120); do many+=(-H "X-H$i: v"); done
expect_eq "$(curl -s -o /dev/null -w '%{http_code}' "${many[@]}" "$PLAIN_URL/healthz")" 431 "too many headers -> 431"

# Oversize body -> 413 (Content-Length known, and chunked).
head -c 100000 /dev/zero >"$T/big.bin"
expect_eq "$(curl -s -o /dev/null -w '%{http_code}' -X PUT --data-binary @"$T/big.bin" "$PLAIN_URL/nope")" 413 "oversize body (content-length) -> 413"
expect_eq "$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'Transfer-Encoding: chunked' --data-binary @"$T/big.bin" "$PLAIN_URL/nope")" 413 "oversize body (chunked) -> 413"
expect_eq "$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'Expect: 100-continue' --data-binary @"$T/big.bin" "$PLAIN_URL/nope")" 413 "oversize body with Expect -> 413"
# A body under the limit is read and the request routed.
head -c 1000 /dev/zero >"$T/small.bin"
expect_eq "$(curl -s -o /dev/null -w '%{http_code}' -X PUT --data-binary @"$T/small.bin" "$PLAIN_URL/nope")" 404 "small body is accepted and routed"

# A request that stalls half-way gets 408 after read_timeout.
exec 3<>"/dev/tcp/127.0.0.1/$PLAIN_PORT"
printf 'GET /healthz HTTP/1.1\r\nHost: x\r\n' >&3
resp=$(timeout 5 cat <&3 || true)
exec 3<&-
expect_contains "$resp" "HTTP/1.1 408" "stalled request -> 408"

# The access log has one line per request with route, status and connection id.
sleep 0.2
expect_contains "$(cat "$LOG")" "route=healthz status=200" "access log line"
if grep -q "$big" "$LOG"; then fail "header values must not be logged"; else pass "headers not logged"; fi

e2e_finish
