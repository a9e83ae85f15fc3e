/* MDM message parsing against Apple's schema and real captured messages:
 * every check-in MessageType with every key of its schema is accepted; the
 * captured Authenticate/TokenUpdate/CheckOut and command answers parse; hostile
 * bodies are refused with a reason and never crash. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "lmdm/buf.h"
#include "lmdm/mdm.h"

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    *len = fread(buf, 1, (size_t)n, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

static const char *env_dir(const char *name)
{
    const char *d = getenv(name);
    if (!d) {
        fprintf(stderr, "%s is not set (run through ctest)\n", name);
        exit(2);
    }
    return d;
}

/* A plist value of the schema type, as XML. */
static const char *value_for(const char *type, const char *key, const char *msg)
{
    if (strcmp(key, "MessageType") == 0) return NULL; /* written separately */
    if (strcmp(key, "Endpoint") == 0) return "<string>tokens</string>";
    if (strcmp(key, "PushMagic") == 0) return "<string>2B3C7B4E-7E4E-4C1A-9E0B-5C3E2F1A0B9C</string>";
    if (strcmp(key, "Status") == 0) return "<string>Idle</string>";
    (void)msg;
    if (strstr(type, "<string>")) return "<string>value-1</string>";
    if (strstr(type, "<data>")) return "<data>AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=</data>";
    if (strstr(type, "<boolean>")) return "<true/>";
    if (strstr(type, "<integer>")) return "<integer>1</integer>";
    if (strstr(type, "<dictionary>")) return "<dict><key>SecurityToken</key><string>x</string></dict>";
    if (strstr(type, "<array>")) return "<array/>";
    return "<string>other</string>";
}

/* Build a message with every top-level payload key of an Apple check-in schema
 * (a line-based reader: top-level entries are "- key: X" at column 0 under
 * "payloadkeys:", followed by "  type: <...>"). */
static int build_from_schema(const char *path, lmdm_buf_t *out, char *msgtype, size_t mtlen, int *nkeys)
{
    size_t len;
    char *y = slurp(path, &len);
    if (!y) return -1;
    lmdm_buf_puts(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\"><dict>");
    int in_keys = 0;
    char key[128] = "";
    *nkeys = 0;
    msgtype[0] = '\0';
    for (char *line = strtok(y, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "  requesttype: ", 15) == 0) snprintf(msgtype, mtlen, "%s", line + 15);
        if (strncmp(line, "payloadkeys:", 12) == 0) in_keys = 1;
        else if (line[0] != ' ' && line[0] != '-') in_keys = 0;
        if (!in_keys) continue;
        if (strncmp(line, "- key: ", 7) == 0) snprintf(key, sizeof key, "%s", line + 7);
        else if (key[0] && strncmp(line, "  type: ", 8) == 0) {
            const char *v = value_for(line + 8, key, msgtype);
            if (v) lmdm_buf_printf(out, "<key>%s</key>%s", key, v);
            (*nkeys)++;
            key[0] = '\0';
        }
    }
    /* The bootstrap-token schemas list no identity key, but every check-in
     * carries the device's UDID (a message nobody sent cannot be answered). */
    if (!strstr(out->data, "<key>UDID</key>") && !strstr(out->data, "<key>EnrollmentID</key>"))
        lmdm_buf_puts(out, "<key>UDID</key><string>UDID-FROM-ENVELOPE</string>");
    lmdm_buf_printf(out, "<key>MessageType</key><string>%s</string></dict></plist>\n", msgtype);
    free(y);
    return 0;
}

static void test_every_checkin_schema(void)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/mdm/checkin", env_dir("LMDM_SPEC"));
    DIR *d = opendir(dir);
    CHECK(d != NULL);
    if (!d) return;
    int files = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strstr(e->d_name, ".yaml")) continue;
        char path[2048], mt[64];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        lmdm_buf_t b = {0};
        int nkeys = 0;
        CHECK_INT_EQ(build_from_schema(path, &b, mt, sizeof mt, &nkeys), 0);
        CHECK(nkeys >= 2);
        lmdm_arena_t *a = lmdm_arena_new(0);
        lmdm_checkin_t c;
        char err[256] = "";
        int rv = lmdm_checkin_parse(b.data, b.len, a, &c, err, sizeof err);
        if (rv != 0) fprintf(stderr, "  %s (%d keys): %s\n", mt, nkeys, err);
        CHECK_INT_EQ(rv, 0);
        if (rv == 0) CHECK_STR_EQ(lmdm_checkin_type_name(c.type), mt);
        lmdm_arena_free(a);
        lmdm_buf_free(&b);
        files++;
    }
    closedir(d);
    CHECK_INT_EQ(files, 8); /* every MessageType Apple defines */
}

