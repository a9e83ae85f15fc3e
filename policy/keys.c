/* Key-level rules: which DeviceInformation queries a tenant may ask, which
 * restrictions govern managed data only, and which keys of a device's answer
 * a tenant may see. */
#include <string.h>

#include "lmdm/policy.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static int in(const char *const *list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], s) == 0) return 1;
    return 0;
}

/* DeviceInformation queries that identify nothing: OS and model family, the
 * facts an organization needs for compatibility and OS-update compliance. */
static const char *const allowed_queries[] = {
    "AvailableDeviceCapacity", "BuildVersion", "DeviceCapacity", "IsAppleSilicon", "IsSupervised",
    "Model", "ModelName", "OSVersion", "ProductName", "SupplementalBuildVersion", "SupplementalOSVersionExtra",
};

int lmdm_policy_query_allowed(const char *query)
{
    return query && in(allowed_queries, COUNT(allowed_queries), query);
}

/* com.apple.applicationaccess keys that govern only managed data (where data
 * of managed apps may flow). Everything else in the payload is device-wide and
 * refused. */
static const char *const managed_data_keys[] = {
    "allowEnterpriseBookBackup", "allowEnterpriseBookMetadataSync", "allowManagedAppsCloudSync",
    "allowManagedToWriteUnmanagedContacts", "allowOpenFromManagedToUnmanaged", "allowOpenFromUnmanagedToManaged",
    "allowUnmanagedToReadManagedContacts", "forceAirDropUnmanaged", "requireManagedPasteboard",
};

/* Keys every payload carries. */
static const char *const common_keys[] = {
    "PayloadDescription", "PayloadDisplayName", "PayloadIdentifier", "PayloadOrganization",
    "PayloadType", "PayloadUUID", "PayloadVersion",
};

int lmdm_policy_managed_data_key(const char *key)
{
    return key && (in(managed_data_keys, COUNT(managed_data_keys), key) || in(common_keys, COUNT(common_keys), key));
}

/* Keys that identify the device or its owner. They are removed from every
 * answer, wherever they appear. */
static const char *const private_keys[] = {
    "BluetoothMAC", "CarrierSettingsVersion", "CurrentMCC", "CurrentMNC", "DeviceID", "DeviceName",
    "EASDeviceIdentifier", "EID", "EnrollmentID", "EnrollmentUserID", "EthernetMAC", "EthernetMACs",
    "HostName", "ICCID", "IMEI", "Latitude", "LocalHostName", "Longitude", "MEID", "PhoneNumber",
    "ProvisioningUDID", "SerialNumber", "ServiceSubscriptions", "SIMMCC", "SIMMNC", "SubscriberMCC",
    "SubscriberMNC", "UDID", "UserID", "UserLongName", "UserShortName", "WiFiMAC",
};

int lmdm_policy_result_key_visible(const char *request_type, const char *key)
{
    (void)request_type;
    return !in(private_keys, COUNT(private_keys), key);
}

/* SecurityInfo: passcode and encryption compliance, nothing else. */
static const char *const security_info_keys[] = {
    "FDE_Enabled", "HardwareEncryptionCaps", "PasscodeCompliant", "PasscodeCompliantWithProfiles",
    "PasscodePresent",
};

int lmdm_policy_info_key_allowed(const char *request_type, const char *key)
{
    if (!request_type || !key) return 0;
    if (strcmp(request_type, "SecurityInfo") == 0) return in(security_info_keys, COUNT(security_info_keys), key);
    if (strcmp(request_type, "DeviceInformation") == 0) return lmdm_policy_query_allowed(key);
    return 0;
}
