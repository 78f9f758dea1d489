// The cost of the public API layer (include/twinq) against calling the engine internals directly,
// per predicate class of bench_vm, on a generated fleet; and the cost of a ConditionCache hit.
//
//   bench_api [--devices N] [--seed S] [--reps R]
//
// One fleet is built through the public API (Fleet::FromTwinsText) and saved to an index file;
// then the API side (Fleet::OpenIndex) and the internal side (index::Fleet::Open) both open that
// file, so both run on identically built tables.
// Before anything is timed, every class's ids through the API are checked against vm::TargetIds
// (exit 1 on a difference). Times are per operation, medians over R repetitions, each repetition
// a loop long enough to take at least ~2 ms; thread CPU time (the machine is shared) and wall.
//
// Compared, per class:
//   internal run    vm::Run(program, table), the program compiled once beforehand
//   api evaluate    Condition::Evaluate(snapshot) (program compiled on first use, then reused)
//   internal ids    table.InIdOrderByRank(vm::Run(...)) + the id strings (vm::TargetIds without
//                   its compilation)
//   api ids         Condition::TargetIds(snapshot)
//   internal select vm::SelectRows (compiles the program on every call)
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "engine/common/source.h"
#include "engine/vm/compiler.h"
#include "engine/vm/interpreter.h"
#include "engine/vm/query.h"
#include "index/fleet.h"
#include "index/fleet_gen.h"
#include "tools/frontend.h"
#include "twinq/twinq.h"

