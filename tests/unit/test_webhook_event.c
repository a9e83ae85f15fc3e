/* Webhook bodies (tenants/webhook_event.c) without database or network: the
 * lmdm format for every event, the command block and its status mapping, the
 * tenant view of a device answer (the device's identity and the broker's
 * CommandUUID never appear), the MicroMDM shape (topics, acknowledge_event,
 * checkin_event, base64 raw_payload), and what is refused. */
#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "lmdm/webhook.h"

#define PSEUDONYM "eabcdefghijklmnopqrstuvwxyz"
#define UDID "UDID-PRIVATE-0000-1111"
#define BROKER_UUID "7D1E4C0A-2B9F-4C55-8E21-0F3A5B6C7D8E"
#define API_ID "3f1c2a4b-5d6e-4f70-8a91-b2c3d4e5f601"
#define ANSWER                                                                                               \
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><plist "                                                      \
    "version=\"1.0\"><dict><key>CommandUUID</key><string>" BROKER_UUID                                       \
    "</string><key>Status</key><string>Acknowledged</string><key>UDID</key><string>" UDID                    \
    "</string><key>InstalledApplicationList</key><array><dict><key>Identifier</key><string>org.hospital.app" \
    "</string></dict></array></dict></plist>"

static lmdm_webhook_event_t base_event(const char *event)
{
    lmdm_webhook_event_t ev = {.event_uuid = "0b6b1b9e-5a0c-4d8e-9f3e-1c2d3e4f5a6b",
                               .event = event,
                               .created_at = "2025-01-02T03:04:05.678901Z",
                               .pseudonym = PSEUDONYM,
                               .data_json = "{\"by\": \"owner\"}"};
    return ev;
}

static lmdm_webhook_event_t result_event(const char *state, const char *tenant_uuid)
{
    lmdm_webhook_event_t ev = base_event("command.result");
    ev.data_json = "{}";
    ev.command_api_id = API_ID;
    ev.command_tenant_uuid = tenant_uuid;
    ev.command_request_type = "InstalledApplicationList";
    ev.command_state = state;
    ev.command_result = ANSWER;
    return ev;
}

/* Build and parse; NULL on failure. The body must be one ASCII line. */
static json_t *build(const lmdm_webhook_event_t *ev, lmdm_webhook_format_t f)
{
    lmdm_buf_t b = {0};
    if (lmdm_webhook_event_body(ev, f, &b) != 0) return NULL;
    for (size_t i = 0; i < b.len; i++)
        if (b.data[i] == '\n' || (unsigned char)b.data[i] > 127) {
            lmdm_buf_free(&b);
            return NULL;
        }
    json_t *j = json_loads(b.data, JSON_REJECT_DUPLICATES, NULL);
    lmdm_buf_free(&b);
    return j;
}

