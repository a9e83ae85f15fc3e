/* Server-rendered HTML for the people who hold a device (owner pages, the
 * consent page): escaping, the page frame, the response headers every page
 * carries, and the decoding of what a browser sends back (form bodies and
 * cookies), the rules and commands of tenants in plain words, and the
 * policy table.
 *
 * Everything that does not come from a string literal in the code goes
 * through lmdm_html_escape(): tenant names, notes and rules are written by
 * tenants, and a tenant must not be able to put markup on the owner's screen.
 * The pages use no JavaScript and no external resource; the
 * Content-Security-Policy sent with them forbids both anyway.
 *
 * Thread rules: no state; every function is safe on any thread. */
#ifndef LMDM_HTML_H
#define LMDM_HTML_H

#include <stddef.h>

#include "lmdm/arena.h"
#include "lmdm/buf.h"
#include "lmdm/http.h"

/** Append `s` escaped for HTML text and for a double- or single-quoted
 * attribute value: & < > " ' become entities; bytes that are not valid UTF-8
 * (overlong forms, surrogates, stray continuation bytes, truncated sequences)
 * and control characters other than tab and newline become U+FFFD. NULL
 * appends nothing. */
void lmdm_html_escape(lmdm_buf_t *b, const char *s);
/** lmdm_html_escape of exactly n bytes (a NUL byte among them becomes U+FFFD). */
void lmdm_html_escape_n(lmdm_buf_t *b, const char *s, size_t n);

/** Start a page: doctype, charset, viewport (readable on a phone), the inline
 * style sheet, and an <h1> with `title` (escaped). Close with
 * lmdm_html_end(). */
void lmdm_html_begin(lmdm_buf_t *b, const char *title);
void lmdm_html_end(lmdm_buf_t *b);

/** Append one paragraph of escaped text: <p>text</p>. */
void lmdm_html_para(lmdm_buf_t *b, const char *text);

/** The response headers of every HTML page, with their values:
 * Cache-Control no-store, X-Frame-Options DENY, a Content-Security-Policy that
 * allows inline style and same-origin form posts only, Referrer-Policy
 * same-origin (never no-referrer: browsers then send "Origin: null" with the
 * pages' own forms), X-Content-Type-Options nosniff. */
void lmdm_html_security_headers(lmdm_http_req_t *req);

/** Answer `req` with `page` as text/html; charset=utf-8 plus the security
 * headers, and free page. The request is gone afterwards. */
void lmdm_html_respond(lmdm_http_req_t *req, int status, lmdm_buf_t *page);

/** A whole page with a title and one paragraph, answered at once (errors,
 * refusals, confirmations). */
void lmdm_html_respond_message(lmdm_http_req_t *req, int status, const char *title, const char *text);

/* ---- what the browser sends ---- */

/** One decoded field of an application/x-www-form-urlencoded body. */
typedef struct lmdm_form_field {
    const char *name;
    const char *value;
} lmdm_form_field_t;

#define LMDM_FORM_MAX_FIELDS 16

/** Decode a form body into at most `max` fields (names and values are NUL
 * terminated, in `arena`): '+' is a space, %XX a byte. Empty segments
 * ("a=1&&b=2") are skipped; a segment without '=' is a name with an empty
 * value. Returns 0, LMDM_ERR_INVALID for a broken escape ("%4", "%zz"), an
 * encoded or raw NUL or another control byte, or LMDM_ERR_TOO_LARGE for more
 * than `max` fields. Decoded values are bytes, not necessarily UTF-8: escape
 * them before showing them. */
int lmdm_form_parse(lmdm_arena_t *arena, const char *body, size_t len, lmdm_form_field_t *fields, size_t max,
                    size_t *nfields) LMDM_MUSTCHECK;

/** The value of field `name`, or NULL when it is absent or given more than
 * once (an ambiguous form is not guessed at). */
const char *lmdm_form_get(const lmdm_form_field_t *fields, size_t n, const char *name);

