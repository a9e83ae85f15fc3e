/* libFuzzer target: raw bytes from a client into the connection layer.
 *
 * The input is written into one end of a socketpair whose other end the broker
 * serves as an accepted plaintext connection, so the real sniffing, HTTP/1.1
 * (http_parser) and HTTP/2 (nghttp2) framings, limits and router all run.
 * Inputs starting with the HTTP/2 preface exercise h2c; others HTTP/1.1. */
#include <event2/event.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lmdm/config.h"
#include "lmdm/log.h"
#include "lmdm/ops.h"
#include "lmdm/server.h"

static lmdm_server_t *srv;
static lmdm_router_t *router;
static lmdm_config_t cfg;

static void setup(void)
{
    char err[256];
    lmdm_log_setup(LMDM_LOG_OFF, LMDM_LOG_TEXT);
    lmdm_config_defaults(&cfg);
    free(cfg.listen_tls);
    free(cfg.listen_plain);
    free(cfg.database_url);
    cfg.listen_tls = strdup("");
    cfg.listen_plain = strdup("");
    cfg.database_url = strdup(""); /* no pool: /readyz answers 503 */
    cfg.workers = 1;
    cfg.max_header_size = 4096;
    cfg.max_body_size = 65536;
    cfg.max_streams = 16;
    router = lmdm_router_new();
    if (lmdm_ops_routes(router) != 0) abort();
    srv = lmdm_server_new(&cfg, NULL, router, 1, err, sizeof(err));
    if (!srv) abort();
}

static void pump(struct event_base *base, int fd, int rounds)
{
    char sink[65536];
    for (int i = 0; i < rounds; i++) {
        event_base_loop(base, EVLOOP_NONBLOCK);
        while (read(fd, sink, sizeof(sink)) > 0) {
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!srv) setup();
    lmdm_worker_t *w = lmdm_server_worker(srv, 0);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0) return 0;
    lmdm_server_adopt(w, sv[0]);
    size_t off = 0;
    while (off < size) {
        ssize_t n = write(sv[1], data + off, size - off);
        if (n > 0) off += (size_t)n;
        pump(w->base, sv[1], 1);
        if (n <= 0 && off < size) pump(w->base, sv[1], 4);
        if (n < 0) break;
    }
    shutdown(sv[1], SHUT_WR);
    pump(w->base, sv[1], 16);
    close(sv[1]);
    pump(w->base, sv[1], 4);
    return 0;
}
