/* Marking devices for the background appliers against a real PostgreSQL:
 * a change that lands while a device is being merged or planned is never
 * lost.
 *   rules (0009): the applier reads the inputs at generation g; a tenant's
 *     rule changes; rules_apply_gen(g, ...) leaves the device marked, and the
 *     next store at the new generation clears it;
 *   OS updates (0008): osupdate_store(mark m) removes the device from the
 *     queue only if it was not marked again after m. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "lmdm/db.h"
#include "lmdm/migrate.h"
#include "testdb.h"

#define FPR "cd34cd34cd34cd34cd34cd34cd34cd34cd34cd34cd34cd34cd34cd34cd34cd34"

static char conninfo[1024];
static PGconn *db;

#define exec_ok(...) testdb_exec_ok(db, __VA_ARGS__)
#define scalar(...) testdb_scalar(db, __VA_ARGS__)

static void fresh_db(void)
{
    char err[512], dir[1024];
    testdb_create(conninfo, sizeof conninfo);
    db = lmdm_db_connect_blocking(conninfo, err, sizeof err);
    if (!db) {
        fprintf(stderr, "cannot connect: %s\n", err);
        exit(1);
    }
    snprintf(dir, sizeof dir, "%s/migrations", getenv("LMDM_SRC"));
    if (lmdm_migrate_apply(db, dir, NULL, err, sizeof err) < 0) {
        fprintf(stderr, "migrate: %s\n", err);
        exit(1);
    }
    exec_ok("INSERT INTO tenants (name) VALUES ('Hospital A')");
    exec_ok("INSERT INTO devices (device_key, enrollment_type, cert_fpr, state) VALUES ('UDID-MARKS', 'device', "
            "'%s', 'enrolled')",
            FPR);
    exec_ok("INSERT INTO channels (device_id) VALUES (1)");
    exec_ok("INSERT INTO enrollments (tenant_id, device_id, pseudonym) VALUES (1, 1, 'eaaaaaaaaaaaaaaaaaaaaaaaaaa')");
}

/* rules_apply_gen for device 1 with generation gen and a content hash. */
static const char *apply_rules(const char *gen, const char *hash)
{
    return scalar("SELECT rules_apply_gen(%s, 1, '%s', '{}'::jsonb, gen_random_uuid(), '<plist/>', "
                  "gen_random_uuid(), '<plist/>', gen_random_uuid(), '<plist/>')",
                  gen, hash);
}

static void test_rules_change_during_merge(void)
{
    CHECK_STR_EQ(scalar("SELECT rules_dirty FROM devices WHERE id = 1"), "t"); /* the enrollment marked it */
    char gen[32];
    snprintf(gen, sizeof gen, "%s", scalar("SELECT rules_gen FROM devices WHERE id = 1"));
    /* The applier has read the inputs at `gen`; the tenant changes its rule. */
    exec_ok("INSERT INTO tenant_rules (tenant_id, section, rules) VALUES (1, 'passcode', '{\"minLength\": 8}')");
    CHECK(strcmp(scalar("SELECT rules_gen FROM devices WHERE id = 1"), gen) != 0);
    CHECK_STR_EQ(apply_rules(gen, "h1"), "installed");
    CHECK_STR_EQ(scalar("SELECT rules_dirty FROM devices WHERE id = 1"), "t"); /* not lost */
    /* The next merge reads the new generation and clears it. */
    snprintf(gen, sizeof gen, "%s", scalar("SELECT rules_gen FROM devices WHERE id = 1"));
    CHECK_STR_EQ(apply_rules(gen, "h2"), "installed");
    CHECK_STR_EQ(scalar("SELECT rules_dirty FROM devices WHERE id = 1"), "f");
    /* A mark of an already marked device still counts. */
    exec_ok("SELECT rules_mark_device(1)");
    snprintf(gen, sizeof gen, "%s", scalar("SELECT rules_gen FROM devices WHERE id = 1"));
    exec_ok("SELECT rules_mark_device(1)");
    CHECK_STR_EQ(apply_rules(gen, "h2"), "unchanged");
    CHECK_STR_EQ(scalar("SELECT rules_dirty FROM devices WHERE id = 1"), "t");
}

/* osupdate_store for device 1 from queue marking `mark` (NULL: none). */
static const char *store_plan(const char *mark)
{
    return scalar("SELECT osupdate_store(1, %s, '{\"state\": \"none\"}'::jsonb, md5(random()::text), 'none', NULL, "
                  "'{}'::jsonb, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
                  mark);
}

static void test_osupdate_mark_during_plan(void)
{
    char mark[32];
    snprintf(mark, sizeof mark, "%s", scalar("SELECT mark FROM osupdate_queue WHERE device_id = 1"));
    CHECK(mark[0] != '\0'); /* the enrollment queued it */
    /* Marked again while being planned: stays queued. */
    exec_ok("SELECT osupdate_mark(1)");
    CHECK_STR_EQ(store_plan(mark), "planned");
    CHECK_STR_EQ(scalar("SELECT count(*) FROM osupdate_queue WHERE device_id = 1"), "1");
    /* Planned from the newest marking: off the queue. */
    snprintf(mark, sizeof mark, "%s", scalar("SELECT mark FROM osupdate_queue WHERE device_id = 1"));
    store_plan(mark);
    CHECK_STR_EQ(scalar("SELECT count(*) FROM osupdate_queue"), "0");
    /* Planned because its time came (no marking): the queue is left alone. */
    exec_ok("SELECT osupdate_mark(1)");
    store_plan("NULL");
    CHECK_STR_EQ(scalar("SELECT count(*) FROM osupdate_queue"), "1");
    /* A device that is gone leaves the queue and keeps no next evaluation. */
    exec_ok("UPDATE device_osupdate SET next_eval = now() WHERE device_id = 1");
    exec_ok("UPDATE devices SET state = 'checked_out' WHERE id = 1");
    snprintf(mark, sizeof mark, "%s", scalar("SELECT mark FROM osupdate_queue WHERE device_id = 1"));
    CHECK_STR_EQ(store_plan(mark), "gone");
    CHECK_STR_EQ(scalar("SELECT count(*) FROM osupdate_queue"), "0");
    CHECK_STR_EQ(scalar("SELECT coalesce(next_eval::text, 'none') FROM device_osupdate WHERE device_id = 1"), "none");
}

int main(void)
{
    fresh_db();
    RUN(test_rules_change_during_merge);
    RUN(test_osupdate_mark_during_plan);
    PQfinish(db);
    testdb_drop(conninfo);
    return harness_finish();
}
