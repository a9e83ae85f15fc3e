/* One simulated device: what it learned from the enrollment profile, the
 * identifiers it invented (from the seedable generator), its identity, and
 * what it has installed through MDM. Saved as DIR/device.json plus
 * DIR/identity.pem. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sim.h"

typedef struct {
    const char *product, *model_name, *model;
} model_t;

static const model_t ios_models[] = {
    {"iPhone15,4", "iPhone", "MTLG3LL/A"},
    {"iPhone16,1", "iPhone", "MU663LL/A"},
    {"iPhone17,3", "iPhone", "MYE33LL/A"},
    {"iPad14,1", "iPad", "MK7M3LL/A"},
};
static const model_t mac_models[] = {
    {"Mac15,12", "MacBook Air", "Mac15,12"},
    {"Mac14,2", "MacBook Air", "Mac14,2"},
    {"Mac16,1", "MacBook Pro", "Mac16,1"},
};
static const char *const first_names[] = {"Dana", "Amira", "Jonas", "Mei", "Tomasz", "Ines", "Kofi", "Lena"};
static const char *const last_names[] = {"Okafor", "Lindqvist", "Moreau", "Tanaka", "Novak", "Silva"};

static void copy(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}
#define COPY(field, src) copy(field, sizeof field, src)

/* Apple serial numbers avoid the letters easily mistaken for digits. */
static void make_serial(char *out, size_t len)
{
    static const char alphabet[] = "0123456789CDFGHJKLMNPQRTVWXY";
    for (size_t i = 0; i < len; i++)
        out[i] = alphabet[sim_rand() % (sizeof alphabet - 1)];
    out[len] = '\0';
}

/* A 15-digit IMEI with a valid Luhn check digit, grouped like Settings
 * shows it ("35 254108 123456 7"). */
static void make_imei(char *imei, size_t imeilen, char *meid, size_t meidlen)
{
    int d[15] = {3, 5};
    for (int i = 2; i < 14; i++)
        d[i] = (int)(sim_rand() % 10);
    int sum = 0;
    for (int i = 0; i < 14; i++) {
        int v = d[i];
        if (i % 2 == 1) {
            v *= 2;
            if (v > 9) v -= 9;
        }
        sum += v;
    }
    d[14] = (10 - sum % 10) % 10;
    snprintf(imei, imeilen, "%d%d %d%d%d%d%d%d %d%d%d%d%d%d %d", d[0], d[1], d[2], d[3], d[4], d[5], d[6],
             d[7], d[8], d[9], d[10], d[11], d[12], d[13], d[14]);
    /* iPhones report the IMEI's first 14 digits as MEID. */
    char m[15];
    for (int i = 0; i < 14; i++)
        m[i] = (char)('0' + d[i]);
    m[14] = '\0';
    snprintf(meid, meidlen, "%s", m);
}

void sim_device_init(sim_device_t *d, const char *platform, bool user_enrollment)
{
    memset(d, 0, sizeof *d);
    bool mac = platform && strcmp(platform, "macOS") == 0;
    COPY(d->platform, mac ? "macOS" : "iOS");
    d->user_enrollment = user_enrollment;
    d->access_rights = -1;
    sim_uuid(d->udid);
    make_serial(d->serial, mac ? 10 : 12);
    sim_uuid(d->enrollment_id);
    sim_uuid(d->enrollment_user_id);
    unsigned char tok[64];
    sim_rand_bytes(tok, 32);
    sim_hex(tok, 32, d->push_token);
    sim_uuid(d->push_magic);
    sim_rand_bytes(tok, 32);
    sim_hex(tok, 32, d->user_push_token);
    sim_uuid(d->user_push_magic);
    sim_rand_bytes(tok, 64);
    sim_hex(tok, 64, d->unlock_token);
    const char *first = first_names[sim_rand() % (sizeof first_names / sizeof first_names[0])];
    const char *last = last_names[sim_rand() % (sizeof last_names / sizeof last_names[0])];
    if (mac) {
        const model_t *m = &mac_models[sim_rand() % (sizeof mac_models / sizeof mac_models[0])];
        COPY(d->product_name, m->product);
        COPY(d->model_name, m->model_name);
        COPY(d->model, m->model);
        COPY(d->os_version, "15.1");
        COPY(d->build_version, "24B83");
        snprintf(d->device_name, sizeof d->device_name, "%s's %s", first, m->model_name);
    } else {
        const model_t *m = &ios_models[sim_rand() % (sizeof ios_models / sizeof ios_models[0])];
        COPY(d->product_name, m->product);
        COPY(d->model_name, m->model_name);
        COPY(d->model, m->model);
        COPY(d->os_version, "18.1");
        COPY(d->build_version, "22B83");
        /* Since iOS 16 apps see the generic name unless entitled. */
        COPY(d->device_name, m->model_name);
        if (strcmp(m->model_name, "iPhone") == 0) make_imei(d->imei, sizeof d->imei, d->meid, sizeof d->meid);
    }
    sim_uuid(d->user_id);
    snprintf(d->user_short_name, sizeof d->user_short_name, "%s", first);
    for (char *p = d->user_short_name; *p; p++)
        if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
    snprintf(d->user_long_name, sizeof d->user_long_name, "%s %s", first, last);
    d->state = json_object();
}

