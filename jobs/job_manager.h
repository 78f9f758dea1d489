// The JobManager: the IoT Hub Jobs model (reference/iothub.md B.2-B.7, docs/jobs.md) over a Fleet.
//
// Lifecycle of a job: queued (accepted) -> scheduled (start time in the future) -> running
// (targets resolved once, with the VM over a Snapshot; one device record per target) ->
// completed | failed | cancelled. Cancel works in every non-terminal state. The deadline is
// startTime + maxExecutionTimeInSeconds: past it no further device is started and the devices
// left fail. At most `max_active_jobs` jobs are queued, scheduled or running at once; scheduling
// one more is a throttling error.
//
// Device records: pending -> scheduled (queued to the worker pool; method jobs) -> running ->
// completed | failed, or canceled when the job is cancelled before the device ran.
// deviceJobStatistics are kept live: pendingCount (pending + scheduled) + runningCount +
// succeededCount + failedCount (failed + canceled) == deviceCount at every moment.
//
// Execution: twin-update jobs apply their patch with Fleet::Apply in batches (visible to every
// later snapshot, query and job); method jobs call the MethodInvoker from a pool of
// `device_concurrency` worker threads fed through a bounded queue. Time comes from the Clock.
//
// Threading: every public member is thread-safe. Poll() starts due jobs, each on its own runner
// thread; Wait/WaitAll wait for runners; Start() runs Poll in a background thread instead.
#ifndef TWINQ_JOBS_JOB_MANAGER_H_
#define TWINQ_JOBS_JOB_MANAGER_H_

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/common/paging.h"
#include "engine/common/result.h"
#include "engine/common/value.h"
#include "index/fleet.h"
#include "jobs/clock.h"
#include "jobs/job_request.h"
#include "jobs/method_invoker.h"

namespace twinq::jobs {

enum class JobStatus : uint8_t { kQueued, kScheduled, kRunning, kCompleted, kFailed, kCancelled };
enum class DeviceJobStatus : uint8_t {
  kPending,
  kScheduled,
  kRunning,
  kCompleted,
  kFailed,
  kCanceled
};
std::string_view JobStatusName(JobStatus s);              // "queued", ..., "cancelled"
std::string_view DeviceJobStatusName(DeviceJobStatus s);  // "pending", ..., "canceled"
bool IsTerminal(JobStatus s);

struct DeviceJobStatistics {
  int64_t device_count = 0;
  int64_t failed_count = 0;  // failed + canceled devices
  int64_t succeeded_count = 0;
  int64_t running_count = 0;
  int64_t pending_count = 0;   // pending + scheduled devices
  int64_t canceled_count = 0;  // the part of failed_count that was canceled (not on the wire)
  Value ToJson() const;        // the five wire fields
};

struct JobManagerOptions {
  size_t max_active_jobs = 10;     // queued + scheduled + running (S3: 10)
  size_t device_concurrency = 16;  // worker threads of a method job
  size_t twin_batch_size = 10000;  // patches per Fleet::Apply
  // Threads that splice a batch's patches (index::ApplyOptions::threads); with 2 or more, the
  // next batch is also prepared on a helper thread while one is applied (docs/jobs.md). The
  // result does not depend on it. 2: the machine this was measured on has 2 cores
  // (bench/BENCHLOG.md).
  unsigned twin_apply_threads = 2;
  ValidationOptions validation;
};

struct JobFilter {
  std::string job_type;    // "" = any
  std::string job_status;  // "" = any
};

// Wall-clock measurements of a job's phases (steady clock, for the tools and benchmarks).
struct JobTimings {
  double resolve_ms = 0;  // targets: snapshot + VM + device records
  double execute_ms = 0;  // dispatch until the last device finished
  // CPU time of the job's runner thread for the same phases (for a twin job the runner does all
  // the work; a method job's calls run on its worker threads, not counted here).
  double resolve_cpu_ms = 0;
  double execute_cpu_ms = 0;
};

class JobManager {
 public:
  // `invoker` may be null: method jobs then fail to start (no device connection).
  JobManager(index::Fleet& fleet, Clock& clock, MethodInvoker* invoker,
             JobManagerOptions options = {});
  ~JobManager();  // stops the scheduler thread, stops dispatching, waits for runners
  JobManager(const JobManager&) = delete;
  JobManager& operator=(const JobManager&) = delete;

