#include "jobs/job_manager.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdlib>
#include <ctime>
#include <deque>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>

#include "engine/ref/query.h"
#include "engine/vm/query.h"
#include "index/twin_patch.h"
#include "tools/frontend.h"

namespace twinq::jobs {

namespace {

constexpr int64_t kUnset = INT64_MIN;
constexpr int kStatusCount = 6;

Error Fail(std::string_view code, const std::string& what) {
  return Error{fmt::format("{}: {}", code, what)};
}

double MsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// CPU time of the calling thread, in ms.
double ThreadCpuMs() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

bool ParseJobStatus(std::string_view s, JobStatus* out) {
  for (int i = 0; i < kStatusCount; ++i) {
    if (JobStatusName(static_cast<JobStatus>(i)) == s) {
      *out = static_cast<JobStatus>(i);
      return true;
    }
  }
  return false;
}

bool ParseDeviceStatus(std::string_view s, DeviceJobStatus* out) {
  for (int i = 0; i < kStatusCount; ++i) {
    if (DeviceJobStatusName(static_cast<DeviceJobStatus>(i)) == s) {
      *out = static_cast<DeviceJobStatus>(i);
      return true;
    }
  }
  return false;
}

// The service's error code at the front of an index error message, for device records.
std::string ErrorCodeOf(const std::string& message) {
  if (message.find("no twin") != std::string::npos) return "DeviceNotFound";
  for (std::string_view code : {"PreconditionFailed", "ArgumentInvalid"}) {
    if (message.find(code) != std::string::npos) return std::string(code);
  }
  return "InternalServerError";
}

}  // namespace

std::string_view JobStatusName(JobStatus s) {
  switch (s) {
    case JobStatus::kQueued:
      return "queued";
    case JobStatus::kScheduled:
      return "scheduled";
    case JobStatus::kRunning:
      return "running";
    case JobStatus::kCompleted:
      return "completed";
    case JobStatus::kFailed:
      return "failed";
    case JobStatus::kCancelled:
      return "cancelled";
  }
  return "unknown";
}

std::string_view DeviceJobStatusName(DeviceJobStatus s) {
  switch (s) {
    case DeviceJobStatus::kPending:
      return "pending";
    case DeviceJobStatus::kScheduled:
      return "scheduled";
    case DeviceJobStatus::kRunning:
      return "running";
    case DeviceJobStatus::kCompleted:
      return "completed";
    case DeviceJobStatus::kFailed:
      return "failed";
    case DeviceJobStatus::kCanceled:
      return "canceled";
  }
  return "unknown";
}

bool IsTerminal(JobStatus s) {
  return s == JobStatus::kCompleted || s == JobStatus::kFailed || s == JobStatus::kCancelled;
}

Value DeviceJobStatistics::ToJson() const {
  auto n = [](int64_t v) { return Value::Number(static_cast<double>(v)); };
  return Value::MakeObject({{"deviceCount", n(device_count)},
                            {"failedCount", n(failed_count)},
                            {"succeededCount", n(succeeded_count)},
                            {"runningCount", n(running_count)},
                            {"pendingCount", n(pending_count)}});
}

// A device record is 32 bytes and all-zero means "pending, nothing happened yet", so that the
// records of a job are one calloc'ed block: resolving a million targets touches no record
// memory (fresh pages cost ~16 us each on the benchmark machine). What is rare (method
// responses, errors) lives in `details`; ids live in the snapshot the targets were resolved on
// while the job runs, then in one compact arena.
struct JobManager::DeviceRecord {
  int64_t start;    // EncodeTime; 0: unset
  int64_t end;      // EncodeTime; 0: unset
  int64_t updated;  // EncodeTime; 0: the records' creation time
  uint32_t detail;  // 1-based index into JobState::details; 0: none
  uint8_t status;   // DeviceJobStatus
};

namespace {

// Times in device records: 0 is "unset"; every representable time encodes to a positive value.
constexpr int64_t kMinTicks = -621355968000000000;  // 0001-01-01T00:00:00Z
int64_t EncodeTime(int64_t t) { return t < kMinTicks ? 1 : t - kMinTicks + 1; }
int64_t DecodeTime(int64_t e) { return e - 1 + kMinTicks; }

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};

struct Detail {
  bool responded = false;
  int response_status = 0;
  Value response_payload = Value::Null();
  std::string error_code;  // empty: no error
  int error_number = 0;    // 404103, 504101, ... (0: none)
  std::string error_description;
};

}  // namespace

struct JobManager::JobState {
  JobRequest request;
  uint64_t seq = 0;
  JobStatus status = JobStatus::kQueued;
  int64_t created = 0;
  int64_t end = kUnset;
  int64_t deadline = 0;
  std::string failure_reason;
  std::string status_message;
  // Device records (see DeviceRecord).
  size_t device_count = 0;
  std::unique_ptr<DeviceRecord[], FreeDeleter> records;
  std::vector<Detail> details;
  int64_t records_created = 0;  // when the targets were resolved
  // Ids: rows of `snapshot` (while the job runs), else `id_arena` ("dev" or "dev/mod", ends in
  // `id_ends`).
  bool ids_from_snapshot = false;
  bool modules = false;
  index::Snapshot snapshot;
  std::vector<uint32_t> rows;
  std::string id_arena;
  std::vector<uint32_t> id_ends;
  int64_t counts[kStatusCount] = {};
  bool started = false;   // a runner was started
  bool finished = false;  // the runner has finished (or the job never needs one any more)
  bool cancel_requested = false;
  JobTimings timings;

