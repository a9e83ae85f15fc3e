/* The device owner's pages (DESIGN.md flows 2 and 7): the owner session, the
 * consent page of an invitation, and the page listing the organizations that
 * manage the device, with removal.
 *
 * Who is the owner: whoever holds the owner token handed out in the device's
 * enrollment profile (a web clip "My device — lmdm" on the home screen opens
 * <public_url>/owner/login?token=...). Only a keyed hash of the token is
 * stored, bound to the fingerprint of the identity certificate issued in the
 * same profile, so a token opens exactly the device that installed that
 * profile, and only while it is enrolled (owner_device() in 0003). The token
 * then lives in the cookie lmdm_owner (HttpOnly, SameSite=Lax, Secure over
 * https).
 *
 * Routes (all answer HTML; see docs/owner.md):
 *   GET  /owner/login?token=T            set the cookie, 303 to /owner (403 unknown token)
 *   GET  /owner                          organizations managing this device: for each, what it
 *                                        manages, the rules it requires and which are in force,
 *                                        its last commands and what the broker did (401 without
 *                                        session)
 *   GET  /owner/enrollments/{n}/remove   confirmation page
 *   POST /owner/enrollments/{n}/remove   remove (CSRF token, Origin checked)
 *   GET  /invite/{code}                  consent page (404 when no longer valid)
 *   POST /invite/{code}                  action=accept|decline (CSRF token, Origin checked)
 *   GET  /policy[?decision=D]            the policy table, public (no session, no database)
 * Without secret_key every one of them but /policy answers 503. */
#ifndef LMDM_OWNER_H
#define LMDM_OWNER_H

#include "lmdm/config.h"
#include "lmdm/router.h"

/** Name of the owner session cookie. */
#define LMDM_OWNER_COOKIE "lmdm_owner"
/** Body limit of the owner pages' forms. */
#define LMDM_OWNER_FORM_LIMIT 4096

/** Add the owner routes above to `r` (routes carrying a secret in their path
 * are marked redact_path). Returns 0 or LMDM_ERR_INVALID when the table is
 * full. */
int lmdm_owner_routes(lmdm_router_t *r, const lmdm_config_t *cfg) LMDM_MUSTCHECK;

#endif
