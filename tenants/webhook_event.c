/* Webhook bodies: one outbox row -> the JSON a tenant receives, in lmdm's own
 * format or in MicroMDM's webhook shape (docs/webhooks.md). Pure: no I/O, no
 * clock; the deliverer (webhook.c) fetches the row and signs the result. */
#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "lmdm/tenant_result.h"
#include "lmdm/webhook.h"

int lmdm_webhook_format_parse(const char *s, lmdm_webhook_format_t *out)
{
    if (s && strcmp(s, "lmdm") == 0) {
        *out = LMDM_WEBHOOK_LMDM;
        return 0;
    }
    if (s && strcmp(s, "micromdm") == 0) {
        *out = LMDM_WEBHOOK_MICROMDM;
        return 0;
    }
    return LMDM_ERR_INVALID;
}

const char *lmdm_webhook_command_status(const char *state)
{
    if (!state) return NULL;
    if (strcmp(state, "acknowledged") == 0) return "Acknowledged";
    if (strcmp(state, "error") == 0) return "Error";
    if (strcmp(state, "format_error") == 0) return "CommandFormatError";
    return NULL;
}

/* A JSON string, or null for a SQL NULL. */
static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* Standard base64 (Go's encoding of []byte, which MicroMDM uses). */
static json_t *base64_string(const char *p, size_t n)
{
    size_t cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
    char *b64 = lmdm_xmalloc(cap);
    sodium_bin2base64(b64, cap, (const unsigned char *)p, n, sodium_base64_VARIANT_ORIGINAL);
    json_t *j = json_string(b64);
    free(b64);
    return j;
}

/* The tenant's view of the device answer as a JSON string, or null when
 * there is no answer or it is not a plist dictionary. With `b64` the view is
 * base64-encoded (MicroMDM's raw_payload). */
static json_t *result_view(const lmdm_webhook_event_t *ev, const char *tenant_uuid, int b64)
{
    if (!ev->command_result) return json_null();
    lmdm_buf_t view = {0};
    const char *rt = ev->command_request_type ? ev->command_request_type : "";
    lmdm_tenant_owned_t owned = {ev->owned_apps, ev->owned_profiles, ev->profile_ns};
    int rv = lmdm_tenant_result_view(rt, ev->command_result, strlen(ev->command_result), tenant_uuid, &owned, &view);
    json_t *j;
    if (rv != 0 || !view.data)
        j = json_null();
    else
        j = b64 ? base64_string(view.data, view.len) : json_stringn(view.data, view.len);
    lmdm_buf_free(&view);
    return j ? j : json_null(); /* json_stringn refuses invalid UTF-8 */
}

/* outbox.data parsed, or NULL if it is not a JSON object. */
static json_t *parse_data(const char *data_json)
{
    if (!data_json) return json_object();
    json_t *d = json_loads(data_json, JSON_REJECT_DUPLICATES, NULL);
    if (d && !json_is_object(d)) {
        json_decref(d);
        return NULL;
    }
    return d;
}

static int is_command_result(const lmdm_webhook_event_t *ev)
{
    return strcmp(ev->event, "command.result") == 0;
}

static json_t *lmdm_command(const lmdm_webhook_event_t *ev)
{
    json_t *c = json_object();
    json_object_set_new(c, "id", str_or_null(ev->command_api_id));
    json_object_set_new(c, "command_uuid", str_or_null(ev->command_tenant_uuid));
    json_object_set_new(c, "request_type", str_or_null(ev->command_request_type));
    json_object_set_new(c, "status", str_or_null(lmdm_webhook_command_status(ev->command_state)));
    json_object_set_new(c, "result", result_view(ev, ev->command_tenant_uuid, 0));
    return c;
}

static json_t *body_lmdm(const lmdm_webhook_event_t *ev, json_t *data)
{
    json_t *b = json_object();
    json_object_set_new(b, "id", json_string(ev->event_uuid));
    json_object_set_new(b, "event", json_string(ev->event));
    json_object_set_new(b, "created_at", json_string(ev->created_at));
    json_object_set_new(b, "enrollment_id", str_or_null(ev->pseudonym));
    json_object_set(b, "data", data);
    if (is_command_result(ev)) json_object_set_new(b, "command", lmdm_command(ev));
    return b;
}

/* ---- MicroMDM ------------------------------------------------------------- */

/* A check-in message the broker synthesizes for a MicroMDM consumer: only
 * MessageType and the pseudonym as UDID (never push credentials). The
 * pseudonym alphabet needs no XML escaping; anything else is refused. */
static json_t *synthetic_checkin(const char *message_type, const char *pseudonym)
{
    const char *udid = pseudonym ? pseudonym : "";
    for (const char *p = udid; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9'))) udid = "";
    lmdm_buf_t x = {0};
    lmdm_buf_printf(&x,
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                    "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "
                    "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
                    "<plist version=\"1.0\"><dict><key>MessageType</key><string>%s</string>"
                    "<key>UDID</key><string>%s</string></dict></plist>\n",
                    message_type, udid);
    json_t *j = base64_string(x.data, x.len);
    lmdm_buf_free(&x);
    return j;
}

static const char *micromdm_topic(const char *event)
{
    if (strcmp(event, "command.result") == 0) return "mdm.Connect";
    if (strcmp(event, "enrollment.accepted") == 0) return "mdm.TokenUpdate";
    /* No MicroMDM equivalent: a topic of lmdm's own, which MicroMDM consumers ignore. */
    if (strcmp(event, "compliance.changed") == 0) return "lmdm.ComplianceChanged";
    if (strcmp(event, "osupdate.changed") == 0) return "lmdm.OSUpdateChanged";
    return "mdm.CheckOut"; /* enrollment.removed, device.checked_out */
}

static json_t *micromdm_ack(const lmdm_webhook_event_t *ev)
{
    /* MicroMDM tenants match results by the CommandUUID they chose; a tenant
     * that chose none knows the command by its API id. */
    const char *uuid = ev->command_tenant_uuid ? ev->command_tenant_uuid : ev->command_api_id;
    const char *status = lmdm_webhook_command_status(ev->command_state);
    json_t *a = json_object();
    json_object_set_new(a, "udid", json_string(ev->pseudonym ? ev->pseudonym : ""));
    json_object_set_new(a, "status", json_string(status ? status : ""));
    json_object_set_new(a, "command_uuid", json_string(uuid ? uuid : ""));
    json_object_set_new(a, "raw_payload", result_view(ev, uuid, 1));
    return a;
}

static json_t *micromdm_checkin(const lmdm_webhook_event_t *ev, const char *topic)
{
    int token_update = strcmp(topic, "mdm.TokenUpdate") == 0;
    json_t *c = json_object();
    json_object_set_new(c, "udid", json_string(ev->pseudonym ? ev->pseudonym : ""));
    json_object_set_new(c, "raw_payload",
                        synthetic_checkin(token_update ? "TokenUpdate" : "CheckOut", ev->pseudonym));
    /* NanoMDM's marker of the first TokenUpdate of an enrollment. */
    if (token_update) json_object_set_new(c, "token_update_tally", json_integer(1));
    return c;
}

static json_t *body_micromdm(const lmdm_webhook_event_t *ev, json_t *data)
{
    const char *topic = micromdm_topic(ev->event);
    json_t *b = json_object();
    json_object_set_new(b, "topic", json_string(topic));
    json_object_set_new(b, "event_id", json_string(ev->event_uuid));
    json_object_set_new(b, "created_at", json_string(ev->created_at));
    if (is_command_result(ev))
        json_object_set_new(b, "acknowledge_event", micromdm_ack(ev));
    else if (strncmp(topic, "mdm.", 4) == 0)
        json_object_set_new(b, "checkin_event", micromdm_checkin(ev, topic));
    /* What MicroMDM has no word for, under one key its consumers ignore. */
    json_t *ext = json_object();
    json_object_set_new(ext, "event", json_string(ev->event));
    json_object_set_new(ext, "enrollment_id", str_or_null(ev->pseudonym));
    json_object_set(ext, "data", data);
    json_object_set_new(b, "lmdm", ext);
    return b;
}

int lmdm_webhook_event_body(const lmdm_webhook_event_t *ev, lmdm_webhook_format_t format, lmdm_buf_t *out)
{
    if (!ev || !ev->event_uuid || !ev->event || !ev->created_at) return LMDM_ERR_INVALID;
    json_t *data = parse_data(ev->data_json);
    if (!data) return LMDM_ERR_INVALID;
    json_t *body = format == LMDM_WEBHOOK_MICROMDM ? body_micromdm(ev, data) : body_lmdm(ev, data);
    json_decref(data);
    char *text = json_dumps(body, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(body);
    if (!text) return LMDM_ERR_INVALID;
    lmdm_buf_puts(out, text);
    free(text);
    return 0;
}
