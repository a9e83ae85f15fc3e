/* The decision for every tenant command, by RequestType.
 *
 * Interim table (the complete one, with scoping by entity and key-level rules,
 * is the policy issue's): wipe, lock, location, inventory and every
 * device-wide or account-level command are blocked with a reason; the
 * commands that manage a tenant's own apps, profiles and media are allowed;
 * anything not listed is blocked. Nothing is allowed by default. */
#include <stddef.h>
#include <string.h>

#include "lmdm/policy.h"

typedef struct {
    const char *request_type;
    lmdm_policy_kind_t kind;
    const char *reason;
    const char *explain;
} rule_t;

#define ALLOW(rt, why) {rt, LMDM_POLICY_ALLOW, NULL, why}
#define SCOPE(rt, why) {rt, LMDM_POLICY_SCOPE, NULL, why}
#define BLOCK(rt, code, why) {rt, LMDM_POLICY_BLOCK, code, why}

static const rule_t rules[] = {
    /* A tenant's own apps, profiles, media. */
    SCOPE("InstallApplication", "installs one of the organization's apps"),
    SCOPE("RemoveApplication", "removes one of the organization's apps"),
    SCOPE("InstallEnterpriseApplication", "installs one of the organization's in-house apps"),
    SCOPE("InstallProfile", "installs the organization's configuration (accounts, domains, VPN)"),
    SCOPE("RemoveProfile", "removes the organization's configuration"),
    SCOPE("ManagedApplicationConfiguration", "reads the configuration of the organization's apps"),
    SCOPE("ManagedApplicationAttributes", "reads attributes of the organization's apps"),
    SCOPE("ManagedApplicationFeedback", "reads feedback of the organization's apps"),
    SCOPE("ValidateApplications", "re-validates the organization's in-house apps"),
    ALLOW("ManagedApplicationList", "lists managed apps (answers are filtered to the organization's own)"),
    SCOPE("InstallMedia", "installs one of the organization's books"),
    SCOPE("RemoveMedia", "removes one of the organization's books"),
    ALLOW("ManagedMediaList", "lists managed books (answers are filtered to the organization's own)"),
    ALLOW("ApplyRedemptionCode", "redeems an app the organization bought"),
    ALLOW("InviteToProgram", "invites the user to the organization's app program"),

    /* Never, whoever asks. */
    BLOCK("EraseDevice", "wipe", "no organization can erase the device"),
    BLOCK("DeviceLock", "lock", "no organization can lock the device"),
    BLOCK("EnableLostMode", "lock", "no organization can put the device in Lost Mode"),
    BLOCK("DisableLostMode", "lock", "no organization can control Lost Mode"),
    BLOCK("PlayLostModeSound", "lock", "no organization can control Lost Mode"),
    BLOCK("DeviceLocation", "location", "no organization can locate the device"),
    BLOCK("DeviceInformation", "inventory", "device details (serial number, phone number, ...) stay private"),
    BLOCK("SecurityInfo", "inventory", "security state is reported through the broker's merged rules only"),
    BLOCK("InstalledApplicationList", "inventory", "the owner's own apps stay private"),
    BLOCK("CertificateList", "inventory", "the device's certificates stay private"),
    BLOCK("ProfileList", "inventory", "the device's profiles stay private"),
    BLOCK("ProvisioningProfileList", "inventory", "the device's provisioning profiles stay private"),
    BLOCK("UserList", "inventory", "the device's user accounts stay private"),
    BLOCK("ContentCachingInformation", "inventory", "network details stay private"),
    BLOCK("ActiveNSExtensions", "inventory", "the owner's extensions stay private"),
    BLOCK("NSExtensionMappings", "inventory", "the owner's extensions stay private"),
    BLOCK("RestartDevice", "power", "no organization can restart the device"),
    BLOCK("ShutDownDevice", "power", "no organization can shut the device down"),
    BLOCK("ClearPasscode", "passcode", "no organization can remove the passcode"),
    BLOCK("ClearRestrictionsPassword", "passcode", "no organization can clear the restrictions password"),
    BLOCK("Restrictions", "device_wide", "device-wide restrictions are not an organization's"),
    BLOCK("Settings", "device_wide", "device-wide settings go through the broker's merged rules"),
    BLOCK("ScheduleOSUpdate", "device_wide", "OS updates go through the broker's merged update plan"),
    BLOCK("ScheduleOSUpdateScan", "device_wide", "OS updates go through the broker's merged update plan"),
    BLOCK("AvailableOSUpdates", "device_wide", "OS updates go through the broker's merged update plan"),
    BLOCK("OSUpdateStatus", "device_wide", "OS update state is reported by the broker"),
    BLOCK("DeclarativeManagement", "device_wide", "declarations are the broker's own"),
    BLOCK("RefreshCellularPlans", "device_wide", "cellular plans are the owner's"),
    BLOCK("DeleteUser", "users", "no organization can delete a user"),
    BLOCK("LogOutUser", "users", "no organization can log a user out"),
    BLOCK("UnlockUserAccount", "users", "no organization can unlock user accounts"),
    BLOCK("AccountConfiguration", "users", "no organization can create local accounts"),
    BLOCK("SetAutoAdminPassword", "users", "no organization can set an admin password"),
    BLOCK("UserConfigured", "users", "set-up is the owner's"),
    BLOCK("DeviceConfigured", "users", "set-up is the owner's"),
    BLOCK("RequestUnlockToken", "passcode", "no organization can obtain an unlock token"),
    BLOCK("RotateFileVaultKey", "passcode", "FileVault recovery keys are never escrowed to an organization"),
    BLOCK("SetFirmwarePassword", "firmware", "no organization can set a firmware password"),
    BLOCK("VerifyFirmwarePassword", "firmware", "no organization can use the firmware password"),
    BLOCK("SetRecoveryLock", "firmware", "no organization can set a recovery lock"),
    BLOCK("VerifyRecoveryLock", "firmware", "no organization can use the recovery lock"),
    BLOCK("ActivationLockBypassCode", "activation_lock", "no organization can bypass Activation Lock"),
    BLOCK("ClearActivationLockBypassCode", "activation_lock", "no organization can bypass Activation Lock"),
    BLOCK("EnableRemoteDesktop", "remote_desktop", "no organization can control the screen"),
    BLOCK("DisableRemoteDesktop", "remote_desktop", "no organization can control the screen"),
    BLOCK("RequestMirroring", "remote_desktop", "no organization can mirror the screen"),
    BLOCK("StopMirroring", "remote_desktop", "no organization can mirror the screen"),
    BLOCK("LOMDeviceRequest", "firmware", "lights-out management is the operator's"),
    BLOCK("LOMSetupRequest", "firmware", "lights-out management is the operator's"),
    BLOCK("InstallProvisioningProfile", "device_wide", "provisioning profiles are device-wide"),
    BLOCK("RemoveProvisioningProfile", "device_wide", "provisioning profiles are device-wide"),
};