static const char *str(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* base64 -> NUL-terminated text in out. */
static int unbase64(const char *b64, char *out, size_t cap)
{
    size_t n = 0;
    if (!b64 || sodium_base642bin((unsigned char *)out, cap - 1, b64, strlen(b64), NULL, &n, NULL,
                                  sodium_base64_VARIANT_ORIGINAL) != 0)
        return -1;
    out[n] = '\0';
    return 0;
}

static void test_lmdm_plain_events(void)
{
    const char *events[] = {"enrollment.accepted", "enrollment.removed", "device.checked_out"};
    for (size_t i = 0; i < 3; i++) {
        lmdm_webhook_event_t ev = base_event(events[i]);
        json_t *b = build(&ev, LMDM_WEBHOOK_LMDM);
        CHECK(b != NULL);
        CHECK_STR_EQ(str(b, "id"), ev.event_uuid);
        CHECK_STR_EQ(str(b, "event"), events[i]);
        CHECK_STR_EQ(str(b, "created_at"), ev.created_at);
        CHECK_STR_EQ(str(b, "enrollment_id"), PSEUDONYM);
        CHECK_STR_EQ(str(json_object_get(b, "data"), "by"), "owner");
        CHECK(json_object_get(b, "command") == NULL);
        CHECK_INT_EQ(json_object_size(b), 5);
        json_decref(b);
    }
    lmdm_webhook_event_t ev = base_event("device.checked_out");
    ev.pseudonym = NULL;
    ev.data_json = NULL;
    json_t *b = build(&ev, LMDM_WEBHOOK_LMDM);
    CHECK(json_is_null(json_object_get(b, "enrollment_id")));
    CHECK(json_is_object(json_object_get(b, "data")) && json_object_size(json_object_get(b, "data")) == 0);
    json_decref(b);
}

static void test_lmdm_command_result(void)
{
    lmdm_webhook_event_t ev = result_event("acknowledged", "tenant-uuid-1");
    json_t *b = build(&ev, LMDM_WEBHOOK_LMDM);
    json_t *c = json_object_get(b, "command");
    CHECK_STR_EQ(str(c, "id"), API_ID);
    CHECK_STR_EQ(str(c, "command_uuid"), "tenant-uuid-1");
    CHECK_STR_EQ(str(c, "request_type"), "InstalledApplicationList");
    CHECK_STR_EQ(str(c, "status"), "Acknowledged");
    const char *r = str(c, "result");
    CHECK_STR_CONTAINS(r, "org.hospital.app");
    CHECK_STR_CONTAINS(r, "tenant-uuid-1");
    CHECK(r && !strstr(r, UDID) && !strstr(r, BROKER_UUID));
    json_decref(b);

    /* No tenant UUID: null in the body, and no CommandUUID in the view. */
    ev = result_event("error", NULL);
    b = build(&ev, LMDM_WEBHOOK_LMDM);
    c = json_object_get(b, "command");
    CHECK(json_is_null(json_object_get(c, "command_uuid")));
    CHECK_STR_EQ(str(c, "status"), "Error");
    CHECK(str(c, "result") && !strstr(str(c, "result"), "CommandUUID"));
    json_decref(b);

    /* No answer, or one that is not a plist: result is null, the event still goes. */
    ev = result_event("format_error", "u");
    ev.command_result = NULL;
    b = build(&ev, LMDM_WEBHOOK_LMDM);
    CHECK_STR_EQ(str(json_object_get(b, "command"), "status"), "CommandFormatError");
    CHECK(json_is_null(json_object_get(json_object_get(b, "command"), "result")));
    json_decref(b);
    ev.command_result = "not a plist";
    b = build(&ev, LMDM_WEBHOOK_LMDM);
    CHECK(b != NULL);
    CHECK(json_is_null(json_object_get(json_object_get(b, "command"), "result")));
    json_decref(b);
}

static void test_status_mapping(void)
{
    CHECK_STR_EQ(lmdm_webhook_command_status("acknowledged"), "Acknowledged");
    CHECK_STR_EQ(lmdm_webhook_command_status("error"), "Error");
    CHECK_STR_EQ(lmdm_webhook_command_status("format_error"), "CommandFormatError");
    CHECK(lmdm_webhook_command_status("notnow") == NULL);
    CHECK(lmdm_webhook_command_status(NULL) == NULL);
    lmdm_webhook_format_t f = LMDM_WEBHOOK_MICROMDM;
    CHECK_INT_EQ(lmdm_webhook_format_parse("lmdm", &f), 0);
    CHECK_INT_EQ(f, LMDM_WEBHOOK_LMDM);
    CHECK_INT_EQ(lmdm_webhook_format_parse("micromdm", &f), 0);
    CHECK_INT_EQ(f, LMDM_WEBHOOK_MICROMDM);
    CHECK_INT_EQ(lmdm_webhook_format_parse("MicroMDM", &f), LMDM_ERR_INVALID);
    CHECK_INT_EQ(lmdm_webhook_format_parse(NULL, &f), LMDM_ERR_INVALID);
}

static void test_micromdm_connect(void)
{
    lmdm_webhook_event_t ev = result_event("acknowledged", "tenant-uuid-1");
    json_t *b = build(&ev, LMDM_WEBHOOK_MICROMDM);
    CHECK_STR_EQ(str(b, "topic"), "mdm.Connect");
    CHECK_STR_EQ(str(b, "event_id"), ev.event_uuid);
    CHECK_STR_EQ(str(b, "created_at"), ev.created_at);
    CHECK(json_object_get(b, "checkin_event") == NULL);
    json_t *a = json_object_get(b, "acknowledge_event");
    CHECK_STR_EQ(str(a, "udid"), PSEUDONYM);
    CHECK_STR_EQ(str(a, "status"), "Acknowledged");
    CHECK_STR_EQ(str(a, "command_uuid"), "tenant-uuid-1");
    char plist[4096];
    CHECK_INT_EQ(unbase64(str(a, "raw_payload"), plist, sizeof plist), 0);
    CHECK_STR_CONTAINS(plist, "<key>CommandUUID</key>");
    CHECK_STR_CONTAINS(plist, "tenant-uuid-1");
    CHECK(!strstr(plist, UDID) && !strstr(plist, BROKER_UUID));
    CHECK_STR_EQ(str(json_object_get(b, "lmdm"), "event"), "command.result");
    json_decref(b);

    /* A tenant that chose no CommandUUID matches on the API id. */
    ev = result_event("error", NULL);
    b = build(&ev, LMDM_WEBHOOK_MICROMDM);
    a = json_object_get(b, "acknowledge_event");
    CHECK_STR_EQ(str(a, "command_uuid"), API_ID);
    CHECK_STR_EQ(str(a, "status"), "Error");
    CHECK_INT_EQ(unbase64(str(a, "raw_payload"), plist, sizeof plist), 0);
    CHECK_STR_CONTAINS(plist, API_ID);
    json_decref(b);
}

static void test_micromdm_checkin(void)
{
    static const struct {
        const char *event, *topic, *message;
    } cases[] = {{"enrollment.accepted", "mdm.TokenUpdate", "TokenUpdate"},
                 {"enrollment.removed", "mdm.CheckOut", "CheckOut"},
                 {"device.checked_out", "mdm.CheckOut", "CheckOut"}};
    for (size_t i = 0; i < 3; i++) {
        lmdm_webhook_event_t ev = base_event(cases[i].event);
        json_t *b = build(&ev, LMDM_WEBHOOK_MICROMDM);
        CHECK_STR_EQ(str(b, "topic"), cases[i].topic);
        CHECK(json_object_get(b, "acknowledge_event") == NULL);
        json_t *c = json_object_get(b, "checkin_event");
        CHECK_STR_EQ(str(c, "udid"), PSEUDONYM);
        CHECK_INT_EQ(json_object_get(c, "token_update_tally") != NULL, i == 0);
        char plist[2048], want[128];
        CHECK_INT_EQ(unbase64(str(c, "raw_payload"), plist, sizeof plist), 0);
        snprintf(want, sizeof want, "<key>MessageType</key><string>%s</string>", cases[i].message);
        CHECK_STR_CONTAINS(plist, want);
        CHECK_STR_CONTAINS(plist, "<key>UDID</key><string>" PSEUDONYM "</string>");
        json_t *x = json_object_get(b, "lmdm");
        CHECK_STR_EQ(str(x, "event"), cases[i].event);
        CHECK_STR_EQ(str(x, "enrollment_id"), PSEUDONYM);
        CHECK_STR_EQ(str(json_object_get(x, "data"), "by"), "owner");
        json_decref(b);
    }
    /* No MicroMDM word for it: never passed off as a check-out. */
    lmdm_webhook_event_t ev = base_event("compliance.changed");
    json_t *b = build(&ev, LMDM_WEBHOOK_MICROMDM);
    CHECK_STR_EQ(str(b, "topic"), "lmdm.ComplianceChanged");
    CHECK(json_object_get(b, "checkin_event") == NULL);
    CHECK_STR_EQ(str(json_object_get(b, "lmdm"), "event"), "compliance.changed");
    json_decref(b);
}

static void test_refused(void)
{
    lmdm_buf_t out = {0};
    lmdm_webhook_event_t ev = base_event("enrollment.accepted");
    ev.data_json = "[1, 2]";
    CHECK_INT_EQ(lmdm_webhook_event_body(&ev, LMDM_WEBHOOK_LMDM, &out), LMDM_ERR_INVALID);
    ev.data_json = "{oops";
    CHECK_INT_EQ(lmdm_webhook_event_body(&ev, LMDM_WEBHOOK_LMDM, &out), LMDM_ERR_INVALID);
    ev = base_event("enrollment.accepted");
    ev.event_uuid = NULL;
    CHECK_INT_EQ(lmdm_webhook_event_body(&ev, LMDM_WEBHOOK_MICROMDM, &out), LMDM_ERR_INVALID);
    CHECK_INT_EQ(lmdm_webhook_event_body(NULL, LMDM_WEBHOOK_LMDM, &out), LMDM_ERR_INVALID);
    CHECK(out.len == 0);
}

int main(void)
{
    if (sodium_init() < 0) return 1;
    RUN(test_lmdm_plain_events);
    RUN(test_lmdm_command_result);
    RUN(test_status_mapping);
    RUN(test_micromdm_connect);
    RUN(test_micromdm_checkin);
    RUN(test_refused);
    return harness_finish();
}
