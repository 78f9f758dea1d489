// JobScheduler over jobs::JobManager: JSON text in and out, errors as Status values.
#include "twinq/jobs.h"

#include "api/internal.h"
#include "engine/common/json_reader.h"
#include "engine/common/value.h"
#include "jobs/clock.h"
#include "jobs/job_manager.h"
#include "jobs/method_invoker.h"
#include "tools/frontend.h"

namespace twinq {

using api_internal::FromDiagnostics;
using api_internal::FromError;
using api_internal::Guard;

std::string_view JobStatusName(JobStatus status) {
  return jobs::JobStatusName(static_cast<jobs::JobStatus>(status));
}

bool IsTerminal(JobStatus status) {
  return status == JobStatus::kCompleted || status == JobStatus::kFailed ||
         status == JobStatus::kCancelled;
}

namespace {

static_assert(static_cast<int>(JobStatus::kQueued) == static_cast<int>(jobs::JobStatus::kQueued));
static_assert(static_cast<int>(JobStatus::kCancelled) ==
              static_cast<int>(jobs::JobStatus::kCancelled));

// Adapts a MethodHandler to the scheduler's MethodInvoker.
class HandlerInvoker : public jobs::MethodInvoker {
 public:
  explicit HandlerInvoker(MethodHandler handler) : handler_(std::move(handler)) {}

  jobs::MethodResult Invoke(const jobs::MethodCall& call) override {
    jobs::MethodResult r;
    MethodResponse response;
    try {
      MethodCall c;
      c.device_id = call.device_id;
      c.module_id = call.module_id;
      c.method_name = call.method_name;
      c.payload_json = ToJson(call.payload);
      c.response_timeout_s = call.response_timeout_s;
      c.connect_timeout_s = call.connect_timeout_s;
      response = handler_(c);
    } catch (const std::exception& e) {
      return Failed(std::string("the method handler threw: ") + e.what());
    } catch (...) {
      return Failed("the method handler threw an exception");
    }
    r.responded = response.responded;
    r.status = response.status;
    r.error_code = response.error_code;
    r.error_name = response.error_name;
    r.error_message = response.error_message;
    if (response.responded) {
      Expected<Value> payload = ParseJson(response.payload_json, "method response payload");
      if (!payload.ok()) return Failed(payload.error().message);
      r.payload = std::move(payload).value();
    }
    return r;
  }

 private:
  static jobs::MethodResult Failed(std::string message) {
    jobs::MethodResult r;
    r.responded = false;
    r.error_code = 500000;
    r.error_name = "MethodHandlerError";
    r.error_message = std::move(message);
    return r;
  }
  MethodHandler handler_;
};

int64_t Int(const Value& o, std::string_view key) {
  const Value* v = o.Find(key);
  return v != nullptr && v->is_number() ? static_cast<int64_t>(v->as_number()) : 0;
}

std::string Str(const Value& o, std::string_view key) {
  const Value* v = o.Find(key);
  return v != nullptr && v->is_string() ? v->as_string() : std::string();
}

JobInfo ToInfo(const Value& response) {
  JobInfo info;
  info.job_id = Str(response, "jobId");
  info.type = Str(response, "type");
  std::string status = Str(response, "status");
  for (int s = 0; s <= static_cast<int>(JobStatus::kCancelled); ++s) {
    if (JobStatusName(static_cast<JobStatus>(s)) == status) info.status = static_cast<JobStatus>(s);
  }
  if (const Value* st = response.Find("deviceJobStatistics"); st != nullptr && st->is_object()) {
    info.statistics.device_count = Int(*st, "deviceCount");
    info.statistics.failed_count = Int(*st, "failedCount");
    info.statistics.succeeded_count = Int(*st, "succeededCount");
    info.statistics.running_count = Int(*st, "runningCount");
    info.statistics.pending_count = Int(*st, "pendingCount");
  }
  info.json = ToJson(response);
  return info;
}

}  // namespace

namespace api_internal {

struct SchedulerImpl {
  Fleet fleet;  // keeps the twins alive while the manager runs
  std::unique_ptr<HandlerInvoker> invoker;
  std::unique_ptr<jobs::JobManager> manager;  // destroyed first
  bool strict = false;

  ~SchedulerImpl() { manager.reset(); }

