/* Inside the owner pages (broker/owner/): the per-request state and the
 * steps every handler shares (owner.c), for the pages kept in files of their
 * own (owner_osupdate.c). Not a public interface. */
#ifndef LMDM_OWNER_CTX_H
#define LMDM_OWNER_CTX_H

#include <libpq-fe.h>

#include "lmdm/app.h"
#include "lmdm/buf.h"
#include "lmdm/db.h"
#include "lmdm/html.h"
#include "lmdm/http.h"
#include "lmdm/secrets.h"

#define TOKEN_CHARS 43 /* lmdm_secrets_new_token without prefix: 256 bits in base64url */
#define HASH_HEX 64

typedef struct owner_ctx owner_ctx_t;
typedef void (*owner_step_fn)(owner_ctx_t *x);

/* Per-request state, in the request's arena. */
struct owner_ctx {
    lmdm_http_req_t *req;
    const lmdm_app_t *app;
    const lmdm_secrets_t *sec;
    owner_step_fn next;          /* after owner_resolve() */
    char token[TOKEN_CHARS + 1]; /* from the cookie (or the login link); "" if none */
    char token_hash[HASH_HEX + 1];
    long long device_id; /* 0: no valid owner session */
    char device_id_s[24];
    int device_enrolled;
    const char *code; /* invitation code (path) */
    char code_hash[HASH_HEX + 1];
    long long tenant_id;
    const char *tenant_name, *note, *rules, *expires;
    const char *pseudonym; /* enrollment (path) */
    const char *action;    /* form: accept | decline */
    const char *csrf;      /* form */
    lmdm_form_field_t *fields; /* the whole form (read_form) */
    size_t nfields;
};

/** 503 unless the owner pages can work; the context otherwise. */
owner_ctx_t *owner_begin(lmdm_http_req_t *req);
/** The cookie's device into x->device_id (0: none), then next(x). */
void owner_resolve(owner_ctx_t *x, owner_step_fn next);
void owner_query(owner_ctx_t *x, const lmdm_db_stmt_t *st, const char *const *params, lmdm_db_result_cb cb);
void owner_respond_db_error(owner_ctx_t *x, int err, PGresult *res, const char *what);
void owner_respond_no_session(owner_ctx_t *x);
/** Origin and form checks of every POST: 1 go on, 0 answered. */
int owner_post_checks(owner_ctx_t *x);
void owner_csrf_token(const owner_ctx_t *x, const char *what, char out[HASH_HEX + 1]);
int owner_csrf_ok(const owner_ctx_t *x, const char *what);
void owner_respond_form_expired(owner_ctx_t *x, const char *back);
/** A POST form with a CSRF token, an action and one button. */
void owner_form(lmdm_buf_t *b, owner_ctx_t *x, const char *action_url, const char *csrf_what, const char *action,
                const char *button_class, const char *label);

/* owner_osupdate.c */
/** The "OS updates" section of the owner page, from the device's plan (JSON,
 * NULL: none) and the operator's rings (JSON array). */
void owner_osupdate_section(lmdm_buf_t *b, owner_ctx_t *x, const char *plan, const char *rings);
/** POST /owner/osupdate. */
void owner_osupdate_post(lmdm_http_req_t *req);

#endif
