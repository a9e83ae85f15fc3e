/* The device-facing Apple MDM endpoints:
 *   PUT /mdm/checkin  check-in protocol (Authenticate, TokenUpdate, CheckOut, ...)
 *   PUT /mdm/connect  command protocol (Idle, Acknowledged, Error, NotNow, ...);
 *                     check-ins sent here (profiles without CheckInURL) are
 *                     recognised by their Content-Type and handled as check-ins.
 *   GET /enroll       the enrollment profile (see enroll.h)
 * Every request is authenticated (mdm_auth.h) before anything is parsed or
 * stored; the database work of each message is one stored-procedure call. */
#ifndef LMDM_MDM_ENDPOINTS_H
#define LMDM_MDM_ENDPOINTS_H

#include "lmdm/config.h"
#include "lmdm/router.h"

int lmdm_mdm_routes(lmdm_router_t *r, const lmdm_config_t *cfg) LMDM_MUSTCHECK;

#endif
