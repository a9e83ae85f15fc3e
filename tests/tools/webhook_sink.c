/* webhook-sink: a loopback webhook receiver for tests.
 *
 * Usage (stable: the e2e tests depend on it):
 *   webhook-sink --port N --pubkey BASE64 --out FILE [--fail-first N] [--status CODE]
 *
 *   --port N        listen on 127.0.0.1:N; 0 picks a free port. Either way the
 *                   first line on stdout is "listening 127.0.0.1:PORT" once the
 *                   socket accepts connections.
 *   --pubkey B64    the broker's Ed25519 public key, standard base64 (what
 *                   GET /v1/keys and lmdm_secrets_public_b64 give)
 *   --out FILE      lines are appended here (see below); created if absent
 *   --fail-first N  answer 500 to the first N correctly signed requests
 *   --status CODE   answer CODE (default 200) to the others
 *
 * Every request is checked: Lmdm-Signature must be "ed25519=<base64>" and
 * verify over "<Lmdm-Timestamp>.<body>" with the public key, and the
 * timestamp must be within 300 s of the sink's clock. One line per request:
 *   <event> <delivery> <body>          signed, answered 2xx (a delivery)
 *   REFUSED <code> <event> <delivery>  signed, answered non-2xx (--fail-first, --status)
 *   BADSIG <event> <delivery> <why>    not verified, answered 401
 * where <event> is Lmdm-Event, <delivery> is Lmdm-Delivery ("-" if absent) and
 * <body> is the JSON body on one line. Each line is written with one write(2)
 * before the answer is sent, so a reader that saw the answer sees the line.
 *
 * One connection at a time, one request per connection (Connection: close),
 * HTTP/1.1 parsed with http_parser. Runs until killed. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <signal.h>
#include <sodium.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "lmdm/buf.h"

#define BODY_MAX (4 * 1024 * 1024)
#define HEADER_MAX 256
#define SKEW_S 300

typedef struct request {
    lmdm_buf_t field, value; /* the header being read (may arrive in pieces) */
    int in_value;
    char event[HEADER_MAX], delivery[HEADER_MAX], timestamp[HEADER_MAX], signature[HEADER_MAX];
    lmdm_buf_t body;
    int too_big;
    int complete;
} request_t;

static void keep_header(request_t *q)
{
    static const struct {
        const char *name;
        size_t off;
    } wanted[] = {{"Lmdm-Event", offsetof(request_t, event)},
                  {"Lmdm-Delivery", offsetof(request_t, delivery)},
                  {"Lmdm-Timestamp", offsetof(request_t, timestamp)},
                  {"Lmdm-Signature", offsetof(request_t, signature)}};
    for (size_t i = 0; q->field.data && i < sizeof wanted / sizeof wanted[0]; i++)
        if (strcasecmp(q->field.data, wanted[i].name) == 0)
            snprintf((char *)q + wanted[i].off, HEADER_MAX, "%s", q->value.data ? q->value.data : "");
    lmdm_buf_free(&q->field);
    lmdm_buf_free(&q->value);
    q->in_value = 0;
}

static int on_field(http_parser *p, const char *at, size_t n)
{
    request_t *q = p->data;
    if (q->in_value) keep_header(q);
    lmdm_buf_append(&q->field, at, n);
    return q->field.len > HEADER_MAX;
}

static int on_value(http_parser *p, const char *at, size_t n)
{
    request_t *q = p->data;
    q->in_value = 1;
    lmdm_buf_append(&q->value, at, n);
    return q->value.len > HEADER_MAX;
}

static int on_headers_complete(http_parser *p)
{
    request_t *q = p->data;
    if (q->in_value) keep_header(q);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    request_t *q = p->data;
    if (q->body.len + n > BODY_MAX) {
        q->too_big = 1;
        return 1;
    }
    lmdm_buf_append(&q->body, at, n);
    return 0;
}

static int on_complete(http_parser *p)
{
    ((request_t *)p->data)->complete = 1;
    return 0;
}

/* Read one request; 0 when complete. */
static int read_request(int fd, request_t *q)
{
    http_parser_settings s = {0};
    s.on_header_field = on_field;
    s.on_header_value = on_value;
    s.on_headers_complete = on_headers_complete;
    s.on_body = on_body;
    s.on_message_complete = on_complete;
    http_parser p;
    http_parser_init(&p, HTTP_REQUEST);
    p.data = q;
    char buf[16384];
    while (!q->complete) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        size_t used = http_parser_execute(&p, &s, buf, (size_t)n);
        if (p.http_errno != HPE_OK || (used != (size_t)n && !q->complete)) return -1;
    }
    return 0;
}