/* A captured message from tests/data/vectors (malloc'd, NUL-terminated). */
static char *read_vector(const char *rel, size_t *len)
{
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", env_dir("LMDM_VECTORS"), rel);
    char *body = slurp(path, len);
    if (!body) fprintf(stderr, "  cannot read %s\n", path);
    return body;
}

/* The device key of a vector is whatever it carries; check type and that a key exists. */
static void parse_any(const char *rel, int want_type)
{
    size_t len;
    char *body = read_vector(rel, &len);
    CHECK(body != NULL);
    if (!body) return;
    lmdm_arena_t *a = lmdm_arena_new(0);
    lmdm_checkin_t c;
    char err[256] = "";
    int rv = lmdm_checkin_parse(body, len, a, &c, err, sizeof err);
    if (rv) fprintf(stderr, "  %s: %s\n", rel, err);
    CHECK_INT_EQ(rv, 0);
    if (!rv) {
        CHECK_INT_EQ(c.type, want_type);
        CHECK(c.who.device_key && *c.who.device_key);
    }
    lmdm_arena_free(a);
    free(body);
}

static void test_vectors(void)
{
    static const struct {
        const char *rel;
        int type;
    } v[] = {
        {"micromdm_nanomdm/mdm/testdata/Authenticate.1.plist", LMDM_CHECKIN_AUTHENTICATE},
        {"micromdm_nanomdm/mdm/testdata/Authenticate.2.plist", LMDM_CHECKIN_AUTHENTICATE},
        {"micromdm_nanomdm/mdm/testdata/TokenUpdate.1.plist", LMDM_CHECKIN_TOKEN_UPDATE},
        {"cmdmnt_commandment/testdata/Authenticate/IOS-11.3.1.xml", LMDM_CHECKIN_AUTHENTICATE},
        {"cmdmnt_commandment/testdata/Authenticate/IOS-9.x.xml", LMDM_CHECKIN_AUTHENTICATE},
        {"cmdmnt_commandment/testdata/Authenticate/10.11.x.xml", LMDM_CHECKIN_AUTHENTICATE},
        {"cmdmnt_commandment/testdata/CheckOut/iOS-11.3.1.xml", LMDM_CHECKIN_CHECK_OUT},
        {"cmdmnt_commandment/testdata/CheckOut/10.11.x.xml", LMDM_CHECKIN_CHECK_OUT},
        {"cmdmnt_commandment/testdata/TokenUpdate/10.11.x.plist", LMDM_CHECKIN_TOKEN_UPDATE},
        {"cmdmnt_commandment/testdata/TokenUpdate/10.11.x-user.plist", LMDM_CHECKIN_TOKEN_UPDATE},
        {"cmdmnt_commandment/testdata/TokenUpdate/10.12.2.xml", LMDM_CHECKIN_TOKEN_UPDATE},
        {"cmdmnt_commandment/testdata/TokenUpdate/iOS-11.3.1.xml", LMDM_CHECKIN_TOKEN_UPDATE},
        {"micromdm_micromdm/mdm/checkin/testdata/TokenUpdate.plist", LMDM_CHECKIN_TOKEN_UPDATE},
    };
    for (size_t i = 0; i < LMDM_ARRAY_LEN(v); i++) parse_any(v[i].rel, v[i].type);
}

static void test_user_channel(void)
{
    size_t len;
    char *body = read_vector("cmdmnt_commandment/testdata/TokenUpdate/10.11.x-user.plist", &len);
    CHECK(body != NULL);
    if (!body) return;
    lmdm_arena_t *a = lmdm_arena_new(0);
    lmdm_checkin_t c;
    char err[256];
    CHECK_INT_EQ(lmdm_checkin_parse(body, len, a, &c, err, sizeof err), 0);
    CHECK(c.who.user_key && *c.who.user_key); /* kept apart from the device channel */
    lmdm_arena_free(a);
    free(body);
}

