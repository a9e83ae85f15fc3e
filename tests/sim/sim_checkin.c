/* Check-in messages, as a device builds them.
 *
 * Which keys a message carries is one table below, mirroring Apple's schema
 * (the mdm/checkin YAML files) with its conditions: platform, enrollment type
 * (device or User Enrollment), channel (device or user), and the
 * AccessRights a key needs ("accessrights: AllowQueryDeviceInformation" means
 * an iPhone leaves OSVersion out of Authenticate unless the profile grants
 * that right). With all_keys the message carries every key the schema lists
 * for that enrollment type and channel, whatever the platform and rights, so
 * that a test can prove the broker accepts each key. The self test checks
 * this table against the schema files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

const char *const sim_checkin_types[] = {"Authenticate",          "TokenUpdate",       "CheckOut",
                                         "UserAuthenticate",      "GetBootstrapToken", "SetBootstrapToken",
                                         "DeclarativeManagement", "GetToken",          NULL};

enum {
    K_NOT_UE = 1 << 0,      /* device enrollment only (UDID, serial, ...) */
    K_UE = 1 << 1,          /* User Enrollment only */
    K_USER = 1 << 2,        /* user channel only */
    K_IOS = 1 << 3,         /* iOS only (unless all_keys) */
    K_MAC = 1 << 4,         /* macOS only (unless all_keys) */
    K_DEVINFO = 1 << 5,     /* needs AccessRights 16 on iOS (unless all_keys) */
    K_DEVINFO_ALL = 1 << 6, /* needs AccessRights 16 on every platform */
    K_LOCK = 1 << 7,        /* needs AccessRights 4 (unless all_keys) */
    K_EXTRA = 1 << 8,       /* sent only in some rounds (unless all_keys) */
    K_DEVICE_CH = 1 << 9,   /* device channel only */
};

typedef struct {
    const char *msg;
    const char *key;
    unsigned flags;
} ck_key_t;

static const ck_key_t keys[] = {
    {"Authenticate", "MessageType", 0},
    {"Authenticate", "Topic", 0},
    {"Authenticate", "UDID", K_NOT_UE},
    {"Authenticate", "EnrollmentID", K_UE},
    {"Authenticate", "OSVersion", K_DEVINFO},
    {"Authenticate", "BuildVersion", K_DEVINFO},
    {"Authenticate", "ProductName", K_DEVINFO},
    {"Authenticate", "SerialNumber", K_NOT_UE | K_DEVINFO_ALL},
    {"Authenticate", "IMEI", K_NOT_UE | K_IOS | K_DEVINFO},
    {"Authenticate", "MEID", K_NOT_UE | K_IOS | K_DEVINFO},
    {"Authenticate", "DeviceName", K_MAC},
    {"Authenticate", "ModelName", K_MAC},
    {"Authenticate", "Model", K_MAC},

    {"TokenUpdate", "MessageType", 0},
    {"TokenUpdate", "Topic", 0},
    {"TokenUpdate", "UDID", K_NOT_UE},
    {"TokenUpdate", "EnrollmentID", K_UE},
    {"TokenUpdate", "EnrollmentUserID", K_UE | K_USER | K_MAC},
    {"TokenUpdate", "UserID", K_USER | K_NOT_UE},
    {"TokenUpdate", "UserShortName", K_USER},
    {"TokenUpdate", "UserLongName", K_USER | K_MAC},
    {"TokenUpdate", "NotOnConsole", K_USER | K_MAC},
    {"TokenUpdate", "Token", 0},
    {"TokenUpdate", "PushMagic", 0},
    {"TokenUpdate", "UnlockToken", K_NOT_UE | K_IOS | K_LOCK | K_DEVICE_CH},
    {"TokenUpdate", "AwaitingConfiguration", 0},

    {"CheckOut", "MessageType", 0},
    {"CheckOut", "Topic", 0},
    {"CheckOut", "UDID", K_NOT_UE},
    {"CheckOut", "EnrollmentID", K_UE},

    /* Authenticates a macOS user on the user channel: the first round has no
     * DigestResponse, the second answers the server's DigestChallenge. */
    {"UserAuthenticate", "MessageType", 0},
    {"UserAuthenticate", "UDID", K_NOT_UE},
    {"UserAuthenticate", "EnrollmentID", K_UE},
    {"UserAuthenticate", "UserID", 0},
    {"UserAuthenticate", "DigestResponse", K_EXTRA},

    /* The schema lists only the message keys; devices also identify
     * themselves, as in every check-in. */
    {"GetBootstrapToken", "MessageType", 0},
    {"GetBootstrapToken", "UDID", K_NOT_UE},
    {"GetBootstrapToken", "EnrollmentID", K_UE},
    {"GetBootstrapToken", "AwaitingConfiguration", 0},

    {"SetBootstrapToken", "MessageType", 0},
    {"SetBootstrapToken", "UDID", K_NOT_UE},
    {"SetBootstrapToken", "EnrollmentID", K_UE},
    {"SetBootstrapToken", "BootstrapToken", 0},
    {"SetBootstrapToken", "AwaitingConfiguration", 0},

    {"DeclarativeManagement", "MessageType", 0},
    {"DeclarativeManagement", "Endpoint", 0},
    {"DeclarativeManagement", "Data", K_EXTRA},
    {"DeclarativeManagement", "UDID", K_NOT_UE},
    {"DeclarativeManagement", "EnrollmentID", K_UE},
    {"DeclarativeManagement", "EnrollmentUserID", K_UE | K_USER | K_MAC},
    {"DeclarativeManagement", "UserID", K_USER | K_NOT_UE},
    {"DeclarativeManagement", "UserShortName", K_USER},
    {"DeclarativeManagement", "UserLongName", K_USER | K_MAC},

    {"GetToken", "MessageType", 0},
    {"GetToken", "TokenServiceType", 0},
    {"GetToken", "TokenParameters", K_EXTRA},
    {"GetToken", "UDID", K_NOT_UE},
    {"GetToken", "EnrollmentID", K_UE},
    {"GetToken", "EnrollmentUserID", K_UE | K_USER | K_MAC},
    {"GetToken", "UserID", K_USER | K_NOT_UE},
    {"GetToken", "UserShortName", K_USER},
    {"GetToken", "UserLongName", K_USER | K_MAC},
};

