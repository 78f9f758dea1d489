// Schedule a job and poll its statistics.
//
//   schedule_job FLEET.ndjson 'CONDITION'
//
// Schedules a direct-method job ("reboot") on the devices the condition selects. The devices are
// simulated by a MethodHandler: each answers 200 after a few milliseconds, except devices whose
// id ends in '1', which are offline. The program polls the job's deviceJobStatistics until it
// finishes, then prints the final JobResponse fields. (A job ends "completed" only when every
// device completed; with an offline device it ends "failed": docs/jobs.md.)
#include <twinq/twinq.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>
#include <thread>

namespace {

std::string NowIso8601() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// Called from the scheduler's worker threads: must be thread-safe (this one has no state).
twinq::MethodResponse Reboot(const twinq::MethodCall& call) {
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  twinq::MethodResponse r;
  if (!call.device_id.empty() && call.device_id.back() == '1') {
    r.responded = false;
    r.error_code = 404103;
    r.error_name = "DeviceNotOnline";
    r.error_message = "the device is not connected";
    return r;
  }
  r.status = 200;
  r.payload_json = R"({"rebooted":true})";
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s FLEET.ndjson 'CONDITION'\n", argv[0]);
    return 1;
  }
  twinq::StatusOr<twinq::Fleet> fleet = twinq::Fleet::FromTwinsFile(argv[1]);
  if (!fleet.ok()) {
    std::fprintf(stderr, "%s\n", fleet.status().ToString().c_str());
    return 1;
  }

  // A scheduler over the fleet; its background thread starts jobs when they are due.
  twinq::JobSchedulerOptions options;
  options.device_concurrency = 4;
  twinq::StatusOr<std::unique_ptr<twinq::JobScheduler>> scheduler =
      twinq::JobScheduler::Create(*fleet, options, Reboot);
  if (!scheduler.ok()) {
    std::fprintf(stderr, "%s\n", scheduler.status().ToString().c_str());
    return 1;
  }
  twinq::JobScheduler& jobs = **scheduler;

  // The body of PUT /jobs/v2/{jobId}, as IoT Hub takes it. (A real program would build it with
  // a JSON library and escape the condition.)
  std::string request = std::string(R"({"jobId":"reboot-1","type":"scheduleDeviceMethod",)") +
                        R"("cloudToDeviceMethod":{"methodName":"reboot","payload":{}},)" +
                        R"("queryCondition":")" + argv[2] + R"(","startTime":")" + NowIso8601() +
                        R"(","maxExecutionTimeInSeconds":600})";
  twinq::StatusOr<twinq::JobInfo> queued = jobs.Schedule(request);
  if (!queued.ok()) {
    std::fprintf(stderr, "%s\n", queued.status().ToString().c_str());
    for (const twinq::CompileDiagnostic& d : queued.status().diagnostics()) {
      std::fprintf(stderr, "%s", d.rendered.c_str());
    }
    return 2;
  }
  std::printf("scheduled %s: %s\n", queued->job_id.c_str(),
              std::string(twinq::JobStatusName(queued->status)).c_str());

  // Poll until the job is completed, failed or cancelled.
  twinq::JobInfo info;
  for (;;) {
    twinq::StatusOr<twinq::JobInfo> got = jobs.Get("reboot-1");
    if (!got.ok()) {
      std::fprintf(stderr, "%s\n", got.status().ToString().c_str());
      return 1;
    }
    info = *got;
    if (twinq::IsTerminal(info.status)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const twinq::JobStatistics& s = info.statistics;
  std::printf("job %s %s: %lld devices, %lld succeeded, %lld failed, %lld running, %lld pending\n",
              info.job_id.c_str(), std::string(twinq::JobStatusName(info.status)).c_str(),
              static_cast<long long>(s.device_count), static_cast<long long>(s.succeeded_count),
              static_cast<long long>(s.failed_count), static_cast<long long>(s.running_count),
              static_cast<long long>(s.pending_count));

  // The per-device records, as SELECT * FROM devices.jobs gives them.
  twinq::StatusOr<twinq::QueryPage> failed =
      jobs.QueryDeviceJobs("SELECT * FROM devices.jobs WHERE status = 'failed'");
  if (failed.ok()) {
    std::printf("failed devices: %zu\n", failed->rows.size());
  }
  return 0;
}
