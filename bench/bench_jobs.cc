// Job benchmarks (a plain harness, not Google Benchmark: one large fleet takes minutes to build).
//
//   bench_jobs [--devices N] [--seed S] [--reps R] [--batch B] [--method-devices M]
//              [--latency-ms L] [--concurrency C1,C2,...] [--skip-twin]
//              [--section tags|desired] [--apply-threads T]
//
// The fleet is generated in process (index::GenerateFleet, default FleetSpec: module share 0.2)
// as NDJSON text that Fleet::LoadTwinsText indexes (streamed); nothing is read from disk.
// Phases, each checked before its numbers are printed (exit 1 on a wrong answer):
//  1. target resolution: JobTimings::resolve_ms of a twin-update job over every device
//     (condition "*": snapshot + vm::TargetIds + one device record per target), and of a
//     selective condition; medians of --reps jobs that are cancelled right after resolution
//     (their records are checked against vm::TargetIds of the same condition);
//  2. a method job over the first --method-devices devices (deviceId < 'dev-…') calling
//     SimulatedDevices on the system clock with a fixed --latency-ms, for each --concurrency
//     (worker threads of the job). Small concurrencies run on a prefix of min(M, max(2000,
//     1000 * C)) devices so that each run takes seconds; throughput = devices / wall time of
//     the job; every device must have answered;
//  3. the whole twin-update job over every device ("*", patch {"tags":{"benchJob":"v1"}}, or
//     {"properties":{"desired":{"benchJob":"v1"}}} with --section desired): wall time from
//     Schedule to the end of the runner, with its resolve and execute parts, and the page faults
//     and the CPU time of all the process's threads (user and system) meanwhile; afterwards the VM
//     finds every device by the new value and 200 sampled documents hold it and a version one
//     higher.
// Times are wall-clock (steady_clock) and, for resolution and the twin job, the CPU time of the
// job's runner thread (JobTimings; CLOCK_THREAD_CPUTIME_ID), which is what to judge on a shared
// machine. Method jobs are timed by wall clock only: their point is waiting on devices. Results go
// to bench/BENCHLOG.md ("Jobs").
#include <fmt/format.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "engine/vm/query.h"
#include "index/fleet.h"
#include "index/fleet_gen.h"
#include "jobs/job_manager.h"
#include "jobs/simulated_devices.h"
#include "tools/frontend.h"

namespace {

using namespace twinq;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "bench_jobs: %s\n", what.c_str());
  std::exit(1);
}

std::vector<std::string> Targets(const index::Fleet& fleet, const std::string& cond) {
  Source source("<bench>", cond);
  auto bound = tools::CompileCondition(source);
  if (!bound.ok()) Die("cannot compile " + cond);
  return vm::TargetIds(*bound, fleet.snapshot());
}