  // PUT /jobs/v2/{jobId}: validates, stores the job as queued and returns
  // {"jobId", "type", "status": "queued"}. Errors: the request's (job_request.h),
  // "JobAlreadyExists: ..." (409), "ThrottlingMaxActiveJobCountExceeded: ..." (429).
  Expected<Value> Schedule(const Value& body);
  Expected<Value> ScheduleText(std::string_view json);
  Expected<Value> Schedule(JobRequest request);

  // GET /jobs/v2/{jobId}: the JobResponse; "JobNotFound: ..." for an unknown id.
  Expected<Value> Get(const std::string& job_id) const;
  // POST /jobs/v2/{jobId}/cancel: the JobResponse after cancelling. A terminal job is an error
  // ("InvalidOperation: ...").
  Expected<Value> Cancel(const std::string& job_id);
  // GET /jobs/v2/query: JobResponses in creation order, filtered by type and status (exact,
  // case-sensitive values; old spellings are refused with a hint), paged with continuation tokens.
  Expected<QueryResult> List(const JobFilter& filter, const PageRequest& page = {}) const;

  // POST /devices/query with SELECT * FROM devices.jobs [WHERE ...]: the device records, through
  // the reference engine. Errors carry the rendered diagnostics (line:col, caret).
  Expected<QueryResult> QueryDeviceJobs(std::string_view query, const PageRequest& page = {}) const;
  // Every device record (the devices.jobs documents), by deviceId, moduleId, job creation.
  std::vector<Value> DeviceJobRecords() const;

  Expected<JobStatus> Status(const std::string& job_id) const;
  Expected<DeviceJobStatistics> Statistics(const std::string& job_id) const;
  Expected<JobTimings> Timings(const std::string& job_id) const;

  // Moves queued jobs to scheduled (start in the future) or starts them (due). Returns how many
  // jobs it started.
  size_t Poll();
  // Blocks until the job's runner has finished (at once when it never started).
  void Wait(const std::string& job_id);
  // Blocks until no runner is left.
  void WaitAll();
  // A background thread that calls Poll every `interval_ms` (real time).
  void Start(int interval_ms = 20);
  void Stop();

  // The whole state (jobs with their requests, statuses and device records) as JSON, and back
  // (for the one-shot command line, which keeps jobs in a file between runs). Import replaces the
  // state; a job that was running when exported is imported as failed.
  Value Export() const;
  Expected<size_t> Import(const Value& state);

 private:
  struct DeviceRecord;
  struct JobState;
  void Run(std::shared_ptr<JobState> job);
  // `row_hints[i]`: the row target i was resolved in (index::Mutation::row_hint).
  void RunTwinJob(JobState& job, const std::vector<uint32_t>& row_hints);
  void RunMethodJob(JobState& job);
  void ProcessDevice(JobState& job, uint32_t index);
  bool StopRequestedLocked(const JobState& job) const;
  void SetDeviceStatusLocked(JobState& job, DeviceRecord& rec, DeviceJobStatus s, int64_t now);
  void FinishLocked(JobState& job, int64_t now);
  Value ResponseLocked(const JobState& job) const;
  Value RecordLocked(const JobState& job, size_t index) const;
  void CompactIds(JobState& job);
  size_t ActiveLocked() const;
  void Reap(bool all);

  index::Fleet& fleet_;
  Clock& clock_;
  MethodInvoker* invoker_;
  JobManagerOptions options_;

  mutable std::mutex mu_;
  std::condition_variable finished_cv_;
  std::map<std::string, std::shared_ptr<JobState>> jobs_;
  std::vector<std::shared_ptr<JobState>> order_;  // creation order
  uint64_t next_seq_ = 0;
  bool shutting_down_ = false;
  std::vector<std::pair<std::shared_ptr<JobState>, std::thread>> runners_;

  std::mutex scheduler_mu_;
  std::condition_variable scheduler_cv_;
  bool scheduler_stop_ = false;
  std::thread scheduler_;
};

}  // namespace twinq::jobs

#endif  // TWINQ_JOBS_JOB_MANAGER_H_