void sim_device_clear(sim_device_t *d)
{
    if (!d) return;
    free(d->identity_pem);
    EVP_PKEY_free(d->key);
    X509_free(d->cert);
    json_decref(d->state);
    memset(d, 0, sizeof *d);
}

const char *sim_device_id(const sim_device_t *d)
{
    return d->user_enrollment ? d->enrollment_id : d->udid;
}

const char *sim_device_checkin_url(const sim_device_t *d)
{
    return d->checkin_url[0] ? d->checkin_url : d->server_url;
}

/* Length of "scheme://host[:port]" at the start of u (0 if not a URL). */
static size_t origin_len(const char *u)
{
    const char *p = strstr(u, "://");
    if (!p) return 0;
    p += 3;
    size_t n = strcspn(p, "/?#");
    return (size_t)(p - u) + n;
}

static int rewrite(char *url, size_t cap, const char *via, size_t vlen, char *err, size_t errlen)
{
    if (!url[0]) return 0;
    size_t o = origin_len(url);
    char buf[2048];
    int n = snprintf(buf, sizeof buf, "%.*s%s", (int)vlen, via, url + o);
    if (n < 0 || (size_t)n >= cap) {
        sim_errf(err, errlen, "rewritten URL too long");
        return -1;
    }
    memcpy(url, buf, (size_t)n + 1);
    return 0;
}

int sim_device_rewrite_origin(sim_device_t *d, const char *via, char *err, size_t errlen)
{
    size_t vlen = origin_len(via);
    if (!vlen || (strncmp(via, "http://", 7) != 0 && strncmp(via, "https://", 8) != 0)) {
        sim_errf(err, errlen, "'%s' is not an http(s) URL", via);
        return -1;
    }
    if (rewrite(d->server_url, sizeof d->server_url, via, vlen, err, errlen) != 0 ||
        rewrite(d->checkin_url, sizeof d->checkin_url, via, vlen, err, errlen) != 0)
        return -1;
    return 0;
}

static bool url_ok(const char *u)
{
    return u && (strncmp(u, "https://", 8) == 0 || strncmp(u, "http://", 7) == 0) && strlen(u) < 1024;
}

static plist_t find_payload(plist_t content, const char *key, const char *value)
{
    uint32_t n = plist_array_get_size(content);
    for (uint32_t i = 0; i < n; i++) {
        plist_t item = plist_array_get_item(content, i);
        char *v = sim_plist_str(item, key);
        bool hit = v && strcmp(v, value) == 0;
        free(v);
        if (hit) return item;
    }
    return NULL;
}