  std::string_view DeviceId(size_t i) const {
    if (ids_from_snapshot) {
      return (modules ? snapshot.modules() : snapshot.devices()).device_id(rows[i]);
    }
    std::string_view id = Arena(i);
    return id.substr(0, modules ? id.find('/') : id.size());
  }
  std::string_view ModuleId(size_t i) const {
    if (!modules) return {};
    if (ids_from_snapshot) return snapshot.modules().module_id(rows[i]);
    std::string_view id = Arena(i);
    size_t slash = id.find('/');
    return slash == std::string_view::npos ? std::string_view() : id.substr(slash + 1);
  }
  std::string_view Arena(size_t i) const {
    uint32_t begin = i == 0 ? 0 : id_ends[i - 1];
    return std::string_view(id_arena).substr(begin, id_ends[i] - begin);
  }
  Detail& DetailOf(DeviceRecord& r) {
    if (r.detail == 0) {
      details.emplace_back();
      r.detail = static_cast<uint32_t>(details.size());
    }
    return details[r.detail - 1];
  }
  const Detail* DetailOf(const DeviceRecord& r) const {
    return r.detail == 0 ? nullptr : &details[r.detail - 1];
  }
  // Allocates `n` pending records (zeroed memory, not touched).
  bool Allocate(size_t n) {
    device_count = n;
    records.reset(
        static_cast<DeviceRecord*>(std::calloc(std::max<size_t>(1, n), sizeof(DeviceRecord))));
    counts[0] = static_cast<int64_t>(n);
    return records != nullptr;
  }
};

JobManager::JobManager(index::Fleet& fleet, Clock& clock, MethodInvoker* invoker,
                       JobManagerOptions options)
    : fleet_(fleet), clock_(clock), invoker_(invoker), options_(options) {
  if (options_.device_concurrency == 0) options_.device_concurrency = 1;
  if (options_.twin_batch_size == 0) options_.twin_batch_size = 1;
}

JobManager::~JobManager() {
  Stop();
  {
    std::lock_guard<std::mutex> lock(mu_);
    shutting_down_ = true;
  }
  WaitAll();
}

Expected<Value> JobManager::ScheduleText(std::string_view json) {
  Expected<JobRequest> r = ParseJobRequestText(json, options_.validation);
  if (!r.ok()) return r.error();
  return Schedule(std::move(r).value());
}

Expected<Value> JobManager::Schedule(const Value& body) {
  Expected<JobRequest> r = ParseJobRequest(body, options_.validation);
  if (!r.ok()) return r.error();
  return Schedule(std::move(r).value());
}

size_t JobManager::ActiveLocked() const {
  size_t n = 0;
  for (const auto& j : order_) n += IsTerminal(j->status) ? 0 : 1;
  return n;
}

Expected<Value> JobManager::Schedule(JobRequest request) {
  if (!request.condition) return Fail("ArgumentInvalid", "the request has no compiled condition");
  std::lock_guard<std::mutex> lock(mu_);
  if (jobs_.count(request.job_id) != 0) {
    return Fail("JobAlreadyExists",
                fmt::format("a job with id '{}' already exists", request.job_id));
  }
  if (ActiveLocked() >= options_.max_active_jobs) {
    return Fail("ThrottlingMaxActiveJobCountExceeded",
                fmt::format("{} jobs are already active (queued, scheduled or running); the limit "
                            "is {}",
                            ActiveLocked(), options_.max_active_jobs));
  }
  auto job = std::make_shared<JobState>();
  job->seq = next_seq_++;
  job->created = clock_.Now();
  job->deadline = request.start_time + request.max_execution_time_s * kTicksPerSecond;
  job->request = std::move(request);
  jobs_[job->request.job_id] = job;
  order_.push_back(job);
  return Value::MakeObject({{"jobId", Value::String(job->request.job_id)},
                            {"type", Value::String(std::string(JobTypeName(job->request.type)))},
                            {"status", Value::String("queued")}});
}

Value JobManager::ResponseLocked(const JobState& job) const {
  const JobRequest& r = job.request;
  Object o;
  o.reserve(16);  // also keeps GCC 12 -O3 from a false -Warray-bounds on the first emplace
  o.emplace_back("jobId", Value::String(r.job_id));
  o.emplace_back("queryCondition", Value::String(r.query_condition));
  o.emplace_back("createdTime", Value::String(FormatTime(job.created)));
  o.emplace_back("startTime", Value::String(FormatTime(r.start_time)));
  if (job.end != kUnset) o.emplace_back("endTime", Value::String(FormatTime(job.end)));
  o.emplace_back("maxExecutionTimeInSeconds",
                 Value::Number(static_cast<double>(r.max_execution_time_s)));
  o.emplace_back("type", Value::String(std::string(JobTypeName(r.type))));
  if (r.type == JobType::kDeviceMethod) {
    o.emplace_back("cloudToDeviceMethod", MethodEcho(r));
  } else {
    o.emplace_back("updateTwin", UpdateTwinEcho(r));
  }
  o.emplace_back("status", Value::String(std::string(JobStatusName(job.status))));
  if (!job.failure_reason.empty()) {
    o.emplace_back("failureReason", Value::String(job.failure_reason));
  }
  if (!job.status_message.empty()) {
    o.emplace_back("statusMessage", Value::String(job.status_message));
  }
  DeviceJobStatistics s;
  s.device_count = static_cast<int64_t>(job.device_count);
  const int64_t* c = job.counts;
  s.pending_count = c[0] + c[1];
  s.running_count = c[2];
  s.succeeded_count = c[3];
  s.failed_count = c[4] + c[5];
  o.emplace_back("deviceJobStatistics", s.ToJson());
  return Value::MakeObject(std::move(o));
}