static bool right(const sim_device_t *d, long bit)
{
    return d->access_rights < 0 || (d->access_rights & bit) != 0;
}

static bool wanted(const sim_device_t *d, const ck_key_t *k, const sim_checkin_opts_t *o, bool user_channel)
{
    unsigned f = k->flags;
    bool ios = strcmp(d->platform, "iOS") == 0;
    if ((f & K_NOT_UE) && d->user_enrollment) return false;
    if ((f & K_UE) && !d->user_enrollment) return false;
    if ((f & K_USER) && !user_channel) return false;
    if ((f & K_DEVICE_CH) && user_channel) return false;
    if (o->all_keys) return true;
    if ((f & K_IOS) && !ios) return false;
    if ((f & K_MAC) && ios) return false;
    /* User Enrollment ignores AccessRights: it has its own fixed limits. */
    if ((f & K_DEVINFO) && ios && !d->user_enrollment && !right(d, 16)) return false;
    if ((f & K_DEVINFO_ALL) && !right(d, 16)) return false;
    if ((f & K_LOCK) && !right(d, 4)) return false;
    if (f & K_EXTRA) {
        if (strcmp(k->key, "DigestResponse") == 0) return o->digest_response != NULL;
        if (strcmp(k->key, "Data") == 0)
            return o->data != NULL || (o->endpoint && strcmp(o->endpoint, "status") == 0);
        if (strcmp(k->key, "TokenParameters") == 0)
            return o->token_service && strcmp(o->token_service, "com.apple.watch.pairing") == 0;
        return false;
    }
    /* An iPad has no IMEI. */
    if ((strcmp(k->key, "IMEI") == 0 || strcmp(k->key, "MEID") == 0) && !d->imei[0]) return false;
    return true;
}

/* A declarative status report the way devices send their first one: the
 * device and management status items, no declarations yet. */
static char *status_report(const sim_device_t *d)
{
    json_t *j = json_pack("{s:{s:{s:{s:s?}, s:{s:s, s:s}, s:{s:s, s:s, s:s}}, s:{s:{s:[s]}}}, s:[]}",
                          "StatusItems", "device", "identifier", "udid", d->user_enrollment ? NULL : d->udid,
                          "model", "family", d->model_name, "identifier", d->product_name, "operating-system",
                          "family", d->platform, "version", d->os_version, "build-version", d->build_version,
                          "management", "client-capabilities", "supported-versions", "1.0.0", "Errors");
    if (!j) abort();
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}

