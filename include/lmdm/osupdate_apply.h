/* The OS-update planner: a background thread that keeps every device's plan
 * (policy/osupdate.c) current, enforces it, tells tenants where their
 * requirement stands, and polls the release feed (see
 * broker/osupdate/osupdate_apply.c). One per database: a session-level
 * advisory lock elects it among broker instances. */
#ifndef LMDM_OSUPDATE_APPLY_H
#define LMDM_OSUPDATE_APPLY_H

#include <stddef.h>
#include <stdint.h>

#include "lmdm/config.h"
#include "lmdm/release_feed.h"

#define LMDM_OSUPDATE_LOCK_KEY 0x6c6d646d6f737531LL /* "lmdmosu1" */
#define LMDM_OSUPDATE_DECL_ID "lmdm.broker.osupdate"       /* the enforcement declaration */
#define LMDM_OSUPDATE_STATUS_ID "lmdm.broker.status"       /* its status subscriptions */
#define LMDM_OSUPDATE_DECL_TYPE "com.apple.configuration.softwareupdate.enforcement.specific"

typedef struct lmdm_osupdate_planner lmdm_osupdate_planner_t;

/** The planner's clock: the time in cfg->osupdate_clock_file when set (tests),
 * else the system clock. Seconds since the epoch; -1 when the file cannot be
 * read or parsed (logged). */
int64_t lmdm_osupdate_now(const lmdm_config_t *cfg);

/** Start the thread. `cfg` is copied (the strings it needs). NULL with a
 * message only if the thread cannot be created. */
lmdm_osupdate_planner_t *lmdm_osupdate_planner_start(const lmdm_config_t *cfg, char *err, size_t errlen);
/** Stop within about 100 ms and free. NULL is a no-op. */
void lmdm_osupdate_planner_stop(lmdm_osupdate_planner_t *p);

/** The JSON array os_releases_import() takes, from a parsed feed (malloc'd). */
char *lmdm_osupdate_feed_json(const lmdm_feed_t *feed);

#endif