int sim_device_apply_profile(sim_device_t *d, const unsigned char *body, size_t len,
                             const char *const *ca_files, bool require_trust, char *err, size_t errlen)
{
    int rc = -1;
    plist_t root = NULL;
    char *s = NULL, *pem = NULL;
    X509 *signer = NULL;

    if (sim_profile_unwrap(body, len, ca_files, require_trust, &root, &d->profile_trust, &signer, err,
                           errlen) != 0)
        return -1;
    if (plist_get_node_type(root) != PLIST_DICT) {
        sim_errf(err, errlen, "profile is not a dictionary");
        goto out;
    }
    plist_t content = plist_dict_get_item(root, "PayloadContent");
    if (!content || plist_get_node_type(content) != PLIST_ARRAY) {
        sim_errf(err, errlen, "profile has no PayloadContent array");
        goto out;
    }
#define TAKE(field, dict, key)                                                                               \
    do {                                                                                                     \
        s = sim_plist_str(dict, key);                                                                        \
        COPY(field, s);                                                                                      \
        free(s);                                                                                             \
        s = NULL;                                                                                            \
    } while (0)
    TAKE(d->profile_identifier, root, "PayloadIdentifier");
    TAKE(d->profile_uuid, root, "PayloadUUID");
    TAKE(d->profile_display_name, root, "PayloadDisplayName");
    TAKE(d->profile_organization, root, "PayloadOrganization");

    /* A web clip the device would put on the home screen: the broker's owner
     * link (the first one, if several). */
    plist_t clip = find_payload(content, "PayloadType", "com.apple.webClip.managed");
    d->owner_url[0] = '\0';
    if (clip) TAKE(d->owner_url, clip, "URL");
    plist_t mdm = find_payload(content, "PayloadType", "com.apple.mdm");
    if (!mdm) {
        sim_errf(err, errlen, "profile has no com.apple.mdm payload");
        goto out;
    }
    s = sim_plist_str(mdm, "ServerURL");
    if (!url_ok(s)) {
        sim_errf(err, errlen, "MDM payload: ServerURL missing or not an http(s) URL");
        goto out;
    }
    COPY(d->server_url, s);
    free(s);
    s = sim_plist_str(mdm, "CheckInURL");
    if (s && !url_ok(s)) {
        sim_errf(err, errlen, "MDM payload: CheckInURL is not an http(s) URL");
        goto out;
    }
    COPY(d->checkin_url, s);
    free(s);
    s = sim_plist_str(mdm, "Topic");
    if (!s || !*s) {
        sim_errf(err, errlen, "MDM payload: Topic missing");
        goto out;
    }
    COPY(d->topic, s);
    free(s);
    s = NULL;
    plist_t sm = plist_dict_get_item(mdm, "SignMessage");
    uint8_t b = 0;
    if (sm && plist_get_node_type(sm) == PLIST_BOOLEAN) plist_get_bool_val(sm, &b);
    d->sign_message = b != 0;
    plist_t ar = plist_dict_get_item(mdm, "AccessRights");
    d->access_rights = -1;
    if (ar && plist_get_node_type(ar) == PLIST_UINT) {
        uint64_t v = 0;
        plist_get_uint_val(ar, &v);
        d->access_rights = (long)v;
    }
    /* User Enrollment: the MDM payload names the Managed Apple Account. */
    s = sim_plist_str(mdm, "AssignedManagedAppleID");
    if (!s) s = sim_plist_str(mdm, "ManagedAppleID");
    char *mode = sim_plist_str(mdm, "EnrollmentMode");
    if (s || (mode && strcmp(mode, "BYOD") == 0)) {
        d->user_enrollment = true;
        if (s) COPY(d->managed_apple_id, s);
    }
    free(mode);
    free(s);
    s = sim_plist_str(mdm, "IdentityCertificateUUID");
    if (!s || !*s) {
        sim_errf(err, errlen, "MDM payload: IdentityCertificateUUID missing");
        goto out;
    }
    plist_t ident = find_payload(content, "PayloadUUID", s);
    if (!ident) {
        sim_errf(err, errlen, "no payload has the PayloadUUID %s named by IdentityCertificateUUID", s);
        goto out;
    }
    free(s);
    s = sim_plist_str(ident, "PayloadType");
    if (s && strcmp(s, "com.apple.security.scep") == 0) {
        sim_errf(err, errlen, "the identity is a SCEP payload: lmdm-sim only takes PKCS#12 identities");
        goto out;
    }
    if (!s || strcmp(s, "com.apple.security.pkcs12") != 0) {
        sim_errf(err, errlen, "identity payload type %s is not com.apple.security.pkcs12", s ? s : "(none)");
        goto out;
    }
    free(s);
    s = NULL;
    plist_t data = plist_dict_get_item(ident, "PayloadContent");
    if (!data || plist_get_node_type(data) != PLIST_DATA) {
        sim_errf(err, errlen, "PKCS#12 payload has no PayloadContent data");
        goto out;
    }
    char *p12 = NULL;
    uint64_t p12len = 0;
    plist_get_data_val(data, &p12, &p12len);
    char *password = sim_plist_str(ident, "Password");
    int prc = sim_p12_to_pem((unsigned char *)p12, (size_t)p12len, password, &pem, err, errlen);
    free(p12);
    free(password);
    if (prc != 0) goto out;
    free(d->identity_pem);
    d->identity_pem = pem;
    pem = NULL;
    if (sim_device_load_identity(d, err, errlen) != 0) goto out;
    /* What ProfileList and CertificateList will show from now on. */
    json_decref(d->state);
    d->state = json_object();
    sim_state_add_profile(d, root, false, signer);
    sim_state_add_identity(d);
    rc = 0;
out:
    X509_free(signer);
    free(s);
    free(pem);
    plist_free(root);
    return rc;
}

int sim_device_load_identity(sim_device_t *d, char *err, size_t errlen)
{
    EVP_PKEY_free(d->key);
    X509_free(d->cert);
    d->key = NULL;
    d->cert = NULL;
    if (!d->identity_pem) {
        sim_errf(err, errlen, "device has no identity");
        return -1;
    }
    return sim_pem_identity(d->identity_pem, &d->key, &d->cert, err, errlen);
}