Value JobManager::RecordLocked(const JobState& job, size_t index) const {
  const DeviceRecord& rec = job.records[index];
  Object o;
  o.reserve(16);  // also keeps GCC 12 -O3 from a false -Warray-bounds on the first emplace
  o.emplace_back("deviceId", Value::String(std::string(job.DeviceId(index))));
  if (job.modules) o.emplace_back("moduleId", Value::String(std::string(job.ModuleId(index))));
  o.emplace_back("jobId", Value::String(job.request.job_id));
  o.emplace_back("jobType", Value::String(std::string(JobTypeName(job.request.type))));
  o.emplace_back(
      "status",
      Value::String(std::string(DeviceJobStatusName(static_cast<DeviceJobStatus>(rec.status)))));
  if (rec.start != 0) {
    o.emplace_back("startTimeUtc", Value::String(FormatTime(DecodeTime(rec.start))));
  }
  if (rec.end != 0) o.emplace_back("endTimeUtc", Value::String(FormatTime(DecodeTime(rec.end))));
  o.emplace_back("createdDateTimeUtc", Value::String(FormatTime(job.records_created)));
  o.emplace_back(
      "lastUpdatedDateTimeUtc",
      Value::String(FormatTime(rec.updated == 0 ? job.records_created : DecodeTime(rec.updated))));
  const Detail* d = job.DetailOf(rec);
  Value response = Value::Null();
  if (d != nullptr && d->responded) {
    response = Value::MakeObject(
        {{"status", Value::Number(d->response_status)}, {"payload", d->response_payload}});
  }
  o.emplace_back("outcome", Value::MakeObject({{"deviceMethodResponse", response}}));
  if (d != nullptr && !d->error_code.empty()) {
    Object e;
    e.reserve(3);
    e.emplace_back("code", Value::String(d->error_code));
    if (d->error_number != 0) e.emplace_back("errorCode", Value::Number(d->error_number));
    e.emplace_back("description", Value::String(d->error_description));
    o.emplace_back("error", Value::MakeObject(std::move(e)));
  }
  return Value::MakeObject(std::move(o));
}

Expected<Value> JobManager::Get(const std::string& job_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return Fail("JobNotFound", fmt::format("no job with id '{}'", job_id));
  return ResponseLocked(*it->second);
}

Expected<JobStatus> JobManager::Status(const std::string& job_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return Fail("JobNotFound", fmt::format("no job with id '{}'", job_id));
  return it->second->status;
}

Expected<DeviceJobStatistics> JobManager::Statistics(const std::string& job_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return Fail("JobNotFound", fmt::format("no job with id '{}'", job_id));
  const JobState& job = *it->second;
  DeviceJobStatistics s;
  s.device_count = static_cast<int64_t>(job.device_count);
  s.pending_count = job.counts[0] + job.counts[1];
  s.running_count = job.counts[2];
  s.succeeded_count = job.counts[3];
  s.failed_count = job.counts[4] + job.counts[5];
  s.canceled_count = job.counts[5];
  return s;
}

Expected<JobTimings> JobManager::Timings(const std::string& job_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return Fail("JobNotFound", fmt::format("no job with id '{}'", job_id));
  return it->second->timings;
}

Expected<Value> JobManager::Cancel(const std::string& job_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return Fail("JobNotFound", fmt::format("no job with id '{}'", job_id));
  JobState& job = *it->second;
  if (IsTerminal(job.status)) {
    return Fail("InvalidOperation", fmt::format("job '{}' is already {} and cannot be cancelled",
                                                job_id, JobStatusName(job.status)));
  }
  int64_t now = clock_.Now();
  job.cancel_requested = true;
  job.status = JobStatus::kCancelled;
  job.end = now;
  if (!job.started) {
    job.finished = true;
    finished_cv_.notify_all();
  }
  return ResponseLocked(job);
}

Expected<QueryResult> JobManager::List(const JobFilter& filter, const PageRequest& page) const {
  std::optional<JobType> type;
  if (!filter.job_type.empty()) {
    if (filter.job_type == "scheduleDeviceMethod") {
      type = JobType::kDeviceMethod;
    } else if (filter.job_type == "scheduleUpdateTwin") {
      type = JobType::kUpdateTwin;
    } else {
      std::string_view near =
          ClosestMatch(filter.job_type, {"scheduleDeviceMethod", "scheduleUpdateTwin"});
      if (filter.job_type == "scheduleTwinUpdate") near = "scheduleUpdateTwin";
      return Fail("GenericBadRequest",
                  fmt::format("jobType '{}' is not a job type{}", filter.job_type,
                              near.empty() ? "" : fmt::format("; did you mean '{}'?", near)));
    }
  }
  std::optional<JobStatus> status;
  if (!filter.job_status.empty()) {
    JobStatus s;
    if (ParseJobStatus(filter.job_status, &s)) {
      status = s;
    } else if (filter.job_status == "enqueued") {
      status = JobStatus::kQueued;  // the swagger synonym
    } else {
      std::string hint;
      if (filter.job_status == "canceled") hint = "; the job status is spelled 'cancelled'";
      if (filter.job_status == "finished") hint = "; use 'completed' (or 'failed', 'cancelled')";
      if (hint.empty()) {
        std::string_view near =
            ClosestMatch(filter.job_status,
                         {"queued", "scheduled", "running", "completed", "failed", "cancelled"});
        if (!near.empty()) hint = fmt::format("; did you mean '{}'?", near);
      }
      return Fail("GenericBadRequest",
                  fmt::format("jobStatus '{}' is not a job status (queued, scheduled, running, "
                              "completed, failed, cancelled){}",
                              filter.job_status, hint));
    }
  }
  std::vector<Value> rows;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& j : order_) {
      if (type && j->request.type != *type) continue;
      if (status && j->status != *status) continue;
      rows.push_back(ResponseLocked(*j));
    }
  }
  uint64_t fp = Fingerprint(
      fmt::format("jobs/v2/query?jobType={}&jobStatus={}", filter.job_type, filter.job_status));
  return CutPage(std::move(rows), fp, page);
}

