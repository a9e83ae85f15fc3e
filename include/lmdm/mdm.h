/* Apple MDM protocol messages: parsing the device's check-in and command
 * (connect) plists into plain structs, and building the plists the broker
 * answers with. Pure: no I/O. Strings and data point into the caller's arena.
 *
 * The schema is Apple's (apple-device-management/mdm/checkin/, one YAML per message): every key
 * listed there is accepted; unknown keys are ignored, as devices add keys over
 * releases. A key with the wrong type is an error. */
#ifndef LMDM_MDM_H
#define LMDM_MDM_H

#include "lmdm/arena.h"
#include "lmdm/buf.h"
#include "lmdm/common.h"

#define LMDM_MDM_MAX_DEPTH 32 /* nesting deeper than this is refused before parsing */

typedef enum {
    LMDM_CHECKIN_AUTHENTICATE = 0,
    LMDM_CHECKIN_TOKEN_UPDATE,
    LMDM_CHECKIN_CHECK_OUT,
    LMDM_CHECKIN_USER_AUTHENTICATE,
    LMDM_CHECKIN_GET_BOOTSTRAP_TOKEN,
    LMDM_CHECKIN_SET_BOOTSTRAP_TOKEN,
    LMDM_CHECKIN_DECLARATIVE_MANAGEMENT,
    LMDM_CHECKIN_GET_TOKEN,
} lmdm_checkin_type_t;

typedef enum {
    LMDM_STATUS_IDLE = 0,
    LMDM_STATUS_ACKNOWLEDGED,
    LMDM_STATUS_ERROR,
    LMDM_STATUS_COMMAND_FORMAT_ERROR,
    LMDM_STATUS_NOT_NOW,
} lmdm_status_t;

/** A byte string from a <data> element (arena memory). */
typedef struct lmdm_bytes {
    const unsigned char *p;
    size_t len;
} lmdm_bytes_t;

/** Who is speaking: the device (device_key) and the channel (user_key). */
typedef struct lmdm_mdm_who {
    const char *udid;               /* device enrollment */
    const char *enrollment_id;      /* User Enrollment: per-enrollment device id */
    const char *enrollment_user_id; /* User Enrollment: the user channel */
    const char *user_id;            /* macOS user channel (UserID) */
    const char *user_short_name;
    const char *user_long_name;
    const char *device_key;         /* udid, else enrollment_id */
    const char *user_key;           /* user_id, else enrollment_user_id, else "" (device channel) */
    int user_enrollment;            /* identified by EnrollmentID rather than UDID */
} lmdm_mdm_who_t;

typedef struct lmdm_checkin {
    lmdm_checkin_type_t type;
    lmdm_mdm_who_t who;
    const char *topic;
    /* Authenticate: details kept private to the broker, as a JSON object text. */
    const char *info_json;
    /* TokenUpdate */
    lmdm_bytes_t token;
    const char *push_magic;
    lmdm_bytes_t unlock_token;
    int awaiting_configuration;
    /* SetBootstrapToken */
    lmdm_bytes_t bootstrap_token;
    /* DeclarativeManagement */
    const char *endpoint;
    lmdm_bytes_t data;
    /* GetToken */
    const char *token_service_type;
} lmdm_checkin_t;

typedef struct lmdm_connect {
    lmdm_mdm_who_t who;
    lmdm_status_t status;
    const char *command_uuid; /* required unless Idle; canonical lower-case */
} lmdm_connect_t;

/** Parse a check-in message. Returns 0, or LMDM_ERR_INVALID with a reason in
 * err ("not a property list", "unknown MessageType \"X\"", "UDID must be a
 * string", "missing UDID or EnrollmentID", ...). */
int lmdm_checkin_parse(const char *body, size_t len, lmdm_arena_t *arena, lmdm_checkin_t *out, char *err,
                       size_t errlen) LMDM_MUSTCHECK;

/** Parse a command-endpoint message (Status, CommandUUID, identity). */
int lmdm_connect_parse(const char *body, size_t len, lmdm_arena_t *arena, lmdm_connect_t *out, char *err,
                       size_t errlen) LMDM_MUSTCHECK;

const char *lmdm_checkin_type_name(lmdm_checkin_type_t t);
const char *lmdm_status_name(lmdm_status_t s);

/** Validate and canonicalise a UUID string (8-4-4-4-12 hex) into out (37 bytes,
 * lower case). Returns 0 or LMDM_ERR_INVALID. */
int lmdm_uuid_canon(const char *in, char out[37]) LMDM_MUSTCHECK;

/** Build the device-facing command plist {CommandUUID, Command} from a Command
 * dictionary given as an XML plist (the dictionary itself); the result is XML.
 * Refuses a Command without a string RequestType. *request_type is set to an
 * arena copy of it. */
int lmdm_command_wrap(const char *command_xml, size_t len, const char *command_uuid, lmdm_arena_t *arena,
                      lmdm_buf_t *out, const char **request_type, char *err, size_t errlen) LMDM_MUSTCHECK;

/** Parse an untrusted XML plist whose top level must be a dictionary, with
 * the nesting limit checked before libplist sees it. Returns a plist_t the
 * caller frees with plist_free(), or NULL with the reason in err. */
void *lmdm_mdm_plist_parse(const char *body, size_t len, char *err, size_t errlen);

#endif