static void add_key(plist_t m, const sim_device_t *d, const char *msg, const char *key,
                    const sim_checkin_opts_t *o, bool user_channel)
{
    unsigned char buf[64];
    if (strcmp(key, "MessageType") == 0) {
        sim_set_str(m, key, msg);
    } else if (strcmp(key, "Topic") == 0) {
        sim_set_str(m, key, d->topic);
    } else if (strcmp(key, "UDID") == 0) {
        sim_set_str(m, key, d->udid);
    } else if (strcmp(key, "EnrollmentID") == 0) {
        sim_set_str(m, key, d->enrollment_id);
    } else if (strcmp(key, "EnrollmentUserID") == 0) {
        sim_set_str(m, key, d->enrollment_user_id);
    } else if (strcmp(key, "OSVersion") == 0) {
        sim_set_str(m, key, d->os_version);
    } else if (strcmp(key, "BuildVersion") == 0) {
        sim_set_str(m, key, d->build_version);
    } else if (strcmp(key, "ProductName") == 0) {
        sim_set_str(m, key, d->product_name);
    } else if (strcmp(key, "SerialNumber") == 0) {
        sim_set_str(m, key, d->serial);
    } else if (strcmp(key, "IMEI") == 0) {
        sim_set_str(m, key, d->imei[0] ? d->imei : "35 254108 123456 7");
    } else if (strcmp(key, "MEID") == 0) {
        sim_set_str(m, key, d->meid[0] ? d->meid : "35254108123456");
    } else if (strcmp(key, "DeviceName") == 0) {
        sim_set_str(m, key, d->device_name);
    } else if (strcmp(key, "ModelName") == 0) {
        sim_set_str(m, key, d->model_name);
    } else if (strcmp(key, "Model") == 0) {
        sim_set_str(m, key, d->model);
    } else if (strcmp(key, "UserID") == 0) {
        sim_set_str(m, key, d->user_id);
    } else if (strcmp(key, "UserShortName") == 0) {
        sim_set_str(m, key, d->user_short_name);
    } else if (strcmp(key, "UserLongName") == 0) {
        sim_set_str(m, key, d->user_long_name);
    } else if (strcmp(key, "NotOnConsole") == 0) {
        sim_set_bool(m, key, false);
    } else if (strcmp(key, "Token") == 0) {
        sim_unhex(user_channel ? d->user_push_token : d->push_token, buf, 32);
        sim_set_data(m, key, buf, 32);
    } else if (strcmp(key, "PushMagic") == 0) {
        sim_set_str(m, key, user_channel ? d->user_push_magic : d->push_magic);
    } else if (strcmp(key, "UnlockToken") == 0) {
        sim_unhex(d->unlock_token, buf, 64);
        sim_set_data(m, key, buf, 64);
    } else if (strcmp(key, "AwaitingConfiguration") == 0) {
        sim_set_bool(m, key, o->awaiting_configuration);
    } else if (strcmp(key, "DigestResponse") == 0) {
        sim_set_str(m, key, o->digest_response ? o->digest_response : "d41d8cd98f00b204e9800998ecf8427e");
    } else if (strcmp(key, "BootstrapToken") == 0) {
        /* Stable per device: derived from its unlock token bytes. */
        sim_unhex(d->unlock_token, buf, 64);
        sim_set_data(m, key, buf, 64);
    } else if (strcmp(key, "Endpoint") == 0) {
        sim_set_str(m, key, o->endpoint ? o->endpoint : (o->all_keys ? "status" : "tokens"));
    } else if (strcmp(key, "Data") == 0) {
        if (o->data) {
            sim_set_data(m, key, o->data, o->data_len);
        } else {
            char *s = status_report(d);
            sim_set_data(m, key, (const unsigned char *)s, strlen(s));
            free(s);
        }
    } else if (strcmp(key, "TokenServiceType") == 0) {
        sim_set_str(m, key, o->token_service ? o->token_service : "com.apple.maid");
    } else if (strcmp(key, "TokenParameters") == 0) {
        plist_t p = plist_new_dict();
        char watch[37];
        sim_uuid(watch);
        sim_set_str(p, "SecurityToken", "c2VjdXJpdHktdG9rZW4tZnJvbS10aGUtd2F0Y2g");
        sim_set_str(p, "PhoneUDID", d->udid);
        sim_set_str(p, "WatchUDID", watch);
        plist_dict_set_item(m, key, p);
    }
}

plist_t sim_checkin_build(const sim_device_t *d, const char *message_type, const sim_checkin_opts_t *o,
                          char *err, size_t errlen)
{
    if (!sim_in_list(message_type, sim_checkin_types)) {
        sim_errf(err, errlen, "unknown check-in message '%s'", message_type ? message_type : "");
        return NULL;
    }
    /* Authenticate, CheckOut and the bootstrap token belong to the device
     * channel; UserAuthenticate only exists on the user channel. */
    bool user_channel = o->user_channel;
    if (strcmp(message_type, "Authenticate") == 0 || strcmp(message_type, "CheckOut") == 0 ||
        strcmp(message_type, "GetBootstrapToken") == 0 || strcmp(message_type, "SetBootstrapToken") == 0)
        user_channel = false;
    if (strcmp(message_type, "UserAuthenticate") == 0) user_channel = true;
    plist_t m = plist_new_dict();
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (strcmp(keys[i].msg, message_type) == 0 && wanted(d, &keys[i], o, user_channel))
            add_key(m, d, message_type, keys[i].key, o, user_channel);
    return m;
}

void sim_add_identity(plist_t dict, const sim_device_t *d, bool user_channel, bool with_topic)
{
    if (d->user_enrollment) {
        sim_set_str(dict, "EnrollmentID", d->enrollment_id);
        if (user_channel) sim_set_str(dict, "EnrollmentUserID", d->enrollment_user_id);
    } else {
        sim_set_str(dict, "UDID", d->udid);
        if (user_channel) sim_set_str(dict, "UserID", d->user_id);
    }
    if (user_channel) {
        sim_set_str(dict, "UserShortName", d->user_short_name);
        sim_set_str(dict, "UserLongName", d->user_long_name);
    }
    if (with_topic) sim_set_str(dict, "Topic", d->topic);
}