std::vector<Value> JobManager::DeviceJobRecords() const {
  struct Keyed {
    std::string device;
    std::string module;
    uint64_t seq;
    Value v;
  };
  std::vector<Keyed> keyed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    size_t n = 0;
    for (const auto& j : order_) n += j->device_count;
    keyed.reserve(n);
    for (const auto& j : order_) {
      for (size_t i = 0; i < j->device_count; ++i) {
        keyed.push_back({std::string(j->DeviceId(i)), std::string(j->ModuleId(i)), j->seq,
                         RecordLocked(*j, i)});
      }
    }
  }
  std::stable_sort(keyed.begin(), keyed.end(), [](const Keyed& a, const Keyed& b) {
    if (a.device != b.device) return a.device < b.device;
    if (a.module != b.module) return a.module < b.module;
    return a.seq < b.seq;
  });
  std::vector<Value> out;
  out.reserve(keyed.size());
  for (Keyed& k : keyed) out.push_back(std::move(k.v));
  return out;
}

Expected<QueryResult> JobManager::QueryDeviceJobs(std::string_view query,
                                                  const PageRequest& page) const {
  Source source("<query>", std::string(query));
  Result<check::BoundQuery> bound = tools::CompileQuery(source);
  if (!bound.ok()) {
    std::string text = Render(bound.diagnostics(), source);
    while (!text.empty() && text.back() == '\n') text.pop_back();
    return Fail("ArgumentInvalid", "query:\n" + text);
  }
  if (bound->collection != check::Collection::kJobs) {
    return Fail("ArgumentInvalid",
                fmt::format("device job records are queried FROM devices.jobs, not FROM {}",
                            check::CollectionName(bound->collection)));
  }
  std::vector<Value> records = DeviceJobRecords();
  ref::Documents docs;
  docs.jobs = records;
  return ref::RunQuery(*bound, docs, page);
}

size_t JobManager::Poll() {
  Reap(false);
  std::lock_guard<std::mutex> lock(mu_);
  if (shutting_down_) return 0;
  int64_t now = clock_.Now();
  size_t started = 0;
  for (const auto& j : order_) {
    if (j->status != JobStatus::kQueued && j->status != JobStatus::kScheduled) continue;
    if (j->request.start_time > now) {
      j->status = JobStatus::kScheduled;
      continue;
    }
    j->status = JobStatus::kRunning;
    j->started = true;
    runners_.emplace_back(j, std::thread([this, j] { Run(j); }));
    ++started;
  }
  return started;
}

void JobManager::Reap(bool all) {
  std::vector<std::thread> done;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (all) {
      finished_cv_.wait(lock, [&] {
        for (const auto& [job, thread] : runners_) {
          if (!job->finished) return false;
        }
        return true;
      });
    }
    for (auto it = runners_.begin(); it != runners_.end();) {
      if (it->first->finished) {
        done.push_back(std::move(it->second));
        it = runners_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (std::thread& t : done) t.join();
}

void JobManager::Wait(const std::string& job_id) {
  {
    std::unique_lock<std::mutex> lock(mu_);
    auto it = jobs_.find(job_id);
    if (it == jobs_.end()) return;
    std::shared_ptr<JobState> job = it->second;
    finished_cv_.wait(lock, [&] { return !job->started || job->finished; });
  }
  Reap(false);
}

void JobManager::WaitAll() { Reap(true); }

void JobManager::Start(int interval_ms) {
  std::lock_guard<std::mutex> lock(scheduler_mu_);
  if (scheduler_.joinable()) return;
  scheduler_stop_ = false;
  scheduler_ = std::thread([this, interval_ms] {
    std::unique_lock<std::mutex> l(scheduler_mu_);
    while (!scheduler_stop_) {
      l.unlock();
      Poll();
      l.lock();
      scheduler_cv_.wait_for(l, std::chrono::milliseconds(std::max(1, interval_ms)),
                             [&] { return scheduler_stop_; });
    }
  });
}

void JobManager::Stop() {
  std::thread t;
  {
    std::lock_guard<std::mutex> lock(scheduler_mu_);
    scheduler_stop_ = true;
    t = std::move(scheduler_);
  }
  scheduler_cv_.notify_all();
  if (t.joinable()) t.join();
}

bool JobManager::StopRequestedLocked(const JobState& job) const {
  return job.cancel_requested || shutting_down_ || clock_.Now() >= job.deadline;
}

void JobManager::SetDeviceStatusLocked(JobState& job, DeviceRecord& rec, DeviceJobStatus s,
                                       int64_t now) {
  --job.counts[rec.status];
  ++job.counts[static_cast<int>(s)];
  rec.status = static_cast<uint8_t>(s);
  rec.updated = EncodeTime(now);
}

void JobManager::CompactIds(JobState& job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!job.ids_from_snapshot) return;
  }
  // Only this (the runner) thread changes where the ids live, so they can be read unlocked.
  std::string arena;
  std::vector<uint32_t> ends;
  ends.reserve(job.device_count);
  for (size_t i = 0; i < job.device_count; ++i) {
    arena.append(job.DeviceId(i));
    if (job.modules) {
      arena.push_back('/');
      arena.append(job.ModuleId(i));
    }
    ends.push_back(static_cast<uint32_t>(arena.size()));
  }
  index::Snapshot drop;
  std::vector<uint32_t> rows;
  std::lock_guard<std::mutex> lock(mu_);
  job.id_arena = std::move(arena);
  job.id_ends = std::move(ends);
  job.ids_from_snapshot = false;
  drop = std::move(job.snapshot);  // released with the rows, after the lock
  rows.swap(job.rows);
}

