// A deterministic, seeded generator of realistic device and module twins (reference A.8, A.9), for
// tests and benchmarks. The same FleetSpec gives byte-identical output on every machine and run:
// the generator uses its own PRNG (splitmix64 / xoshiro256**) and integer arithmetic only (no
// std::*_distribution, no libm), and prints every number with a fixed number of decimals (trailing
// zeros dropped, so a line equals ToJson of its parsed value).
//
// Each device is generated from its own PRNG stream (seeded from spec.seed and its index), so the
// content of device i does not depend on the devices before it or on spec.devices.
//
// What a fleet holds (per device, independently):
//  - identity: deviceId "dev-0000042" (zero-padded to at least 7 digits, so lexical = numeric
//    order), etag (base64 of the version), deviceEtag, status ("enabled", ~4% "disabled" with a
//    statusReason and a statusUpdateTime), connectionState, lastActivityTime (over the year 2024;
//    ~0.5% "0001-01-01T00:00:00Z" for never-seen devices), cloudToDeviceMessageCount,
//    authenticationType (sas / selfSigned with hex thumbprints / certificateAuthority),
//    x509Thumbprint, modelId ("" or a dtmi), version;
//  - tags: building ("1".."buildings", string, Zipf), floor (0-20, number), region, location
//    {region, site, geo {lat, lon}} (consistent with the building), environment, deviceType,
//    firmwareChannel, targetFirmware; with optional_tag_share: owner, and sometimes
//    maintenanceWindow {day, startHour, durationHours} and the reserved-word key "group"; with
//    array_tag_share: roles ["sensor", ...] and sometimes labels; in ~0.1% of devices a
//    case-variant key "Floor" (string) beside "floor";
//  - properties.desired {telemetryConfig {sendFrequency}, $metadata, $version} (~15% of devices
//    never had a desired property: {$metadata, $version: 1}) and properties.reported
//    {batteryLevel (battery-powered devices: not edge, not wired), temperature (device types with
//    a sensor), firmwareVersion, telemetryConfig {sendFrequencyInSecs, status}, connectivity,
//    $metadata, $version} (never-seen devices reported nothing), $metadata carrying $lastUpdated
//    (desired: and $lastUpdatedVersion) at every level;
//  - capabilities {iotEdge}, deviceScope (edge devices and their children only), parentScopes.
// Edge devices (module_share) are followed by their module twins, sorted by moduleId: $edgeAgent,
// $edgeHub and 0-3 custom modules; module twins carry no tags.
// With the defaults a device line averages ~1.7 KB (a third of it $metadata timestamps) and a
// module line ~0.95 KB: 1M devices are ~1.7M lines, ~2.3 GB.
#ifndef TWINQ_INDEX_FLEET_GEN_H_
#define TWINQ_INDEX_FLEET_GEN_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/common/value.h"

namespace twinq::index {

struct FleetSpec {
  uint64_t devices = 1000;
  uint64_t seed = 7;
  // Fraction of devices that are IoT Edge devices with modules ($edgeAgent, $edgeHub + 0-3
  // custom modules).
  double module_share = 0.2;
  // Zipf-like exponent for value popularity (buildings, regions, firmware versions, ...);
  // 0 = uniform.
  double skew = 1.0;
  // Distinct tags.building values ("1".."buildings"); each building sits in one region (~10)
  // and site.
  uint32_t buildings = 200;
  // Share of devices with optional tags (tags.owner always, maintenanceWindow and "group" on
  // part of them).
  double optional_tag_share = 0.3;
  // Share of devices with array tags (tags.roles always, tags.labels on part of them).
  double array_tag_share = 0.2;
};
// Out-of-range values are clamped: shares to [0, 1] (NaN = 0), skew to [0, 8] (NaN = 0),
// buildings to at least 1.

// The deviceId of device `index` (0-based) in a fleet of `spec.devices` devices.
std::string FleetDeviceId(const FleetSpec& spec, uint64_t index);

// Writes device twins (and module twins after each edge device) as compact NDJSON lines, in
// deviceId order, calling `sink` once per line (no trailing newline). Lines are built directly
// as text, so any number of devices can be streamed in constant memory; the view is valid only
// during the call.
void GenerateFleet(const FleetSpec& spec, const std::function<void(std::string_view line)>& sink);

// Convenience: the same documents as Values, in the same order (for small fleets in tests).
std::vector<Value> GenerateFleetValues(const FleetSpec& spec);
// Convenience: the same lines as one NDJSON text, each line ended by '\n' (for small fleets).
std::string GenerateFleetNdjson(const FleetSpec& spec);

}  // namespace twinq::index

#endif  // TWINQ_INDEX_FLEET_GEN_H_