// `patch`: the updateTwin members besides the etag, e.g. "tags":{"a":1}.
std::string TwinRequest(const std::string& id, const std::string& cond, const std::string& patch,
                        const std::string& start) {
  return fmt::format(
      R"({{"jobId":"{}","type":"scheduleUpdateTwin","updateTwin":{{"etag":"*",{}}},)"
      R"("queryCondition":"{}","startTime":"{}","maxExecutionTimeInSeconds":86400}})",
      id, patch, cond, start);
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t devices = 1000000, seed = 7, method_devices = 100000;
  int reps = 3;
  size_t batch = 10000;
  int64_t latency_ms = 5;
  std::vector<size_t> concurrency = {1, 16, 64, 256, 512};
  bool skip_twin = false;
  bool desired = false;  // --section desired: the twin job patches properties.desired
  unsigned apply_threads = jobs::JobManagerOptions().twin_apply_threads;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) Die(a + " needs a value");
      return argv[++i];
    };
    if (a == "--devices") {
      devices = std::strtoull(next().c_str(), nullptr, 10);
    } else if (a == "--seed") {
      seed = std::strtoull(next().c_str(), nullptr, 10);
    } else if (a == "--reps") {
      reps = std::max(1, std::atoi(next().c_str()));
    } else if (a == "--batch") {
      batch = std::max<size_t>(1, std::strtoull(next().c_str(), nullptr, 10));
    } else if (a == "--method-devices") {
      method_devices = std::strtoull(next().c_str(), nullptr, 10);
    } else if (a == "--latency-ms") {
      latency_ms = std::atoll(next().c_str());
    } else if (a == "--concurrency") {
      concurrency.clear();
      std::string list = next();
      for (size_t p = 0; p < list.size();) {
        size_t q = list.find(',', p);
        if (q == std::string::npos) q = list.size();
        concurrency.push_back(
            std::max<size_t>(1, std::strtoull(list.substr(p, q - p).c_str(), nullptr, 10)));
        p = q + 1;
      }
    } else if (a == "--skip-twin") {
      skip_twin = true;
    } else if (a == "--apply-threads") {
      apply_threads = static_cast<unsigned>(std::max(1, std::atoi(next().c_str())));
    } else if (a == "--section") {
      std::string v = next();
      if (v != "tags" && v != "desired") Die("--section takes tags or desired");
      desired = v == "desired";
    } else {
      Die("unknown option " + a);
    }
  }

  // ---- the fleet ----
  index::FleetSpec spec;
  spec.devices = devices;
  spec.seed = seed;
  auto t0 = Clock::now();
  std::string text;
  index::GenerateFleet(spec, [&](std::string_view line) {
    text.append(line);
    text.push_back('\n');
  });
  double gen_s = Seconds(t0);
  index::Fleet fleet;
  t0 = Clock::now();
  Expected<size_t> loaded = fleet.LoadTwinsText(text, "<generated>");
  if (!loaded.ok()) Die(loaded.error().message);
  double load_s = Seconds(t0);
  std::string().swap(text);
  uint64_t n_devices = fleet.snapshot().devices().live_count();
  std::printf(
      "fleet: %llu devices + %llu modules (%zu twins), generated in %.1f s, indexed in "
      "%.1f s\n",
      static_cast<unsigned long long>(n_devices),
      static_cast<unsigned long long>(fleet.snapshot().modules().live_count()), *loaded, gen_s,
      load_s);
  std::fflush(stdout);

  jobs::SystemClock clock;
  std::string now = jobs::FormatTime(clock.Now());

  // ---- 1. target resolution ----
  struct Cond {
    const char* name;
    std::string text;
  };
  std::vector<Cond> conds = {{"every device (*)", "*"},
                             {"selective", "tags.building = '43' AND tags.floor >= 2"},
                             {"half", "tags.environment = 'prod'"}};
  for (const Cond& c : conds) {
    std::vector<std::string> expected = Targets(fleet, c.text);
    std::vector<double> resolve, resolve_cpu;
    for (int r = 0; r < reps; ++r) {
      jobs::JobManagerOptions o;
      o.twin_batch_size = batch;
      jobs::JobManager jm(fleet, clock, nullptr, o);
      // A job whose deadline has passed when it starts resolves its targets and then stops at
      // once: resolution alone, without touching the fleet.
      std::string id = fmt::format("resolve-{}", r);
      std::string req = fmt::format(
          R"({{"jobId":"{}","type":"scheduleUpdateTwin","updateTwin":{{"etag":"*","tags":{{"x":1}}}},)"
          R"("queryCondition":"{}","startTime":"{}","maxExecutionTimeInSeconds":1}})",
          id, c.text, jobs::FormatTime(clock.Now() - 10 * jobs::kTicksPerSecond));
      if (!jm.ScheduleText(req).ok()) Die("schedule failed");
      jm.Poll();
      jm.Wait(id);
      resolve.push_back(jm.Timings(id)->resolve_ms);
      resolve_cpu.push_back(jm.Timings(id)->resolve_cpu_ms);
      std::vector<Value> recs = jm.DeviceJobRecords();
      if (recs.size() != expected.size()) Die("resolution: record count differs from the VM");
      for (size_t i = 0; i < recs.size(); i += std::max<size_t>(1, recs.size() / 500)) {
        if (recs[i].Find("deviceId")->as_string() != expected[i]) Die("resolution: wrong record");
      }
    }
    std::printf("resolve %-18s %9zu targets: median %8.2f ms CPU, %8.2f ms wall (reps, CPU:",
                c.name, expected.size(), Median(resolve_cpu), Median(resolve));
    for (double d : resolve_cpu) std::printf(" %.2f", d);
    std::printf(")\n");
    std::fflush(stdout);
  }

  // ---- 2. method jobs: throughput vs concurrency ----
  uint64_t m_total = std::min<uint64_t>(method_devices, n_devices);
  for (size_t c : concurrency) {
    uint64_t n = std::min<uint64_t>(m_total, std::max<uint64_t>(2000, 1000 * c));
    std::string bound = index::FleetDeviceId(spec, n);  // devices [0, n)
    std::string cond = fmt::format("deviceId < '{}'", bound);
    jobs::SimulationSettings s;
    s.latency_min_ms = s.latency_max_ms = latency_ms;
    jobs::SimulatedDevices sim(clock, s);
    jobs::JobManagerOptions o;
    o.device_concurrency = c;
    jobs::JobManager jm(fleet, clock, &sim, o);
    std::string req = fmt::format(
        R"({{"jobId":"m","type":"scheduleDeviceMethod","cloudToDeviceMethod":{{"methodName":"ping"}},)"
        R"("queryCondition":"{}","startTime":"{}","maxExecutionTimeInSeconds":86400}})",
        cond, jobs::FormatTime(clock.Now()));
    auto t = Clock::now();
    if (!jm.ScheduleText(req).ok()) Die("schedule failed");
    jm.Poll();
    jm.Wait("m");
    double wall = Seconds(t);
    Expected<jobs::DeviceJobStatistics> st = jm.Statistics("m");
    if (st->device_count != static_cast<int64_t>(n) ||
        st->succeeded_count != static_cast<int64_t>(n) || sim.calls() != n) {
      Die(fmt::format("method job: {} of {} devices succeeded", st->succeeded_count, n));
    }
    double ideal =
        static_cast<double>(c) * 1000.0 / static_cast<double>(std::max<int64_t>(1, latency_ms));
    std::printf(
        "method job: %7llu devices, latency %lld ms, concurrency %4zu: %8.3f s, %9.0f "
        "devices/s (ideal %.0f/s, %.0f%%); resolve %.1f ms\n",
        static_cast<unsigned long long>(n), static_cast<long long>(latency_ms), c, wall, n / wall,
        ideal, 100.0 * (n / wall) / ideal, jm.Timings("m")->resolve_ms);
    std::fflush(stdout);
  }

  // ---- 3. the whole twin-update job ----
  if (!skip_twin) {
    jobs::JobManagerOptions o;
    o.twin_batch_size = batch;
    o.twin_apply_threads = apply_threads;
    jobs::JobManager jm(fleet, clock, nullptr, o);
    const index::Table& before = fleet.snapshot().devices();
    std::vector<std::pair<std::string, double>> sample;
    for (uint64_t i = 0; i < 200; ++i) {
      std::string id = index::FleetDeviceId(spec, (i * 7919) % n_devices);
      Value doc = before.Document(*before.FindRow(id));
      sample.emplace_back(id, doc.Find("version")->as_number());
    }
    // Page faults during the job (the whole process; nothing else runs meanwhile): on a VM each
    // one is expensive, and their count varies far less between runs than the time does.
    auto faults = [] {
      rusage u{};
      getrusage(RUSAGE_SELF, &u);
      return static_cast<long long>(u.ru_minflt + u.ru_majflt);
    };
    // The CPU time of every thread during the job, user and system: with the job's threads busy
    // on both cores, the wall time follows it (bench/BENCHLOG.md, ninth session).
    auto cpu = [] {
      rusage u{};
      getrusage(RUSAGE_SELF, &u);
      auto s = [](const timeval& v) { return v.tv_sec + v.tv_usec / 1e6; };
      return std::pair<double, double>(s(u.ru_utime), s(u.ru_stime));
    };
    long long faults0 = faults();
    std::pair<double, double> cpu0 = cpu();
    auto t = Clock::now();
    const std::string patch =
        desired ? R"("properties":{"desired":{"benchJob":"v1"}})" : R"("tags":{"benchJob":"v1"})";
    if (!jm.ScheduleText(TwinRequest("t", "*", patch, now)).ok()) {
      Die("schedule failed");
    }
    jm.Poll();
    jm.Wait("t");
    double wall = Seconds(t);
    long long job_faults = faults() - faults0;
    std::pair<double, double> cpu1 = cpu();
    double user = cpu1.first - cpu0.first, sys = cpu1.second - cpu0.second;
    Expected<jobs::DeviceJobStatistics> st = jm.Statistics("t");
    if (st->succeeded_count != static_cast<int64_t>(n_devices)) {
      Die(fmt::format("twin job: {} of {} succeeded", st->succeeded_count, n_devices));
    }
    std::string where = desired ? "properties.desired.benchJob" : "tags.benchJob";
    if (Targets(fleet, where + " = 'v1'").size() != n_devices) Die("twin job: VM count");
    const index::Table& after = fleet.snapshot().devices();
    for (const auto& [id, version] : sample) {
      Value doc = after.Document(*after.FindRow(id));
      const Value* section = desired ? doc.Find("properties")->Find("desired") : doc.Find("tags");
      const Value* tag = section->Find("benchJob");
      if (tag == nullptr || !tag->is_string() || tag->as_string() != "v1" ||
          doc.Find("version")->as_number() != version + 1) {
        Die("twin job: sampled document " + id + " not patched");
      }
    }
    jobs::JobTimings tm = *jm.Timings("t");
    std::printf(
        "twin-update job: %llu devices, batches of %zu, %u splice threads: %.3f s whole job wall = "
        "%.0f "
        "patches/s (resolve %.1f ms wall / %.1f ms CPU; execute %.3f s wall / %.3f s CPU "
        "of the runner thread, which calls Fleet::Apply); %lld page faults; CPU of all threads "
        "%.3f s (user %.3f s, system %.3f s)\n",
        static_cast<unsigned long long>(n_devices), batch, apply_threads, wall, n_devices / wall,
        tm.resolve_ms, tm.resolve_cpu_ms, tm.execute_ms / 1000, tm.execute_cpu_ms / 1000,
        job_faults, user + sys, user, sys);
  }
  return 0;
}