void JobManager::Run(std::shared_ptr<JobState> job) {
  auto t0 = std::chrono::steady_clock::now();
  double c0 = ThreadCpuMs();
  index::Snapshot snapshot = fleet_.snapshot();
  const check::BoundCondition& cond = *job->request.condition;
  bool modules = cond.collection == check::Collection::kModules;
  const index::Table& table = modules ? snapshot.modules() : snapshot.devices();
  std::vector<uint32_t> rows = table.InIdOrderByRank(vm::SelectRows(cond, snapshot));
  int64_t now = clock_.Now();
  bool no_invoker = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    job->modules = modules;
    job->snapshot = std::move(snapshot);
    job->rows = std::move(rows);
    job->ids_from_snapshot = true;
    job->records_created = now;
    if (!job->Allocate(job->rows.size())) {
      job->status_message = "out of memory for the device records";
      job->device_count = 0;
      job->counts[0] = 0;
    }
    job->timings.resolve_ms = MsSince(t0);
    job->timings.resolve_cpu_ms = ThreadCpuMs() - c0;
    no_invoker = job->request.type == JobType::kDeviceMethod && invoker_ == nullptr;
    if (no_invoker) {
      job->status_message = "no method invoker is connected: devices cannot be called";
    }
  }
  auto t1 = std::chrono::steady_clock::now();
  double c1 = ThreadCpuMs();
  if (!no_invoker) {
    if (job->request.type == JobType::kUpdateTwin) {
      // A twin job replaces the documents of its targets. Holding the resolution snapshot while
      // it runs would keep every replaced document alive until the end (for a job over the
      // whole fleet, a second copy of the fleet, all of it freshly faulted-in memory); with the
      // ids copied out first, each batch's old documents are freed once the next version is
      // published and their memory is reused.
      // The rows stay as hints: the index checks each before it takes it (Mutation::row_hint).
      std::vector<uint32_t> row_hints = job->rows;  // only this thread changes them
      CompactIds(*job);
      RunTwinJob(*job, row_hints);
    } else {
      RunMethodJob(*job);
    }
  }
  CompactIds(*job);
  std::lock_guard<std::mutex> lock(mu_);
  job->timings.execute_ms = MsSince(t1);
  job->timings.execute_cpu_ms = ThreadCpuMs() - c1;
  if (no_invoker) {
    int64_t t = clock_.Now();
    for (size_t i = 0; i < job->device_count; ++i) {
      DeviceRecord& r = job->records[i];
      SetDeviceStatusLocked(*job, r, DeviceJobStatus::kFailed, t);
      Detail& d = job->DetailOf(r);
      d.error_code = "DeviceNotOnline";
      d.error_number = kDeviceNotOnline;
      d.error_description = "no method invoker is connected";
    }
  }
  FinishLocked(*job, clock_.Now());
  job->finished = true;
  finished_cv_.notify_all();
}

void JobManager::FinishLocked(JobState& job, int64_t now) {
  bool cancelled = job.cancel_requested || shutting_down_;
  int64_t left = 0;
  for (size_t i = 0; i < job.device_count; ++i) {
    DeviceRecord& r = job.records[i];
    auto st = static_cast<DeviceJobStatus>(r.status);
    if (st != DeviceJobStatus::kPending && st != DeviceJobStatus::kScheduled) continue;
    ++left;
    if (cancelled) {
      SetDeviceStatusLocked(job, r, DeviceJobStatus::kCanceled, now);
      Detail& d = job.DetailOf(r);
      d.error_code = "JobCancelled";
      d.error_description = "the job was cancelled before this device ran";
    } else {
      SetDeviceStatusLocked(job, r, DeviceJobStatus::kFailed, now);
      Detail& d = job.DetailOf(r);
      d.error_code = "JobExpired";
      d.error_description =
          "the job's deadline (startTime + maxExecutionTimeInSeconds) passed before this device "
          "ran";
    }
  }
  if (cancelled) {
    job.status = JobStatus::kCancelled;
    if (job.end == kUnset) job.end = now;
    if (shutting_down_ && !job.cancel_requested) {
      job.status_message = "the job manager shut down while the job was running";
    }
    return;
  }
  job.end = now;
  int64_t failed = job.counts[4] + job.counts[5];
  if (failed == 0) {
    job.status = JobStatus::kCompleted;
    return;
  }
  job.status = JobStatus::kFailed;
  if (left > 0) {
    job.failure_reason = fmt::format(
        "the deadline (startTime + maxExecutionTimeInSeconds = {} s) passed with {} of {} devices "
        "not run; {} devices failed in all",
        job.request.max_execution_time_s, left, job.device_count, failed);
  } else {
    job.failure_reason = fmt::format("{} of {} devices failed", failed, job.device_count);
  }
}

// ---------------------------------------------------------------------------------------------
// Twin-update jobs.