/* Command answers captured from devices parse as connect messages. */
static void test_command_answers(void)
{
    static const char *const rel[] = {
        "cmdmnt_commandment/testdata/NotNow/iOS-11.3.1.xml",
        "cmdmnt_commandment/testdata/ProfileList/10.11.x.xml",
        "cmdmnt_commandment/testdata/SecurityInfo/iOS-11.3.1.xml",
        "cmdmnt_commandment/testdata/Errors/iOS-11.3.1-CommandFormatError.xml",
        "cmdmnt_commandment/testdata/Errors/iOS-11.3.1-RemoveProfile-Unmanaged.xml",
        "cmdmnt_commandment/testdata/Errors/error_invalid_request_type.plist",
        "cmdmnt_commandment/testdata/InstalledApplicationList/iOS-11.3.1.xml",
        "cmdmnt_commandment/testdata/ManagedApplicationList/iOS-12.1-Managed.xml",
        "cmdmnt_commandment/testdata/DeviceInformation/macOS-10.13.1.xml",
        "micromdm_nanomdm/mdm/testdata/DeviceInformation.1.plist",
        "zentralopensource_zentral/tests/mdm/testdata/installed_application_list.plist",
        "zentralopensource_zentral/tests/mdm/testdata/profile_list.plist",
    };
    for (size_t i = 0; i < LMDM_ARRAY_LEN(rel); i++) {
        size_t len;
        char *body = read_vector(rel[i], &len);
        CHECK(body != NULL);
        if (!body) continue;
        lmdm_arena_t *a = lmdm_arena_new(0);
        lmdm_connect_t m;
        char err[256] = "";
        int rv = lmdm_connect_parse(body, len, a, &m, err, sizeof err);
        /* Some captures had their UDID removed; those must fail for that reason only. */
        if (rv) {
            fprintf(stderr, "  %s: %s\n", rel[i], err);
            CHECK_STR_CONTAINS(err, "UDID");
        } else {
            CHECK(m.status != LMDM_STATUS_IDLE);
            CHECK(m.command_uuid != NULL);
        }
        lmdm_arena_free(a);
        free(body);
    }
}

static int parse_fails(const char *body, const char *reason)
{
    lmdm_arena_t *a = lmdm_arena_new(0);
    lmdm_checkin_t c;
    lmdm_connect_t m;
    char err[256] = "", err2[256] = "";
    int rv1 = lmdm_checkin_parse(body, strlen(body), a, &c, err, sizeof err);
    int rv2 = lmdm_connect_parse(body, strlen(body), a, &m, err2, sizeof err2);
    lmdm_arena_free(a);
    if (reason && !strstr(err, reason) && !strstr(err2, reason)) {
        fprintf(stderr, "  reasons \"%s\" / \"%s\" lack \"%s\"\n", err, err2, reason);
        return 0;
    }
    return rv1 == LMDM_ERR_INVALID && rv2 == LMDM_ERR_INVALID;
}

#define PL(x) "<?xml version=\"1.0\"?><plist version=\"1.0\"><dict>" x "</dict></plist>"