  StatusOr<JobInfo> Info(const Expected<Value>& response, const std::string& id) const {
    if (!response.ok()) return FromError(response.error(), ErrorCode::kInvalidArgument);
    JobInfo info = ToInfo(*response);
    Expected<jobs::DeviceJobStatistics> st = manager->Statistics(id.empty() ? info.job_id : id);
    if (st.ok()) info.statistics.canceled_count = st->canceled_count;
    return info;
  }
};

}  // namespace api_internal

JobScheduler::JobScheduler(std::unique_ptr<api_internal::SchedulerImpl> impl)
    : impl_(std::move(impl)) {}

JobScheduler::~JobScheduler() = default;

StatusOr<std::unique_ptr<JobScheduler>> JobScheduler::Create(Fleet fleet,
                                                             JobSchedulerOptions options,
                                                             MethodHandler method_handler) {
  return Guard([&]() -> StatusOr<std::unique_ptr<JobScheduler>> {
    if (options.max_active_jobs == 0 || options.device_concurrency == 0 ||
        options.twin_batch_size == 0) {
      return Status(ErrorCode::kInvalidArgument,
                    "max_active_jobs, device_concurrency and twin_batch_size must be positive");
    }
    if (options.poll_interval_ms <= 0) {
      return Status(ErrorCode::kInvalidArgument, "poll_interval_ms must be positive");
    }
    auto impl = std::make_unique<api_internal::SchedulerImpl>();
    impl->fleet = std::move(fleet);
    impl->strict = options.strict;
    if (method_handler) impl->invoker = std::make_unique<HandlerInvoker>(std::move(method_handler));
    jobs::JobManagerOptions o;
    o.max_active_jobs = options.max_active_jobs;
    o.device_concurrency = options.device_concurrency;
    o.twin_batch_size = options.twin_batch_size;
    o.validation.strict = options.strict;
    impl->manager = std::make_unique<jobs::JobManager>(
        *impl->fleet.impl_->fleet, jobs::DefaultClock(), impl->invoker.get(), o);
    if (options.background) impl->manager->Start(options.poll_interval_ms);
    return std::unique_ptr<JobScheduler>(new JobScheduler(std::move(impl)));
  });
}

StatusOr<JobInfo> JobScheduler::Schedule(std::string_view request_json) {
  return Guard([&]() -> StatusOr<JobInfo> {
    Expected<Value> r = impl_->manager->ScheduleText(request_json);
    if (!r.ok()) {
      Status status = FromError(r.error(), ErrorCode::kInvalidArgument);
      // A bad queryCondition: add its positioned diagnostics.
      Expected<Value> body = ParseJson(request_json, "request");
      const Value* cond = body.ok() ? body->Find("queryCondition") : nullptr;
      if (status.code() == ErrorCode::kInvalidArgument && cond != nullptr && cond->is_string()) {
        Source source("<queryCondition>", cond->as_string());
        check::BindOptions bind;
        bind.strict = impl_->strict;
        Result<check::BoundCondition> bound = tools::CompileCondition(source, bind);
        if (!bound.ok()) {
          Status diags = FromDiagnostics(bound.diagnostics(), source);
          return Status(ErrorCode::kInvalidArgument, status.message(), diags.diagnostics());
        }
      }
      return status;
    }
    return impl_->Info(r, Str(*r, "jobId"));
  });
}

StatusOr<JobInfo> JobScheduler::Get(std::string_view job_id) const {
  return Guard([&]() -> StatusOr<JobInfo> {
    std::string id(job_id);
    return impl_->Info(impl_->manager->Get(id), id);
  });
}

StatusOr<JobInfo> JobScheduler::Cancel(std::string_view job_id) {
  return Guard([&]() -> StatusOr<JobInfo> {
    std::string id(job_id);
    return impl_->Info(impl_->manager->Cancel(id), id);
  });
}

StatusOr<JobStatistics> JobScheduler::Statistics(std::string_view job_id) const {
  return Guard([&]() -> StatusOr<JobStatistics> {
    Expected<jobs::DeviceJobStatistics> s = impl_->manager->Statistics(std::string(job_id));
    if (!s.ok()) return FromError(s.error(), ErrorCode::kNotFound);
    JobStatistics out;
    out.device_count = s->device_count;
    out.failed_count = s->failed_count;
    out.succeeded_count = s->succeeded_count;
    out.running_count = s->running_count;
    out.pending_count = s->pending_count;
    out.canceled_count = s->canceled_count;
    return out;
  });
}

StatusOr<JobPage> JobScheduler::List(const JobFilter& filter, const PageOptions& page) const {
  return Guard([&]() -> StatusOr<JobPage> {
    jobs::JobFilter f;
    f.job_type = filter.type;
    f.job_status = filter.status;
    PageRequest request;
    request.page_size = page.page_size;
    request.continuation = page.continuation;
    Expected<QueryResult> r = impl_->manager->List(f, request);
    if (!r.ok()) return FromError(r.error(), ErrorCode::kInvalidArgument);
    JobPage out;
    for (const Value& v : r->rows) out.jobs.push_back(ToInfo(v));
    out.continuation = std::move(r->continuation);
    return out;
  });
}

StatusOr<QueryPage> JobScheduler::QueryDeviceJobs(std::string_view query,
                                                  const PageOptions& page) const {
  return Guard([&]() -> StatusOr<QueryPage> {
    Source source("<query>", std::string(query));
    Result<check::BoundQuery> bound = tools::CompileQuery(source);
    if (!bound.ok()) return FromDiagnostics(bound.diagnostics(), source);
    PageRequest request;
    request.page_size = page.page_size;
    request.continuation = page.continuation;
    Expected<QueryResult> r = impl_->manager->QueryDeviceJobs(query, request);
    if (!r.ok()) return FromError(r.error(), ErrorCode::kInvalidArgument);
    QueryPage out;
    for (const Value& v : r->rows) out.rows.push_back(ToJson(v));
    out.continuation = std::move(r->continuation);
    return out;
  });
}

size_t JobScheduler::Poll() {
  try {
    return impl_->manager->Poll();
  } catch (...) {
    return 0;
  }
}

void JobScheduler::Wait(std::string_view job_id) {
  try {
    impl_->manager->Wait(std::string(job_id));
  } catch (...) {
  }
}

void JobScheduler::WaitAll() {
  try {
    impl_->manager->WaitAll();
  } catch (...) {
  }
}

}  // namespace twinq