void JobManager::RunTwinJob(JobState& job, const std::vector<uint32_t>& row_hints) {
  const size_t n = job.device_count;
  const size_t batch_size = options_.twin_batch_size;
  const unsigned threads = std::max(1u, options_.twin_apply_threads);
  bool modules = job.request.condition->collection == check::Collection::kModules;
  // One batch: its patches, the time they are stamped with, and their splices computed ahead
  // (in parts taken in turn from `next_part`; `parts_left` counts the parts not finished).
  struct Batch {
    size_t begin = 0, end = 0;
    std::string stamp;
    std::vector<index::Mutation> muts;
    index::PreparedBatch prepared;  // none started: Apply ignores it
    std::atomic<size_t> next_part{0};
    std::atomic<size_t> parts_left{0};
  };
  auto make = [&](size_t b) {
    auto x = std::make_shared<Batch>();
    x->begin = b;
    x->end = std::min(n, b + batch_size);
    // Ids are immutable once the records exist: read without the lock.
    x->muts.resize(x->end - b);
    for (size_t i = b; i < x->end; ++i) {
      index::Mutation& m = x->muts[i - b];
      m.kind = index::Mutation::Kind::kPatch;
      m.device_id = job.DeviceId(i);
      m.module_id = job.ModuleId(i);
      m.patch = job.request.patch;
      m.if_match = "*";
      if (i < row_hints.size()) m.row_hint = row_hints[i];
    }
    x->stamp = FormatTime(clock_.Now());
    return x;
  };
  // The pipeline (docs/jobs.md): a helper thread builds the batches after the first and
  // computes their splices against the version current then, up to kAhead batches ahead of the
  // one being applied (the batches' devices are distinct, so those documents do not change
  // meanwhile; Fleet::Apply checks that they did not). When a batch is applied, the applying
  // thread joins in on the next one's parts that are left.
  constexpr size_t kPart = 128;
  constexpr size_t kAhead = 2;
  std::mutex pipe_mu;
  std::condition_variable pipe_cv;
  std::deque<std::shared_ptr<Batch>> ahead;  // built by the helper, in order
  size_t applying = 0;                       // the first device of the batch being applied
  std::atomic<bool> stop{false};
  auto prepare_parts = [&](Batch& x) {
    const size_t size = x.muts.size();
    for (size_t p = x.next_part.fetch_add(kPart); p < size; p = x.next_part.fetch_add(kPart)) {
      if (!stop.load(std::memory_order_relaxed))
        fleet_.PrepareRange(x.muts, p, p + kPart, &x.prepared);
      if (x.parts_left.fetch_sub(1) == 1) {
        std::lock_guard<std::mutex> lock(pipe_mu);
        pipe_cv.notify_all();
      }
    }
  };
  auto helper_loop = [&] {
    for (size_t b = batch_size; b < n; b += batch_size) {
      {
        std::unique_lock<std::mutex> lock(pipe_mu);
        pipe_cv.wait(lock, [&] { return stop.load() || b <= applying + kAhead * batch_size; });
        if (stop.load()) return;
      }
      std::shared_ptr<Batch> x = make(b);
      x->prepared = fleet_.StartPrepare(x->muts.size(), x->stamp);
      x->parts_left = (x->muts.size() + kPart - 1) / kPart;
      {
        std::lock_guard<std::mutex> lock(pipe_mu);
        ahead.push_back(x);
        pipe_cv.notify_all();
      }
      prepare_parts(*x);
    }
  };
  std::thread helper;  // started once the first batch is under way (not for a job cancelled first)
  // Stops the helper however this function ends (cancel, deadline, shutdown or done).
  struct StopHelper {
    std::atomic<bool>& stop;
    std::mutex& mu;
    std::condition_variable& cv;
    std::thread& helper;
    ~StopHelper() {
      {
        std::lock_guard<std::mutex> lock(mu);
        stop = true;
      }
      cv.notify_all();
      if (helper.joinable()) helper.join();
    }
  } stop_helper{stop, pipe_mu, pipe_cv, helper};
  std::shared_ptr<Batch> cur_ptr = make(0);
  while (cur_ptr->begin < n) {
    Batch& cur = *cur_ptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (StopRequestedLocked(job)) return;
      int64_t now = clock_.Now();
      for (size_t i = cur.begin; i < cur.end; ++i) {
        SetDeviceStatusLocked(job, job.records[i], DeviceJobStatus::kRunning, now);
        job.records[i].start = EncodeTime(now);
      }
    }
    if (cur.begin == 0 && threads > 1 && batch_size < n) {
      try {
        helper = std::thread(helper_loop);
      } catch (const std::system_error&) {
        // No thread to be had: each batch is built here and spliced within Fleet::Apply.
      }
    }
    const std::vector<index::Mutation>& muts = cur.muts;
    const std::string& stamp = cur.stamp;
    std::vector<std::string> errors(muts.size());
    std::vector<size_t> live(muts.size());
    for (size_t i = 0; i < live.size(); ++i) live[i] = i;
    for (int round = 0; !live.empty(); ++round) {
      // The first round applies the whole batch as built; a later one, the patches still live.
      std::vector<index::Mutation> todo;
      if (live.size() < muts.size()) {
        todo.reserve(live.size());
        for (size_t k : live) todo.push_back(muts[k]);
      }
      const std::vector<index::Mutation>& batch_now = live.size() < muts.size() ? todo : muts;
      index::ApplyOptions apply;
      apply.threads = threads;
      Expected<uint64_t> applied =
          fleet_.Apply(batch_now, stamp, apply, round == 0 ? &cur.prepared : nullptr);
      if (applied.ok()) break;
      if (round == 0) {
        // Find every patch that fails on its own (twin gone, sizes after merging), against the
        // current version; the rest is applied again.
        index::Snapshot snap = fleet_.snapshot();
        const index::Table& table = modules ? snap.modules() : snap.devices();
        index::PatchOptions po;
        po.now = stamp;
        std::vector<size_t> keep;
        for (size_t k : live) {
          std::optional<uint32_t> row = table.FindRow(muts[k].device_id, muts[k].module_id);
          if (!row) {
            errors[k] = fmt::format("no twin {}{}{}", muts[k].device_id,
                                    muts[k].module_id.empty() ? "" : "/", muts[k].module_id);
            continue;
          }
          Expected<index::PatchResult> r =
              index::ApplyTwinPatch(table.Document(*row), muts[k].patch, "*", po);
          if (!r.ok()) {
            errors[k] = r.error().message;
          } else {
            keep.push_back(k);
          }
        }
        live = std::move(keep);
        continue;
      }
      // A later round failed (the fleet changed meanwhile): drop the mutation it names.
      const std::string& msg = applied.error().message;
      size_t pos = 0;
      if (batch_now.size() > 1 && msg.rfind("mutation ", 0) == 0) {
        pos = std::strtoull(msg.c_str() + 9, nullptr, 10);
        pos = pos == 0 ? 0 : pos - 1;
      }
      if (pos >= live.size()) pos = 0;
      std::string what = msg;
      if (size_t colon = msg.find(": "); batch_now.size() > 1 && colon != std::string::npos) {
        what = msg.substr(colon + 2);
      }
      errors[live[pos]] = what;
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(pos));
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      int64_t now = clock_.Now();
      for (size_t i = cur.begin; i < cur.end; ++i) {
        DeviceRecord& r = job.records[i];
        const std::string& err = errors[i - cur.begin];
        r.end = EncodeTime(now);
        if (err.empty()) {
          SetDeviceStatusLocked(job, r, DeviceJobStatus::kCompleted, now);
        } else {
          SetDeviceStatusLocked(job, r, DeviceJobStatus::kFailed, now);
          Detail& d = job.DetailOf(r);
          d.error_code = ErrorCodeOf(err);
          d.error_description = err;
        }
      }
    }
    if (cur.end >= n) break;
    if (!helper.joinable()) {
      cur_ptr = make(cur.end);
      continue;
    }
    // The next batch from the helper; this thread helps with its parts that are left.
    std::shared_ptr<Batch> next;
    {
      std::unique_lock<std::mutex> lock(pipe_mu);
      applying = cur.end;
      pipe_cv.notify_all();
      pipe_cv.wait(lock, [&] { return !ahead.empty(); });
      next = std::move(ahead.front());
      ahead.pop_front();
    }
    prepare_parts(*next);
    {
      std::unique_lock<std::mutex> lock(pipe_mu);
      pipe_cv.wait(lock, [&] { return next->parts_left.load() == 0; });
    }
    cur_ptr = std::move(next);
  }
}

