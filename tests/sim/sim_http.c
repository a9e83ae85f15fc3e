/* The HTTP layer: every request the simulator makes is set up here, whether
 * it runs alone (curl_easy_perform) or among thousands (the fleet's multi
 * handle). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

/* A body larger than this is a broken server, not a device answer. */
#define SIM_HTTP_MAX_BODY (64u << 20)

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    sim_http_resp_t *r = ud;
    size_t n = size * nmemb;
    if (r->len + n > SIM_HTTP_MAX_BODY) return 0; /* curl reports CURLE_WRITE_ERROR */
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 1024;
        while (cap < r->len + n + 1)
            cap *= 2;
        r->body = realloc(r->body, cap);
        if (!r->body) abort();
        r->cap = cap;
    }
    memcpy(r->body + r->len, ptr, n);
    r->len += n;
    r->body[r->len] = '\0';
    return n;
}

CURL *sim_http_prepare(CURL *reuse, const sim_http_opts_t *o, const char *method, const char *url,
                       const void *body, size_t len, struct curl_slist *headers, sim_http_resp_t *resp)
{
    CURL *c = reuse ? reuse : curl_easy_init();
    if (!c) abort();
    if (reuse) curl_easy_reset(c);
    /* Keep the allocation of an earlier response on this slot. */
    resp->len = 0;
    if (resp->body) resp->body[0] = '\0';
    resp->status = 0;
    resp->version = 0;
    resp->code = CURLE_OK;
    resp->content_type[0] = '\0';
    resp->error[0] = '\0';
    curl_slist_free_all(resp->headers);
    resp->headers = headers;

    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, resp->error);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, o->timeout_ms > 0 ? o->timeout_ms : 30000L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(c, CURLOPT_VERBOSE, o->verbose ? 1L : 0L);
    if (headers) curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);

    bool tls = strncmp(url, "https://", 8) == 0;
    long ver = CURL_HTTP_VERSION_1_1;
    if (o->version == SIM_HTTP_2)
        ver = tls ? CURL_HTTP_VERSION_2TLS : CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE;
    else if (o->version == SIM_HTTP_AUTO && tls)
        ver = CURL_HTTP_VERSION_2TLS; /* ALPN decides, like a device's URL session */
    curl_easy_setopt(c, CURLOPT_HTTP_VERSION, ver);
    if (ver == CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE) {
        /* libcurl 7.88 breaks an h2c connection it reuses ("Error in the
         * HTTP2 framing layer", curl #10634, fixed in 7.89): one connection
         * per request. The fleet has its own HTTP/2 client (sim_h2.c). */
        curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L);
        curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
    }
    /* With HTTP/2 many devices' requests share one connection: wait for it
     * rather than opening one per request. */
    curl_easy_setopt(c, CURLOPT_PIPEWAIT, 1L);

    if (o->cacert && *o->cacert) curl_easy_setopt(c, CURLOPT_CAINFO, o->cacert);
    if (o->client_pem) {
        /* The identity travels as a blob: a fleet of thousands of devices
         * needs no files, and curl keeps connections apart per certificate. */
        struct curl_blob blob = {
            .data = (void *)o->client_pem, .len = strlen(o->client_pem), .flags = CURL_BLOB_COPY};
        curl_easy_setopt(c, CURLOPT_SSLCERTTYPE, "PEM");
        curl_easy_setopt(c, CURLOPT_SSLCERT_BLOB, &blob);
        curl_easy_setopt(c, CURLOPT_SSLKEYTYPE, "PEM");
        curl_easy_setopt(c, CURLOPT_SSLKEY_BLOB, &blob);
    }

    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    return c;
}

void sim_http_finish(CURL *c, CURLcode rc, sim_http_resp_t *resp)
{
    resp->code = rc;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
    curl_easy_getinfo(c, CURLINFO_HTTP_VERSION, &resp->version);
    char *ct = NULL;
    curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
    snprintf(resp->content_type, sizeof resp->content_type, "%s", ct ? ct : "");
    curl_off_t us = 0;
    curl_easy_getinfo(c, CURLINFO_TOTAL_TIME_T, &us);
    resp->seconds = (double)us / 1e6;
    if (rc != CURLE_OK && !resp->error[0])
        snprintf(resp->error, sizeof resp->error, "%s", curl_easy_strerror(rc));
    if (rc != CURLE_OK) resp->status = 0;
}

int sim_http_perform(const sim_http_opts_t *o, const char *method, const char *url, const void *body,
                     size_t len, struct curl_slist *headers, sim_http_resp_t *resp)
{
    CURL *c = sim_http_prepare(NULL, o, method, url, body, len, headers, resp);
    CURLcode rc = curl_easy_perform(c);
    sim_http_finish(c, rc, resp);
    curl_easy_cleanup(c);
    return rc == CURLE_OK ? 0 : -1;
}

void sim_http_resp_clear(sim_http_resp_t *resp)
{
    free(resp->body);
    curl_slist_free_all(resp->headers);
    memset(resp, 0, sizeof *resp);
}

const char *sim_http_version_name(long v)
{
    switch (v) {
    case CURL_HTTP_VERSION_1_0: return "HTTP/1.0";
    case CURL_HTTP_VERSION_1_1: return "HTTP/1.1";
    case CURL_HTTP_VERSION_2_0: return "HTTP/2";
    case CURL_HTTP_VERSION_3: return "HTTP/3";
    default: return "HTTP";
    }
}

struct curl_slist *sim_mdm_headers(const char *content_type, sim_idmode_t mode, const sim_device_t *signer,
                                   const void *body, size_t len, const char *sig_override, char *err,
                                   size_t errlen)
{
    struct curl_slist *h = NULL;
    char line[256];
    snprintf(line, sizeof line, "Content-Type: %s", content_type);
    h = curl_slist_append(h, line);
    h = curl_slist_append(h, "User-Agent: " SIM_USER_AGENT);
    h = curl_slist_append(h, "Accept: */*");
    h = curl_slist_append(h, "Expect:"); /* devices do not wait for 100-continue */
    if (mode == SIM_ID_SIGNATURE) {
        char *sig = NULL;
        if (sig_override) {
            sig = strdup(sig_override);
        } else if (!signer || !signer->key || !signer->cert) {
            sim_errf(err, errlen, "no identity to sign with");
            curl_slist_free_all(h);
            return NULL;
        } else {
            sig = sim_mdm_signature(signer->key, signer->cert, body, len, err, errlen);
        }
        if (!sig) {
            curl_slist_free_all(h);
            return NULL;
        }
        size_t n = strlen(sig) + 32;
        char *hdr = malloc(n);
        if (!hdr) abort();
        snprintf(hdr, n, "Mdm-Signature: %s", sig);
        h = curl_slist_append(h, hdr);
        free(hdr);
        free(sig);
    }
    if (!h) abort();
    return h;
}