/* NULL if the request is signed correctly, else why not. */
static const char *check_signature(const request_t *q, const unsigned char pk[crypto_sign_PUBLICKEYBYTES])
{
    if (!q->timestamp[0]) return "no-timestamp";
    char *end;
    long long ts = strtoll(q->timestamp, &end, 10);
    if (*end || end == q->timestamp) return "bad-timestamp";
    long long now = (long long)time(NULL);
    if (ts < now - SKEW_S || ts > now + SKEW_S) return "stale-timestamp";
    if (strncmp(q->signature, "ed25519=", 8) != 0) return "no-signature";
    unsigned char sig[crypto_sign_BYTES];
    size_t siglen = 0;
    const char *b64 = q->signature + 8;
    if (sodium_base642bin(sig, sizeof sig, b64, strlen(b64), NULL, &siglen, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        siglen != sizeof sig)
        return "bad-signature-encoding";
    lmdm_buf_t msg = {0};
    lmdm_buf_printf(&msg, "%s.", q->timestamp);
    if (q->body.len) lmdm_buf_append(&msg, q->body.data, q->body.len);
    int bad = crypto_sign_verify_detached(sig, (const unsigned char *)msg.data, msg.len, pk);
    lmdm_buf_free(&msg);
    return bad ? "signature-mismatch" : NULL;
}

static void append_line(int out, lmdm_buf_t *line)
{
    lmdm_buf_puts(line, "\n");
    if (write(out, line->data, line->len) != (ssize_t)line->len) perror("webhook-sink: write");
}

static void answer(int fd, int status)
{
    char resp[160];
    const char *reason = status >= 200 && status < 300 ? "OK" : status == 401 ? "Unauthorized" : "Refused";
    int n = snprintf(resp, sizeof resp, "HTTP/1.1 %d %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                     status, reason);
    if (write(fd, resp, (size_t)n) != n) perror("webhook-sink: answer");
}

typedef struct sink {
    unsigned char pk[crypto_sign_PUBLICKEYBYTES];
    int out;
    int fail_first;
    int status;
    int signed_seen;
} sink_t;

static void serve_one(sink_t *k, int fd)
{
    request_t q = {0};
    if (read_request(fd, &q) != 0) {
        answer(fd, q.too_big ? 413 : 400);
        goto done;
    }
    const char *event = q.event[0] ? q.event : "-", *delivery = q.delivery[0] ? q.delivery : "-";
    lmdm_buf_t line = {0};
    const char *why = check_signature(&q, k->pk);
    int status;
    if (why) {
        status = 401;
        lmdm_buf_printf(&line, "BADSIG %s %s %s", event, delivery, why);
    } else {
        status = k->signed_seen++ < k->fail_first ? 500 : k->status;
        if (status >= 200 && status < 300) {
            lmdm_buf_printf(&line, "%s %s ", event, delivery);
            for (size_t i = 0; i < q.body.len; i++) /* JSON allows any whitespace here */
                q.body.data[i] = q.body.data[i] == '\n' || q.body.data[i] == '\r' ? ' ' : q.body.data[i];
            if (q.body.len) lmdm_buf_append(&line, q.body.data, q.body.len);
        } else {
            lmdm_buf_printf(&line, "REFUSED %d %s %s", status, event, delivery);
        }
    }
    append_line(k->out, &line);
    lmdm_buf_free(&line);
    answer(fd, status);
done:
    lmdm_buf_free(&q.field);
    lmdm_buf_free(&q.value);
    lmdm_buf_free(&q.body);
}

static int listen_on(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 64) != 0) {
        perror("webhook-sink: listen");
        exit(1);
    }
    socklen_t len = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &len);
    printf("listening 127.0.0.1:%d\n", ntohs(sa.sin_port));
    fflush(stdout);
    return fd;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: webhook-sink --port N --pubkey BASE64 --out FILE [--fail-first N] [--status CODE]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"port", required_argument, NULL, 'p'},   {"pubkey", required_argument, NULL, 'k'},
        {"out", required_argument, NULL, 'o'},    {"fail-first", required_argument, NULL, 'f'},
        {"status", required_argument, NULL, 's'}, {NULL, 0, NULL, 0}};
    sink_t k = {.status = 200, .out = -1};
    int port = -1, have_key = 0;
    const char *out = NULL;
    for (int c; (c = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
        size_t len = 0;
        switch (c) {
        case 'p': port = atoi(optarg); break;
        case 'k':
            have_key = sodium_base642bin(k.pk, sizeof k.pk, optarg, strlen(optarg), NULL, &len, NULL,
                                         sodium_base64_VARIANT_ORIGINAL) == 0 &&
                       len == sizeof k.pk;
            break;
        case 'o': out = optarg; break;
        case 'f': k.fail_first = atoi(optarg); break;
        case 's': k.status = atoi(optarg); break;
        default: usage();
        }
    }
    if (port < 0 || port > 65535 || !have_key || !out || k.status < 100 || k.status > 599) usage();
    if (sodium_init() < 0) return 1;
    signal(SIGPIPE, SIG_IGN);
    k.out = open(out, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (k.out < 0) {
        perror(out);
        return 1;
    }
    int lfd = listen_on(port);
    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR) continue;
            perror("webhook-sink: accept");
            return 1;
        }
        struct timeval tv = {5, 0}; /* a stuck client must not stop the others for long */
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        serve_one(&k, fd);
        close(fd);
    }
}