// ---------------------------------------------------------------------------------------------
// Method jobs: a feeder (this thread) hands device indexes to a bounded queue; a pool of worker
// threads takes them and calls the invoker.

void JobManager::ProcessDevice(JobState& job, uint32_t index) {
  MethodCall call;
  {
    std::lock_guard<std::mutex> lock(mu_);
    DeviceRecord& r = job.records[index];
    int64_t now = clock_.Now();
    if (StopRequestedLocked(job)) return;  // left scheduled: FinishLocked decides
    SetDeviceStatusLocked(job, r, DeviceJobStatus::kRunning, now);
    r.start = EncodeTime(now);
    call.device_id = job.DeviceId(index);
    call.module_id = job.ModuleId(index);
    call.method_name = job.request.method.method_name;
    call.payload = job.request.method.payload;
    call.response_timeout_s = job.request.method.response_timeout_s;
    call.connect_timeout_s = job.request.method.connect_timeout_s;
  }
  MethodResult result = invoker_->Invoke(call);
  std::lock_guard<std::mutex> lock(mu_);
  DeviceRecord& r = job.records[index];
  int64_t now = clock_.Now();
  r.end = EncodeTime(now);
  Detail& d = job.DetailOf(r);
  if (result.responded) {
    d.responded = true;
    d.response_status = result.status;
    d.response_payload = result.payload;
    SetDeviceStatusLocked(job, r, DeviceJobStatus::kCompleted, now);
  } else {
    d.error_code =
        result.error_name.empty() ? std::to_string(result.error_code) : result.error_name;
    d.error_number = result.error_code;
    d.error_description = result.error_message;
    SetDeviceStatusLocked(job, r, DeviceJobStatus::kFailed, now);
  }
}

void JobManager::RunMethodJob(JobState& job) {
  const size_t n = job.device_count;
  if (n == 0) return;
  const size_t capacity = options_.device_concurrency;
  const size_t workers = std::min(capacity, n);
  std::mutex qmu;
  std::condition_variable has_items, has_space;
  std::deque<uint32_t> queue;
  bool done = false;
  std::vector<std::thread> pool;
  pool.reserve(workers);
  for (size_t w = 0; w < workers; ++w) {
    pool.emplace_back([&] {
      for (;;) {
        uint32_t index;
        {
          std::unique_lock<std::mutex> q(qmu);
          has_items.wait(q, [&] { return !queue.empty() || done; });
          if (queue.empty()) return;
          index = queue.front();
          queue.pop_front();
        }
        has_space.notify_one();
        ProcessDevice(job, index);
      }
    });
  }
  for (size_t i = 0; i < n; ++i) {
    {
      std::unique_lock<std::mutex> q(qmu);
      has_space.wait(q, [&] { return queue.size() < capacity; });
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (StopRequestedLocked(job)) break;
      SetDeviceStatusLocked(job, job.records[i], DeviceJobStatus::kScheduled, clock_.Now());
    }
    {
      std::lock_guard<std::mutex> q(qmu);
      queue.push_back(static_cast<uint32_t>(i));
    }
    has_items.notify_one();
  }
  {
    std::lock_guard<std::mutex> q(qmu);
    done = true;
  }
  has_items.notify_all();
  for (std::thread& t : pool) t.join();
}

// ---------------------------------------------------------------------------------------------
// Export / import.

Value JobManager::Export() const {
  std::lock_guard<std::mutex> lock(mu_);
  Array jobs;
  for (const auto& j : order_) {
    Object o;
    o.emplace_back("request", RequestToJson(j->request));
    o.emplace_back("status", Value::String(std::string(JobStatusName(j->status))));
    o.emplace_back("createdTime", Value::String(FormatTime(j->created)));
    if (j->end != kUnset) o.emplace_back("endTime", Value::String(FormatTime(j->end)));
    if (!j->failure_reason.empty()) {
      o.emplace_back("failureReason", Value::String(j->failure_reason));
    }
    if (!j->status_message.empty()) {
      o.emplace_back("statusMessage", Value::String(j->status_message));
    }
    Array devices;
    devices.reserve(j->device_count);
    for (size_t i = 0; i < j->device_count; ++i) devices.push_back(RecordLocked(*j, i));
    o.emplace_back("devices", Value::MakeArray(std::move(devices)));
    jobs.push_back(Value::MakeObject(std::move(o)));
  }
  return Value::MakeObject(
      {{"twinqJobs", Value::Number(1)}, {"jobs", Value::MakeArray(std::move(jobs))}});
}

