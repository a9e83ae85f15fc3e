/* Token buckets per tenant (see lmdm/ratelimit.h). An open-addressing table
 * that grows; tenants are few (hundreds), so this stays small. */
#include "lmdm/ratelimit.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct {
    int64_t key;    /* 0 = empty slot (tenant ids start at 1) */
    double tokens;
    uint64_t last_ns;
} bucket_t;

struct lmdm_ratelimit {
    pthread_mutex_t mu;
    double rate, burst;
    bucket_t *slots;
    size_t cap, used;
};

lmdm_ratelimit_t *lmdm_ratelimit_new(int rate, int burst)
{
    lmdm_ratelimit_t *rl = calloc(1, sizeof(*rl));
    if (!rl) return NULL;
    rl->cap = 64;
    rl->slots = calloc(rl->cap, sizeof(bucket_t));
    if (!rl->slots) {
        free(rl);
        return NULL;
    }
    pthread_mutex_init(&rl->mu, NULL);
    rl->rate = rate > 0 ? rate : 1;
    rl->burst = burst > 0 ? burst : 1;
    return rl;
}

void lmdm_ratelimit_free(lmdm_ratelimit_t *rl)
{
    if (!rl) return;
    pthread_mutex_destroy(&rl->mu);
    free(rl->slots);
    free(rl);
}

static bucket_t *find(bucket_t *slots, size_t cap, int64_t key)
{
    size_t i = (size_t)((uint64_t)key * 0x9E3779B97F4A7C15ull) & (cap - 1);
    while (slots[i].key != 0 && slots[i].key != key) i = (i + 1) & (cap - 1);
    return &slots[i];
}

static int grow(lmdm_ratelimit_t *rl)
{
    size_t ncap = rl->cap * 2;
    bucket_t *n = calloc(ncap, sizeof(bucket_t));
    if (!n) return -1;
    for (size_t i = 0; i < rl->cap; i++)
        if (rl->slots[i].key) *find(n, ncap, rl->slots[i].key) = rl->slots[i];
    free(rl->slots);
    rl->slots = n;
    rl->cap = ncap;
    return 0;
}

int lmdm_ratelimit_take(lmdm_ratelimit_t *rl, int64_t key, uint64_t now_ns)
{
    int wait = 0;
    pthread_mutex_lock(&rl->mu);
    if ((rl->used + 1) * 2 > rl->cap && grow(rl) != 0) {
        pthread_mutex_unlock(&rl->mu);
        return 0; /* out of memory: do not refuse service over bookkeeping */
    }
    bucket_t *b = find(rl->slots, rl->cap, key);
    if (b->key == 0) {
        b->key = key;
        b->tokens = rl->burst;
        b->last_ns = now_ns;
        rl->used++;
    }
    if (now_ns > b->last_ns) {
        b->tokens += (double)(now_ns - b->last_ns) / 1e9 * rl->rate;
        if (b->tokens > rl->burst) b->tokens = rl->burst;
        b->last_ns = now_ns;
    }
    if (b->tokens >= 1.0) b->tokens -= 1.0;
    else {
        double secs = (1.0 - b->tokens) / rl->rate;
        wait = (int)secs + 1;
    }
    pthread_mutex_unlock(&rl->mu);
    return wait;
}
