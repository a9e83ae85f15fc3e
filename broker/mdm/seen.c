/* Batched last-seen times: a string set flushed by a timer with one UPDATE. */
#include "lmdm/seen.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "lmdm/buf.h"
#include "lmdm/log.h"

#define SEEN_SLOTS 65536 /* a power of two; a full set is flushed early */

struct lmdm_seen {
    lmdm_worker_t *w;
    struct event *timer;
    int flush_ms;
    char **slots;
    size_t n;
};

static const lmdm_db_stmt_t st_seen = {
    "seen_flush", "UPDATE devices SET last_seen_at = now() WHERE device_key = ANY($1::text[])", 1};

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void flush_done(void *arg, int err, PGresult *res)
{
    if (err) lmdm_debug("last-seen flush failed: %s", lmdm_strerror(err));
}

/* A PostgreSQL text[] literal of the pending keys: {"k1","k2"} with escapes. */
static void flush(lmdm_seen_t *s)
{
    if (!s->n) return;
    lmdm_buf_t b = {0};
    lmdm_buf_puts(&b, "{");
    size_t k = 0;
    for (size_t i = 0; i < SEEN_SLOTS; i++) {
        char *key = s->slots[i];
        if (!key) continue;
        lmdm_buf_puts(&b, k++ ? ",\"" : "\"");
        for (const char *p = key; *p; p++) {
            if (*p == '"' || *p == '\\') lmdm_buf_append(&b, "\\", 1);
            lmdm_buf_append(&b, p, 1);
        }
        lmdm_buf_puts(&b, "\"");
        free(key);
        s->slots[i] = NULL;
    }
    lmdm_buf_puts(&b, "}");
    s->n = 0;
    const char *p[] = {b.data};
    if (s->w->db && lmdm_db_query(s->w->db, &st_seen, 1, p, flush_done, NULL) != 0)
        lmdm_debug("last-seen flush skipped: database unavailable");
    lmdm_buf_free(&b);
}

static void on_timer(evutil_socket_t fd, short what, void *arg) { flush(arg); }

lmdm_seen_t *lmdm_seen_new(lmdm_worker_t *w, int flush_ms)
{
    lmdm_seen_t *s = lmdm_xcalloc(1, sizeof(*s));
    s->w = w;
    s->flush_ms = flush_ms;
    s->slots = lmdm_xcalloc(SEEN_SLOTS, sizeof(char *));
    s->timer = event_new(w->base, -1, EV_PERSIST, on_timer, s);
    struct timeval tv = {flush_ms / 1000, (flush_ms % 1000) * 1000};
    event_add(s->timer, &tv);
    return s;
}

void lmdm_seen_free(lmdm_seen_t *s)
{
    if (!s) return;
    flush(s);
    event_free(s->timer);
    free(s->slots);
    free(s);
}

void lmdm_seen_mark(lmdm_seen_t *s, const char *key)
{
    if (!s) return;
    size_t i = (size_t)hash(key) & (SEEN_SLOTS - 1);
    while (s->slots[i]) {
        if (strcmp(s->slots[i], key) == 0) return;
        i = (i + 1) & (SEEN_SLOTS - 1);
    }
    s->slots[i] = lmdm_xstrdup(key);
    if (++s->n >= SEEN_SLOTS / 2) flush(s); /* keep probing short */
}

size_t lmdm_seen_pending(const lmdm_seen_t *s) { return s ? s->n : 0; }