/** The value of cookie `name` in one Cookie header value ("a=1; b=2") copied
 * into out (NUL-terminated). Returns 0, LMDM_ERR_NOT_FOUND when there is no
 * such cookie, LMDM_ERR_TOO_LARGE when the value does not fit. Surrounding
 * double quotes are removed. */
int lmdm_html_cookie(const char *header, const char *name, char *out, size_t outlen) LMDM_MUSTCHECK;

/* ---- what a tenant asks for, in plain words ---- */

/** Append the device-wide rules of an invitation (`rules_json`, a JSON object
 * of sections, e.g. {"passcode": {"minLength": 6}}) as an HTML list of
 * sentences ("A passcode of at least 6 characters"). Keys the broker knows
 * are phrased; any other key is shown as "section.key: value". Values are
 * escaped. Nothing to show (empty object, NULL, invalid JSON) appends a
 * paragraph saying that no device-wide rule is asked for. */
void lmdm_html_rules(lmdm_buf_t *b, const char *rules_json);

/** The device-wide rules in force (the merged result with provenance, as
 * stored in devices.rules_merged) as a list: "A passcode of at least 8
 * characters — required by St. Mary's". */
void lmdm_html_merged_rules(lmdm_buf_t *b, const char *merged_json);

/** One organization's own device-wide rules (`rules_json`: {section: rules}
 * as the tenant API stores them, e.g. {"passcode": {"minLength": 6},
 * "domains": {"WebDomains": ["a.example"]}}) as a list, each requirement in
 * plain words followed by its state against the merged result `merged_json`
 * (devices.rules_merged): "in force" when `tenant_name` is among the
 * organizations that drove the merged value, "a stricter rule applies: ..."
 * when another organization's stricter value won, "not applied yet" when the
 * merge does not hold the key (not computed yet). Organizations are told
 * apart by name, as the merge's provenance names them. Nothing to show
 * appends a paragraph saying that it requires no device-wide rule. */
void lmdm_html_tenant_rules(lmdm_buf_t *b, const char *rules_json, const char *merged_json,
                            const char *tenant_name);

/* ---- tenant commands and the policy, in plain words ---- */

/** A RequestType in plain words ("EraseDevice" -> "Erase the device"); one
 * not in the broker's short list is split into words ("ManagedMediaList" ->
 * "Managed media list"). Escaped. */
void lmdm_html_request_type(lmdm_buf_t *b, const char *request_type);

/** What the broker did with a tenant command (a row of `decisions`), as
 * escaped HTML text:
 *   block   "Refused: " and the rationale of the policy row that gave
 *           `reason` (the payload's when `payload_type` is set, else the
 *           command's), or of the decision procedure's own reason codes; an
 *           unknown code is shown as "reason code <code>". Wrapped in
 *           <span class="refused">.
 *   merge   folded into the device-wide rules;
 *   retire  an EraseDevice treated as the organization leaving;
 *   allow, scope  from `command_state` (commands.state): "Sent to your
 *           device", "Sent to your device, which did it", "Accepted: waiting
 *           for your device to check in", ...; NULL state: "Allowed".
 * Any argument may be NULL. */
void lmdm_html_decision(lmdm_buf_t *b, const char *request_type, const char *decision, const char *reason,
                        const char *payload_type, const char *command_state);

/** The body of the policy page (everything after lmdm_html_begin): what each
 * decision means, links to filter by decision (/policy?decision=block) and
 * anchors to each group (#commands-block, #payloads-merge, ...; each row has
 * id "commands-<RequestType>" or "payloads-<PayloadType>"), then every row of
 * lmdm_policy_command_rules() and lmdm_policy_payload_rules() grouped by
 * decision: name, decision, reason code, rationale, where Apple forbids it
 * under User Enrollment. `decision` ("allow", "scope", "merge", "block")
 * shows that group only; NULL or "" shows all, and an unknown value shows all
 * with a note saying so. */
void lmdm_html_policy(lmdm_buf_t *b, const char *decision);

#endif