namespace {

double CpuNowUs() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

double WallNowUs() {
  return std::chrono::duration<double, std::micro>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

struct Timing {
  double cpu_us = 0;
  double wall_us = 0;
};

// Median per-op times of several operations, interleaved: each repetition runs every op's loop
// (of at least ~2 ms), in forward order on even repetitions and backward on odd ones, so drift of
// a shared machine's load hits every op alike.
std::vector<Timing> MeasureAll(int reps, const std::vector<std::function<void()>>& ops) {
  std::vector<int> loops;
  for (const auto& op : ops) {
    op();  // warm up (and first-use compilation)
    double t0 = CpuNowUs();
    op();
    double once = std::max(CpuNowUs() - t0, 0.05);
    loops.push_back(std::clamp(static_cast<int>(2000.0 / once), 1, 1000000));
  }
  std::vector<std::vector<double>> cpu(ops.size()), wall(ops.size());
  for (int r = 0; r < reps; ++r) {
    for (size_t k = 0; k < ops.size(); ++k) {
      size_t i = r % 2 == 0 ? k : ops.size() - 1 - k;
      double c = CpuNowUs(), w = WallNowUs();
      for (int n = 0; n < loops[i]; ++n) ops[i]();
      cpu[i].push_back((CpuNowUs() - c) / loops[i]);
      wall[i].push_back((WallNowUs() - w) / loops[i]);
    }
  }
  std::vector<Timing> out;
  for (size_t i = 0; i < ops.size(); ++i) out.push_back({Median(cpu[i]), Median(wall[i])});
  return out;
}

Timing Measure(int reps, const std::function<void()>& op) { return MeasureAll(reps, {op})[0]; }

struct Case {
  std::string name;
  std::string text;
};

std::string Quoted(const std::string& s) { return "'" + s + "'"; }

std::vector<Case> Cases(const twinq::index::FleetSpec& spec) {
  std::vector<Case> cs;
  cs.push_back({"eq_selective", "tags.building = '114'"});
  cs.push_back({"eq_unselective", "tags.deviceType = 'thermostat'"});
  std::string list;
  for (uint64_t i = 0; i < 100; ++i) {
    uint64_t index = (i * spec.devices) / 100 + 7;
    if (!list.empty()) list += ", ";
    list += Quoted(twinq::index::FleetDeviceId(spec, std::min(index, spec.devices - 1)));
  }
  cs.push_back({"in_100_ids", "deviceId IN [" + list + "]"});
  cs.push_back({"range_battery", "properties.reported.batteryLevel < 20"});
  cs.push_back({"startswith_id", "STARTSWITH(deviceId, 'dev-001')"});
  cs.push_back({"is_defined", "IS_DEFINED(tags.owner)"});
  cs.push_back({"not_undefined", "NOT (tags.owner = 'team-hvac')"});
  cs.push_back({"lower_eq", "LOWER(tags.deviceType) = 'camera'"});
  cs.push_back({"mix5",
                "tags.environment = 'prod' AND (tags.region = 'westus2' OR tags.floor > 10) AND "
                "NOT (properties.reported.telemetryConfig.status = 'Success') AND "
                "properties.reported.batteryLevel < 50"});
  return cs;
}

std::vector<std::string> InternalIds(const twinq::index::Table& table,
                                     const twinq::index::Bitmap& rows) {
  std::vector<std::string> ids;
  for (uint32_t row : table.InIdOrderByRank(rows)) {
    std::string id(table.device_id(row));
    if (table.modules()) {
      id += '/';
      id += table.module_id(row);
    }
    ids.push_back(std::move(id));
  }
  return ids;
}

}  // namespace

int main(int argc, char** argv) {
  twinq::index::FleetSpec spec;
  spec.devices = 100000;
  spec.seed = 7;
  int reps = 15;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--devices" && i + 1 < argc) {
      spec.devices = std::strtoull(argv[++i], nullptr, 10);
    } else if (a == "--seed" && i + 1 < argc) {
      spec.seed = std::strtoull(argv[++i], nullptr, 10);
    } else if (a == "--reps" && i + 1 < argc) {
      reps = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: bench_api [--devices N] [--seed S] [--reps R]\n");
      return 2;
    }
  }
  if (spec.devices < 200 || reps < 1) {
    std::fprintf(stderr, "bench_api: --devices must be >= 200 and --reps >= 1\n");
    return 2;
  }

  // The fleet, once through the API, once opened from its index file by the internals.
  std::string text;
  twinq::index::GenerateFleet(spec, [&](std::string_view line) {
    text.append(line);
    text.push_back('\n');
  });
  double t0 = WallNowUs();
  twinq::StatusOr<twinq::Fleet> fleet = twinq::Fleet::FromTwinsText(text, "generated");
  if (!fleet.ok()) {
    std::fprintf(stderr, "bench_api: %s\n", fleet.status().ToString().c_str());
    return 1;
  }
  std::string().swap(text);
  std::string path = "/tmp/bench_api_" + std::to_string(spec.devices) + ".twinq";
  twinq::StatusOr<size_t> saved = fleet->SaveIndex(path);
  if (!saved.ok()) {
    std::fprintf(stderr, "bench_api: %s\n", saved.status().ToString().c_str());
    return 1;
  }
  // Both sides open the same index file, so they run on identically built tables.
  fleet = twinq::Fleet();  // drops the built fleet
  fleet = twinq::Fleet::OpenIndex(path);
  auto internal = twinq::index::Fleet::Open(path);
  std::remove(path.c_str());
  if (!fleet.ok() || !internal.ok()) {
    std::fprintf(stderr, "bench_api: cannot open %s\n", path.c_str());
    return 1;
  }
  twinq::Snapshot snap = fleet->snapshot();
  twinq::index::Snapshot isnap = (*internal)->snapshot();
  std::printf("fleet: %zu devices, %zu modules (seed %llu), built in %.1f s\n", snap.device_count(),
              snap.module_count(), static_cast<unsigned long long>(spec.seed),
              (WallNowUs() - t0) / 1e6);

  // Check every class before timing anything.
  struct Prepared {
    Case c;
    twinq::Condition api;
    twinq::check::BoundCondition bound;
    twinq::vm::Program program;
    size_t rows = 0;
  };
  std::vector<Prepared> prepared;
  for (const Case& c : Cases(spec)) {
    twinq::StatusOr<twinq::Condition> api = twinq::Condition::Compile(c.text);
    twinq::Source source("<condition>", c.text);
    auto bound = twinq::tools::CompileCondition(source);
    if (!api.ok() || !bound.ok()) {
      std::fprintf(stderr, "bench_api: %s does not compile\n", c.name.c_str());
      return 1;
    }
    twinq::StatusOr<std::vector<std::string>> got = api->TargetIds(snap);
    std::vector<std::string> want = twinq::vm::TargetIds(*bound, isnap);
    if (!got.ok() || *got != want) {
      std::fprintf(stderr, "bench_api: %s: the API's ids differ from the engine's\n",
                   c.name.c_str());
      return 1;
    }
    const twinq::index::Table& table = twinq::vm::TableOf(isnap, bound->collection);
    twinq::vm::Program program = twinq::vm::CompileFilter(bound->expr.get(), table);
    prepared.push_back({c, *api, std::move(bound).value(), std::move(program), want.size()});
  }
  std::printf("checked: the API's ids equal vm::TargetIds for all %zu classes\n", prepared.size());
  std::printf("per-operation thread-CPU medians in us over %d interleaved repetitions\n\n", reps);

  std::printf("%-15s %8s | %10s %10s %7s %6s | %10s %10s %6s | %10s\n", "class", "rows", "int run",
              "api eval", "diff us", "diff", "int ids", "api ids", "diff", "int select");
  std::vector<double> eval_diffs, ids_diffs;
  for (Prepared& p : prepared) {
    const twinq::index::Table& table = twinq::vm::TableOf(isnap, p.bound.collection);
    size_t sink = 0;
    std::vector<Timing> t = MeasureAll(
        reps, {[&] { sink += twinq::vm::Run(p.program, table).Cardinality(); },
               [&] { sink += p.api.Evaluate(snap)->size(); },
               [&] { sink += InternalIds(table, twinq::vm::Run(p.program, table)).size(); },
               [&] { sink += p.api.TargetIds(snap)->size(); },
               [&] { sink += twinq::vm::SelectRows(p.bound, isnap).Cardinality(); }});
    const Timing &run = t[0], &eval = t[1], &iids = t[2], &aids = t[3], &select = t[4];
    if (sink == 1) std::printf(" ");
    double d_eval = eval.cpu_us / run.cpu_us - 1;
    double d_ids = aids.cpu_us / iids.cpu_us - 1;
    eval_diffs.push_back(d_eval);
    ids_diffs.push_back(d_ids);
    std::printf("%-15s %8zu | %10.2f %10.2f %+7.2f %+5.1f%% | %10.1f %10.1f %+5.1f%% | %10.2f\n",
                p.c.name.c_str(), p.rows, run.cpu_us, eval.cpu_us, eval.cpu_us - run.cpu_us,
                100 * d_eval, iids.cpu_us, aids.cpu_us, 100 * d_ids, select.cpu_us);
  }
  std::printf("median difference: evaluate %+.1f%%, ids %+.1f%% (CPU)\n\n",
              100 * Median(eval_diffs), 100 * Median(ids_diffs));

  // The condition cache: a steady-state hit, against compiling the text each time.
  const std::string& text5 = prepared.back().c.text;  // mix5, 4 terms and a nested OR
  twinq::ConditionCache cache;
  Timing hit = Measure(reps, [&] { (void)cache.Get(text5).ok(); });
  Timing compile = Measure(reps, [&] { (void)twinq::Condition::Compile(text5).ok(); });
  twinq::ConditionCache::Stats st = cache.stats();
  std::printf(
      "cache hit (mix5, %zu bytes): %.3f us CPU, %.3f us wall; compile: %.1f us CPU; "
      "hits %llu, misses %llu\n",
      text5.size(), hit.cpu_us, hit.wall_us, compile.cpu_us,
      static_cast<unsigned long long>(st.hits), static_cast<unsigned long long>(st.misses));
  if (st.misses != 1) {
    std::fprintf(stderr, "bench_api: expected exactly one cache miss\n");
    return 1;
  }
  return 0;
}
