// twinq: the Azure IoT Hub query language over device and module twins, as a library.
// This umbrella header includes the whole public API; docs/api.md describes it.
//
//   #include <twinq/twinq.h>
//   auto fleet = twinq::Fleet::FromTwinsFile("fleet.ndjson");
//   auto cond = twinq::Condition::Compile("tags.building = '43' AND tags.floor >= 2");
//   auto ids = cond->TargetIds(fleet->snapshot());
#ifndef TWINQ_TWINQ_H_
#define TWINQ_TWINQ_H_

#include "twinq/condition.h"
#include "twinq/fleet.h"
#include "twinq/jobs.h"
#include "twinq/query.h"
#include "twinq/status.h"

#define TWINQ_VERSION_MAJOR 0
#define TWINQ_VERSION_MINOR 1
#define TWINQ_VERSION_PATCH 0

namespace twinq {
// The library's version, "0.1.0" (may differ from the headers' if mismatched).
const char* Version();
}  // namespace twinq

#endif  // TWINQ_TWINQ_H_
