// Job requests (reference/iothub.md B.2): the JSON body of PUT /jobs/v2/{jobId}, parsed and
// validated into a JobRequest. Every error is an Error whose message starts with the service's
// error code, then the field, then what is wrong, e.g.
//   GenericBadRequest: type: 'scheduleTwinUpdate' is an old spelling that is not accepted; use
//   'scheduleUpdateTwin'
//   ArgumentInvalid: startTime "2022-13-01T00:00:00Z": month 13 is out of range (01-12)
//   PreconditionFailed: updateTwin.etag must be "*" (twin jobs force the update), not "AAAA"
//   ArgumentInvalid: queryCondition: error[E200] <queryCondition>:1:1: unknown function ...
// (condition diagnostics are rendered with line:column and a caret). See docs/jobs.md.
#ifndef TWINQ_JOBS_JOB_REQUEST_H_
#define TWINQ_JOBS_JOB_REQUEST_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "engine/check/bound.h"
#include "engine/common/result.h"
#include "engine/common/value.h"

namespace twinq::jobs {

enum class JobType : uint8_t { kDeviceMethod, kUpdateTwin };
std::string_view JobTypeName(JobType t);  // "scheduleDeviceMethod", "scheduleUpdateTwin"

// Bounds of B.2 / B.7.
inline constexpr int kMinResponseTimeout = 5;
inline constexpr int kMaxResponseTimeout = 300;
inline constexpr int kDefaultResponseTimeout = 30;
inline constexpr int kMaxConnectTimeout = 300;
inline constexpr size_t kMaxMethodPayloadBytes = 128 * 1024;
inline constexpr size_t kMaxJobIdLength = 128;

struct MethodSpec {
  std::string method_name;
  Value payload = Value::Null();
  int response_timeout_s = kDefaultResponseTimeout;
  int connect_timeout_s = 0;
};

struct JobRequest {
  std::string job_id;
  JobType type = JobType::kUpdateTwin;
  std::string query_condition;
  int64_t start_time = 0;  // 100 ns ticks
  int64_t max_execution_time_s = 0;
  MethodSpec method;  // kDeviceMethod
  // kUpdateTwin: the twin patch applied to every target: {"tags": ..., "properties": {"desired":
  // ...}} (only the members given), If-Match "*".
  Value patch;
  // The compiled queryCondition (shared: it is immutable).
  std::shared_ptr<const check::BoundCondition> condition;
};

struct ValidationOptions {
  // The property rule of the Jobs documentation (B.2): names and string values in an updateTwin
  // patch, and the methodName, may only hold US-ASCII printable characters other than space, tab
  // and $ ( ) < > @ , ; : \ " / [ ] ? = { }.
  bool job_property_charset = true;
  // Bind the condition in the strict dialect (only what real twin queries accept).
  bool strict = false;
};

// Parses and validates a JobRequest JSON body.
Expected<JobRequest> ParseJobRequest(const Value& body, const ValidationOptions& options = {});
Expected<JobRequest> ParseJobRequestText(std::string_view json,
                                         const ValidationOptions& options = {});

// The request as JSON again (what JobResponse echoes): jobId, type, queryCondition, startTime,
// maxExecutionTimeInSeconds and cloudToDeviceMethod or updateTwin (with "deviceId": null and
// "etag": "*", as the service echoes it).
Value RequestToJson(const JobRequest& r);
Value UpdateTwinEcho(const JobRequest& r);
Value MethodEcho(const JobRequest& r);

// Checks a job id: 1..128 characters from the device-id alphabet (A.8): ASCII letters, digits
// and - : . + % _ # * ? ! ( ) , = @ ; $ '. Returns an empty string or what is wrong.
std::string CheckJobId(std::string_view id);

}  // namespace twinq::jobs

#endif  // TWINQ_JOBS_JOB_REQUEST_H_