/* The string fields of device.json, in one table so that saving and loading
 * cannot drift apart. */
// clang-format off
#define STRFIELDS(X)                                                                                         \
    X(server_url) X(checkin_url) X(topic) X(profile_identifier) X(profile_uuid) X(profile_display_name)      \
    X(profile_organization) X(enroll_url) X(managed_apple_id) X(platform) X(udid) X(serial) X(enrollment_id) \
    X(enrollment_user_id) X(push_token) X(push_magic) X(user_push_token) X(user_push_magic) X(unlock_token)  \
    X(os_version) X(build_version) X(product_name) X(model) X(model_name) X(device_name) X(imei) X(meid)     \
    X(user_id) X(user_short_name) X(user_long_name) X(cacert) X(owner_url)
// clang-format on

json_t *sim_device_to_json(const sim_device_t *d)
{
    json_t *j = json_object();
#define PUT(f) json_object_set_new(j, #f, json_string(d->f));
    STRFIELDS(PUT)
#undef PUT
    json_object_set_new(j, "sign_message", json_boolean(d->sign_message));
    json_object_set_new(j, "user_enrollment", json_boolean(d->user_enrollment));
    json_object_set_new(j, "supervised", json_boolean(d->supervised));
    json_object_set_new(j, "access_rights", json_integer(d->access_rights));
    json_object_set_new(j, "state", d->state ? json_deep_copy(d->state) : json_object());
    return j;
}

int sim_device_from_json(sim_device_t *d, const json_t *j, char *err, size_t errlen)
{
    memset(d, 0, sizeof *d);
    if (!json_is_object(j)) {
        sim_errf(err, errlen, "device record is not a JSON object");
        return -1;
    }
#define GET(f)                                                                                               \
    {                                                                                                        \
        const char *v = json_string_value(json_object_get(j, #f));                                           \
        if (v && strlen(v) >= sizeof d->f) {                                                                 \
            sim_errf(err, errlen, "device record: %s too long", #f);                                         \
            return -1;                                                                                       \
        }                                                                                                    \
        COPY(d->f, v);                                                                                       \
    }
    STRFIELDS(GET)
#undef GET
    d->sign_message = json_is_true(json_object_get(j, "sign_message"));
    d->user_enrollment = json_is_true(json_object_get(j, "user_enrollment"));
    d->supervised = json_is_true(json_object_get(j, "supervised"));
    json_t *ar = json_object_get(j, "access_rights");
    d->access_rights = json_is_integer(ar) ? (long)json_integer_value(ar) : -1;
    json_t *st = json_object_get(j, "state");
    d->state = json_is_object(st) ? json_deep_copy(st) : json_object();
    if (!d->server_url[0] || !d->topic[0] || !sim_device_id(d)[0]) {
        sim_errf(err, errlen, "device record lacks server_url, topic or the device identifier");
        return -1;
    }
    if (strcmp(d->platform, "iOS") != 0 && strcmp(d->platform, "macOS") != 0) COPY(d->platform, "iOS");
    return 0;
}

int sim_device_save(const sim_device_t *d, const char *dir, char *err, size_t errlen)
{
    char path[4096];
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        sim_errf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    if (d->identity_pem) {
        snprintf(path, sizeof path, "%s/identity.pem", dir);
        if (sim_write_file(path, d->identity_pem, strlen(d->identity_pem), 0600, err, errlen) != 0) return -1;
    }
    json_t *j = sim_device_to_json(d);
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(j);
    if (!text) abort();
    size_t n = strlen(text);
    text = realloc(text, n + 2);
    if (!text) abort();
    text[n] = '\n';
    text[n + 1] = '\0';
    snprintf(path, sizeof path, "%s/device.json", dir);
    int rc = sim_write_file(path, text, n + 1, 0600, err, errlen);
    free(text);
    return rc;
}

int sim_device_load(sim_device_t *d, const char *dir, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/device.json", dir);
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j) {
        sim_errf(err, errlen, "%s: %s (run `lmdm-sim enroll` first)", path, je.text);
        return -1;
    }
    int rc = sim_device_from_json(d, j, err, errlen);
    json_decref(j);
    if (rc != 0) return -1;
    snprintf(path, sizeof path, "%s/identity.pem", dir);
    unsigned char *pem = NULL;
    size_t n = 0;
    if (sim_read_file(path, &pem, &n, err, errlen) != 0) return -1;
    d->identity_pem = (char *)pem;
    return sim_device_load_identity(d, err, errlen);
}
