/* Facts the broker keeps from a DeclarativeManagement status report (the
 * JSON a device sends to the "status" endpoint): its OS version, build and
 * model identifier (the OS-update plan needs them: the enrollment profile
 * asks no device-information right, so DeviceInformation cannot), and the
 * declaration types it supports (whether it takes the OS-update enforcement
 * declaration). Pure: broker/mdm/ddm_status.c. */
#ifndef LMDM_DDM_STATUS_H
#define LMDM_DDM_STATUS_H

#include <stddef.h>

/** A JSON object (malloc'd text) with the facts the report holds, under the
 * keys of the device's details: OSVersion, BuildVersion, ProductName,
 * DeclarationTypes (an array); "{}" when it holds none of them. Values
 * that are not what they should be (a version that is not digits and dots,
 * overlong strings, ...) are left out. NULL with a reason when the report
 * is not a JSON object with a StatusItems object. */
char *lmdm_ddm_status_facts(const void *data, size_t len, char *err, size_t errlen);

#endif
