// twinq public API: the job scheduler of the IoT Hub Jobs model (docs/jobs.md) over a Fleet.
//
// Requests and responses are the JSON bodies of the Jobs REST API: Schedule takes the body of
// PUT /jobs/v2/{jobId} (scheduleUpdateTwin or scheduleDeviceMethod, with its queryCondition),
// Get/Cancel/List return JobResponses. A job resolves its targets once, with the VM over a
// snapshot; a twin-update job applies its patch through the fleet's mutation path (visible to
// every later snapshot); a method job calls the MethodHandler for each target.
//
// Lifecycle: queued -> scheduled (start time in the future) -> running -> completed | failed |
// cancelled. With `background` set (the default) a scheduler thread starts due jobs; otherwise
// call Poll().
//
// Thread safety: every member of JobScheduler is thread-safe. The MethodHandler is called from
// the scheduler's worker threads (up to device_concurrency at once) and must be thread-safe; an
// exception it throws fails that device's call. The scheduler keeps its Fleet alive.
#ifndef TWINQ_JOBS_H_
#define TWINQ_JOBS_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "twinq/fleet.h"
#include "twinq/query.h"
#include "twinq/status.h"

namespace twinq {

enum class JobStatus : uint8_t { kQueued, kScheduled, kRunning, kCompleted, kFailed, kCancelled };
std::string_view JobStatusName(JobStatus status);  // "queued", ..., "cancelled"
bool IsTerminal(JobStatus status);                 // completed, failed or cancelled

// deviceJobStatistics: pending + running + succeeded + failed == device_count at every moment.
struct JobStatistics {
  int64_t device_count = 0;
  int64_t failed_count = 0;  // failed + canceled devices
  int64_t succeeded_count = 0;
  int64_t running_count = 0;
  int64_t pending_count = 0;
  int64_t canceled_count = 0;  // the part of failed_count that was canceled
};

// A JobResponse: the main fields, and the whole response as JSON.
struct JobInfo {
  std::string job_id;
  std::string type;  // "scheduleUpdateTwin" or "scheduleDeviceMethod"
  JobStatus status = JobStatus::kQueued;
  JobStatistics statistics;  // zero until the job has started
  std::string json;          // the JobResponse
};

struct JobPage {
  std::vector<JobInfo> jobs;
  std::string continuation;  // empty on the last page
};

struct JobFilter {
  std::string type;    // "" = any; else "scheduleUpdateTwin" / "scheduleDeviceMethod"
  std::string status;  // "" = any; else "queued", "running", "completed", ...
};

// A direct method call of a method job, and its outcome.
struct MethodCall {
  std::string device_id;
  std::string module_id;  // empty for a device
  std::string method_name;
  std::string payload_json;  // "null" when the request has none
  int response_timeout_s = 30;
  int connect_timeout_s = 0;
};
struct MethodResponse {
  // true: the device answered with `status` and `payload_json` (the device job completes,
  // whatever the status). false: the call failed with error_code (404103 DeviceNotOnline,
  // 504101 GatewayTimeout, ...), error_name and error_message.
  bool responded = true;
  int status = 200;
  std::string payload_json = "null";
  int error_code = 0;
  std::string error_name;
  std::string error_message;
};
using MethodHandler = std::function<MethodResponse(const MethodCall&)>;

struct JobSchedulerOptions {
  size_t max_active_jobs = 10;     // queued + scheduled + running; more is kResourceExhausted
  size_t device_concurrency = 16;  // worker threads of a method job
  size_t twin_batch_size = 10000;  // patches per published fleet version
  bool strict = false;             // compile conditions in the strict dialect
  bool background = true;          // a scheduler thread polls for due jobs
  int poll_interval_ms = 20;
};

namespace api_internal {
struct SchedulerImpl;
}

class JobScheduler {
 public:
  // `method_handler` may be empty: method jobs then fail to start (no device connection).
  static StatusOr<std::unique_ptr<JobScheduler>> Create(Fleet fleet,
                                                        JobSchedulerOptions options = {},
                                                        MethodHandler method_handler = {});
  // Stops the scheduler thread and waits for running jobs' current devices.
  ~JobScheduler();
  JobScheduler(const JobScheduler&) = delete;
  JobScheduler& operator=(const JobScheduler&) = delete;

  // Validates and queues a job. Errors: kInvalidArgument (the service's error code first, e.g.
  // "ArgumentInvalid: ..."; for a bad queryCondition also its positioned diagnostics),
  // kAlreadyExists, kResourceExhausted.
  StatusOr<JobInfo> Schedule(std::string_view request_json);
  StatusOr<JobInfo> Get(std::string_view job_id) const;  // kNotFound
  StatusOr<JobInfo> Cancel(std::string_view job_id);     // kFailedPrecondition if done
  StatusOr<JobStatistics> Statistics(std::string_view job_id) const;
  // Jobs in creation order, filtered, paged.
  StatusOr<JobPage> List(const JobFilter& filter = {}, const PageOptions& page = {}) const;
  // SELECT * FROM devices.jobs [WHERE ...]: the per-device records, as JSON rows.
  StatusOr<QueryPage> QueryDeviceJobs(std::string_view query, const PageOptions& page = {}) const;

  // Starts due jobs now (also done by the background thread); returns how many started.
  size_t Poll();
  // Blocks until the job's runner has finished (at once if it never started).
  void Wait(std::string_view job_id);
  void WaitAll();

 private:
  explicit JobScheduler(std::unique_ptr<api_internal::SchedulerImpl> impl);
  std::unique_ptr<api_internal::SchedulerImpl> impl_;
};

}  // namespace twinq

#endif  // TWINQ_JOBS_H_