Expected<size_t> JobManager::Import(const Value& state) {
  auto bad = [](size_t i, const std::string& what) {
    return Error{fmt::format("job state: job {}: {}", i + 1, what)};
  };
  const Value* version = state.Find("twinqJobs");
  const Value* list = state.Find("jobs");
  if (version == nullptr || !version->is_number() || version->as_number() != 1 || list == nullptr ||
      !list->is_array()) {
    return Error{"job state: not a twinq job state (expected {\"twinqJobs\": 1, \"jobs\": [...]})"};
  }
  auto time_of = [](const Value* v, int64_t* out) {
    std::string why;
    return v != nullptr && v->is_string() && ParseTime(v->as_string(), out, &why);
  };
  std::vector<std::shared_ptr<JobState>> loaded;
  ValidationOptions lenient = options_.validation;
  lenient.job_property_charset = false;  // it was checked (or switched off) when scheduled
  const Array& arr = list->as_array();
  for (size_t i = 0; i < arr.size(); ++i) {
    const Value& j = arr[i];
    const Value* req = j.Find("request");
    if (req == nullptr) return bad(i, "no \"request\"");
    Expected<JobRequest> r = ParseJobRequest(*req, lenient);
    if (!r.ok()) return bad(i, r.error().message);
    auto job = std::make_shared<JobState>();
    job->request = std::move(r).value();
    job->seq = i;
    job->deadline = job->request.start_time + job->request.max_execution_time_s * kTicksPerSecond;
    const Value* st = j.Find("status");
    if (st == nullptr || !st->is_string() || !ParseJobStatus(st->as_string(), &job->status)) {
      return bad(i, "missing or unknown \"status\"");
    }
    if (!time_of(j.Find("createdTime"), &job->created)) return bad(i, "bad \"createdTime\"");
    if (const Value* end = j.Find("endTime"); end != nullptr && !time_of(end, &job->end)) {
      return bad(i, "bad \"endTime\"");
    }
    if (const Value* f = j.Find("failureReason"); f && f->is_string()) {
      job->failure_reason = f->as_string();
    }
    if (const Value* m = j.Find("statusMessage"); m && m->is_string()) {
      job->status_message = m->as_string();
    }
    const Value* devices = j.Find("devices");
    if (devices != nullptr && devices->is_array()) {
      const Array& list = devices->as_array();
      if (!job->Allocate(list.size())) return bad(i, "out of memory for the device records");
      job->counts[0] = 0;
      job->id_ends.reserve(list.size());
      for (size_t k = 0; k < list.size(); ++k) {
        const Value& d = list[k];
        DeviceRecord& rec = job->records[k];
        const Value* dev = d.Find("deviceId");
        const Value* ds = d.Find("status");
        DeviceJobStatus st;
        if (dev == nullptr || !dev->is_string() || ds == nullptr || !ds->is_string() ||
            !ParseDeviceStatus(ds->as_string(), &st)) {
          return bad(i, "a device record lacks deviceId or a known status");
        }
        rec.status = static_cast<uint8_t>(st);
        ++job->counts[rec.status];
        job->id_arena += dev->as_string();
        if (const Value* m = d.Find("moduleId"); m && m->is_string()) {
          job->modules = true;
          job->id_arena += '/';
          job->id_arena += m->as_string();
        }
        job->id_ends.push_back(static_cast<uint32_t>(job->id_arena.size()));
        int64_t created = 0, updated = 0, t = 0;
        if (!time_of(d.Find("createdDateTimeUtc"), &created) ||
            !time_of(d.Find("lastUpdatedDateTimeUtc"), &updated)) {
          return bad(i, "a device record lacks its created/updated times");
        }
        job->records_created = created;
        rec.updated = EncodeTime(updated);
        if (const Value* v = d.Find("startTimeUtc"); v) {
          if (!time_of(v, &t)) return bad(i, "bad startTimeUtc in a device record");
          rec.start = EncodeTime(t);
        }
        if (const Value* v = d.Find("endTimeUtc"); v) {
          if (!time_of(v, &t)) return bad(i, "bad endTimeUtc in a device record");
          rec.end = EncodeTime(t);
        }
        const Value* outcome = d.Find("outcome");
        const Value* resp = outcome ? outcome->Find("deviceMethodResponse") : nullptr;
        if (resp != nullptr && resp->is_object()) {
          Detail& det = job->DetailOf(rec);
          det.responded = true;
          const Value* s = resp->Find("status");
          det.response_status = s && s->is_number() ? static_cast<int>(s->as_number()) : 0;
          const Value* p = resp->Find("payload");
          det.response_payload = p ? *p : Value::Null();
        }
        if (const Value* e = d.Find("error"); e && e->is_object()) {
          Detail& det = job->DetailOf(rec);
          const Value* c = e->Find("code");
          const Value* n = e->Find("errorCode");
          const Value* desc = e->Find("description");
          det.error_code = c && c->is_string() ? c->as_string() : "Unknown";
          det.error_number = n && n->is_number() ? static_cast<int>(n->as_number()) : 0;
          det.error_description = desc && desc->is_string() ? desc->as_string() : "";
        }
      }
    }
    if (job->status == JobStatus::kRunning) {
      // Exported mid-run: whatever had not finished never will.
      int64_t now = clock_.Now();
      for (size_t k = 0; k < job->device_count; ++k) {
        DeviceRecord& rec = job->records[k];
        auto st = static_cast<DeviceJobStatus>(rec.status);
        if (st == DeviceJobStatus::kCompleted || st == DeviceJobStatus::kFailed ||
            st == DeviceJobStatus::kCanceled) {
          continue;
        }
        SetDeviceStatusLocked(*job, rec, DeviceJobStatus::kFailed, now);
        Detail& det = job->DetailOf(rec);
        det.error_code = "JobInterrupted";
        det.error_description = "the process running the job ended before this device finished";
      }
      job->status = JobStatus::kFailed;
      job->end = now;
      job->failure_reason = "the process running the job ended before the job finished";
    }
    job->finished = IsTerminal(job->status);
    loaded.push_back(std::move(job));
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (!runners_.empty()) return Error{"job state: cannot import while jobs are running"};
  jobs_.clear();
  order_.clear();
  for (auto& j : loaded) {
    if (jobs_.count(j->request.job_id) != 0) {
      return Error{fmt::format("job state: duplicate jobId '{}'", j->request.job_id)};
    }
    jobs_[j->request.job_id] = j;
    order_.push_back(j);
  }
  next_seq_ = loaded.size();
  return loaded.size();
}

}  // namespace twinq::jobs