static void test_hostile(void)
{
    CHECK(parse_fails("", "empty"));
    CHECK(parse_fails("not xml at all", "not a property list"));
    CHECK(parse_fails("bplist00\x01\x02", "binary"));
    CHECK(parse_fails("<?xml version=\"1.0\"?><plist version=\"1.0\"><array/></plist>", "dictionary"));
    CHECK(parse_fails(PL("<key>UDID</key><string>x</string>"), "missing"));
    CHECK(parse_fails(PL("<key>MessageType</key><string>Reboot</string><key>UDID</key><string>x</string>"
                         "<key>Status</key><string>Sleeping</string>"),
                      "unknown"));
    CHECK(parse_fails(PL("<key>MessageType</key><integer>3</integer><key>Status</key><true/>"), "must be a string"));
    CHECK(parse_fails(PL("<key>MessageType</key><string>CheckOut</string><key>UDID</key><integer>1</integer>"
                         "<key>Status</key><string>Idle</string>"),
                      "UDID must be a string"));
    CHECK(parse_fails(PL("<key>MessageType</key><string>TokenUpdate</string><key>UDID</key><string>x</string>"
                         "<key>Status</key><string>Acknowledged</string><key>CommandUUID</key><string>zz</string>"),
                      NULL));
    /* deep nesting is refused before libplist sees it */
    lmdm_buf_t deep = {0};
    lmdm_buf_puts(&deep, "<?xml version=\"1.0\"?><plist version=\"1.0\"><dict><key>a</key>");
    for (int i = 0; i < 100000; i++) lmdm_buf_puts(&deep, "<array>");
    CHECK(parse_fails(deep.data, "nesting"));
    lmdm_buf_free(&deep);
    /* a huge array is fine to parse but has no MessageType */
    lmdm_buf_t wide = {0};
    lmdm_buf_puts(&wide, "<?xml version=\"1.0\"?><plist version=\"1.0\"><dict><key>a</key><array>");
    for (int i = 0; i < 100000; i++) lmdm_buf_puts(&wide, "<integer>1</integer>");
    lmdm_buf_puts(&wide, "</array></dict></plist>");
    CHECK(parse_fails(wide.data, "missing"));
    lmdm_buf_free(&wide);
    /* truncated document */
    CHECK(parse_fails("<?xml version=\"1.0\"?><plist version=\"1.0\"><dict><key>MessageType</key><str", NULL));
    /* Idle needs no CommandUUID; others do */
    lmdm_arena_t *a = lmdm_arena_new(0);
    lmdm_connect_t m;
    char err[256];
    const char *idle = PL("<key>UDID</key><string>U1</string><key>Status</key><string>Idle</string>");
    CHECK_INT_EQ(lmdm_connect_parse(idle, strlen(idle), a, &m, err, sizeof err), 0);
    CHECK_INT_EQ(m.status, LMDM_STATUS_IDLE);
    CHECK_STR_EQ(m.who.user_key, "");
    const char *ack = PL("<key>UDID</key><string>U1</string><key>Status</key><string>Acknowledged</string>");
    CHECK_INT_EQ(lmdm_connect_parse(ack, strlen(ack), a, &m, err, sizeof err), LMDM_ERR_INVALID);
    CHECK_STR_CONTAINS(err, "CommandUUID");
    const char *ue = PL("<key>EnrollmentID</key><string>E1</string><key>EnrollmentUserID</key><string>EU1</string>"
                        "<key>Status</key><string>NotNow</string>"
                        "<key>CommandUUID</key><string>AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE</string>");
    CHECK_INT_EQ(lmdm_connect_parse(ue, strlen(ue), a, &m, err, sizeof err), 0);
    CHECK(m.who.user_enrollment);
    CHECK_STR_EQ(m.who.device_key, "E1");
    CHECK_STR_EQ(m.who.user_key, "EU1");
    CHECK_STR_EQ(m.command_uuid, "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee");
    lmdm_arena_free(a);
}

static void test_command_wrap(void)
{
    const char *cmd = "<?xml version=\"1.0\"?><plist version=\"1.0\"><dict><key>RequestType</key>"
                      "<string>ProfileList</string></dict></plist>";
    lmdm_arena_t *a = lmdm_arena_new(0);
    lmdm_buf_t out = {0};
    const char *rt = NULL;
    char err[256];
    CHECK_INT_EQ(lmdm_command_wrap(cmd, strlen(cmd), "0b8b5c57-1111-2222-3333-444455556666", a, &out, &rt, err,
                                   sizeof err),
                 0);
    CHECK_STR_EQ(rt, "ProfileList");
    CHECK_STR_CONTAINS(out.data, "<key>CommandUUID</key>");
    CHECK_STR_CONTAINS(out.data, "0b8b5c57-1111-2222-3333-444455556666");
    CHECK_STR_CONTAINS(out.data, "<key>Command</key>");
    lmdm_buf_free(&out);
    const char *bad = "<?xml version=\"1.0\"?><plist version=\"1.0\"><dict><key>Foo</key><true/></dict></plist>";
    CHECK_INT_EQ(lmdm_command_wrap(bad, strlen(bad), "x", a, &out, &rt, err, sizeof err), LMDM_ERR_INVALID);
    CHECK_STR_CONTAINS(err, "RequestType");
    lmdm_arena_free(a);
    char canon[37];
    CHECK_INT_EQ(lmdm_uuid_canon("not-a-uuid", canon), LMDM_ERR_INVALID);
    CHECK_INT_EQ(lmdm_uuid_canon("0B8B5C57-1111-2222-3333-44445555666G", canon), LMDM_ERR_INVALID);
}

int main(void)
{
    RUN(test_every_checkin_schema);
    RUN(test_vectors);
    RUN(test_user_channel);
    RUN(test_command_answers);
    RUN(test_hostile);
    RUN(test_command_wrap);
    return harness_finish();
}