lmdm_policy_decision_t lmdm_policy_decide_command(const char *request_type)
{
    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
        if (request_type && strcmp(rules[i].request_type, request_type) == 0)
            return (lmdm_policy_decision_t){rules[i].kind, rules[i].reason, rules[i].explain};
    }
    return (lmdm_policy_decision_t){LMDM_POLICY_BLOCK, "unknown_command",
                                    "the broker has no rule for this command, so it is refused"};
}

const char *lmdm_policy_kind_name(lmdm_policy_kind_t kind)
{
    switch (kind) {
    case LMDM_POLICY_ALLOW: return "allow";
    case LMDM_POLICY_SCOPE: return "scope";
    case LMDM_POLICY_MERGE: return "merge";
    case LMDM_POLICY_BLOCK: return "block";
    }
    return "block";
}

/* Keys that identify the device or its owner. They are removed from every
 * answer, wherever they appear. */
static const char *const private_keys[] = {
    "UDID", "EnrollmentID", "EnrollmentUserID", "UserID", "UserShortName", "UserLongName",
    "SerialNumber", "IMEI", "MEID", "PhoneNumber", "ICCID", "EID", "WiFiMAC", "BluetoothMAC",
    "EthernetMAC", "EthernetMACs", "DeviceName", "HostName", "LocalHostName", "EASDeviceIdentifier",
    "ProvisioningUDID", "DeviceID", "SubscriberMCC", "SubscriberMNC", "CurrentMCC", "CurrentMNC",
    "SIMMCC", "SIMMNC", "CarrierSettingsVersion", "ServiceSubscriptions", "Latitude", "Longitude",
};

int lmdm_policy_result_key_visible(const char *request_type, const char *key)
{
    (void)request_type;
    for (size_t i = 0; i < sizeof(private_keys) / sizeof(private_keys[0]); i++)
        if (strcmp(private_keys[i], key) == 0) return 0;
    return 1;
}
