// VM benchmarks on a large generated fleet (the list of predicate classes), single thread:
// for each class, the reference engine (engine/ref, a tree walk over parsed JSON Values) and the
// VM (engine/vm, a Program over the columnar index) must give the same answer first; then
//
//   compile  parse + bind (tools::CompileCondition / CompileQuery from a fresh Source) and
//            vm::CompileFilter against the device table, warm, median    target <= 50 us
//   run      vm::Run of the compiled Program -> the true-row Bitmap (the VM time; targets:
//            selective equality <= 0.2 ms, IN of 100 ids <= 50 us, numeric range <= 2 ms,
//            STARTSWITH <= 1 ms, 5-term mix <= 5 ms)
//   select   vm::SelectRows: CompileFilter + Run, from the bound condition to the row set
//   ids      vm::TargetIds: select + rows in id order + the id strings
//   ref      ref::SelectRows over the parsed device Values (a query: ref::AllRows)
//   speedup  ref / select (like for like: bound condition -> selected rows; a query: ref
//            AllRows / vm AllRows)                                        target >= 100x
//
//   bench_vm [--devices N] [--seed S] [--fleet FILE | --open FILE] [--save FILE]
//            [--only C1,C2,...] [--vm-reps N] [--ref-reps N] [--compile-reps N]
//            [--budget-ms MS] [--no-ref-timing] [--loop C1,C2,... N [--what P1,P2,...]] [--list]
//
// The fleet is generated in process (index::GenerateFleet, seed 7, default FleetSpec: module
// share 0.2) into NDJSON text that Fleet::LoadTwinsText indexes (streamed: no Values held); the
// text is then freed and the generator run again for the reference, whose device documents are
// parsed with ParseJson (every class queries devices, so module twins get no Values; the index
// holds them). Nothing is read from disk. --fleet FILE loads a file with Fleet::LoadTwinsFile
// instead and takes the reference's Values from ToTwinSet. --save FILE writes the fleet
// (documents + index, Fleet::Save) after loading, and --open FILE starts from such a file
// (Fleet::Open, then ToTwinSet): the cheap start for valgrind, where generating and indexing
// 100k twins would take most of an hour.
//
// A wrong answer is never timed: the checks run first (ref::TargetIds against vm::TargetIds, with
// and without the optimiser; for the query ref::AllRows against vm::AllRows; vm::Run's cardinality
// against the id count) and the first difference aborts the program with exit status 1.
//
// Every timing is taken twice: wall time (steady_clock) and this thread's CPU time
// (CLOCK_THREAD_CPUTIME_ID). The machine is shared, so the tables give CPU-time medians, with
// wall-time medians beside them. Repetitions: at least --vm-reps (default 7) and more while the
// --budget-ms (default 400) lasts, up to 2000; the reference at least --ref-reps (default 3).
//
// --loop C1,C2,... N runs, for each class in turn (in the order of --list), its checks, then for
// each part named by --what (run, select, ids, compile, ref; default run; for the query run is
// vm::AllRows) N calls inside the never-inlined twinq_bench::ProfiledLoop(), followed by a
// callgrind dump named CLASS/PART (valgrind/callgrind.h client request), for
//   valgrind --tool=callgrind --toggle-collect='twinq_bench::ProfiledLoop*'
//            bench_vm --devices 100000 --open fleet100k.twinq --loop eq_selective,mix5 10
//            --what run,compile
// (one file per dump; instructions per call = its Ir / N; the checks and the setup are outside
// the toggled function).
//
// The last thing printed (stdout) is the result table in Markdown, for bench/BENCHLOG.md.
#include <malloc.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "engine/common/json_reader.h"
#include "engine/common/source.h"
#include "engine/common/value.h"
#include "engine/ref/query.h"
#include "engine/vm/compiler.h"
#include "engine/vm/interpreter.h"
#include "engine/vm/program.h"
#include "engine/vm/query.h"
#include "index/fleet.h"
#include "index/fleet_gen.h"
#include "tools/frontend.h"

#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#define TWINQ_BENCH_HAVE_CALLGRIND 1
#else
#define TWINQ_BENCH_HAVE_CALLGRIND 0
#endif

namespace twinq_bench {

// The function callgrind collects in --loop mode: n calls of f (--toggle-collect and
// --dump-after 'twinq_bench::ProfiledLoop*': one dump per class).
[[gnu::noinline]] void ProfiledLoop(const std::function<void()>& f, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) f();
}

}  // namespace twinq_bench

namespace {

using twinq::Source;
using twinq::TwinSet;
using twinq::Value;
using twinq::index::Fleet;
using twinq::index::Snapshot;
using twinq::index::Table;

[[noreturn]] void Die(const std::string& why) {
  std::fprintf(stderr, "bench_vm: %s\n", why.c_str());
  std::exit(1);
}

// ---- time ----------------------------------------------------------------------------------

double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

struct Timing {
  double wall = 0, cpu = 0;  // seconds
};

class Timer {
 public:
  Timer() : wall_(std::chrono::steady_clock::now()), cpu_(ThreadCpuSeconds()) {}
  Timing Elapsed() const {
    return {std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_).count(),
            ThreadCpuSeconds() - cpu_};
  }

 private:
  std::chrono::steady_clock::time_point wall_;
  double cpu_;
};

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

struct Measured {
  double cpu = 0, wall = 0;  // medians, seconds
  double cpu_min = 0, cpu_max = 0;
  size_t n = 0;
};

// Runs `f` at least `min_reps` times and then while `budget_s` (measured from the first call)
// lasts, at most `max_reps` times.
Measured Measure(const std::function<void()>& f, size_t min_reps, size_t max_reps,
                 double budget_s) {
  std::vector<double> cpu, wall;
  auto start = std::chrono::steady_clock::now();
  for (size_t i = 0; i < max_reps; ++i) {
    if (i >= min_reps &&
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > budget_s)
      break;
    Timer t;
    f();
    Timing e = t.Elapsed();
    cpu.push_back(e.cpu);
    wall.push_back(e.wall);
  }
  Measured m;
  m.n = cpu.size();
  m.cpu = Median(cpu);
  m.wall = Median(wall);
  m.cpu_min = *std::min_element(cpu.begin(), cpu.end());
  m.cpu_max = *std::max_element(cpu.begin(), cpu.end());
  return m;
}

// ---- memory --------------------------------------------------------------------------------

uint64_t RssBytes() {
  malloc_trim(0);
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    unsigned long long kb = 0;
    if (std::sscanf(line.c_str(), "VmRSS: %llu kB", &kb) == 1) return kb * 1024;
  }
  return 0;
}

std::string Fmt(const char* f, double a) {
  char buf[128];
  std::snprintf(buf, sizeof buf, f, a);
  return buf;
}

// ---- the classes ---------------------------------------------------------------------------

struct Case {
  std::string name;
  std::string what;  // the class, as the issue names it
  bool query = false;
  std::string text;
  // Target for vm::Run (the query: vm::AllRows) in ms, or < 0 when the issue sets none.
  double target_ms = -1;
};

std::string Quoted(const std::string& s) { return "'" + s + "'"; }

std::vector<Case> Cases(const twinq::index::FleetSpec& spec) {
  std::vector<Case> cs;
  // tags.building is Zipf over 200 buildings: '114' holds ~0.5 % of the devices.
  cs.push_back(
      {"eq_selective", "tag equality, selective (~0.5 %)", false, "tags.building = '114'", 0.2});
  // tags.deviceType: 'thermostat' is ~31 % of the devices.
  cs.push_back({"eq_unselective", "tag equality, unselective (~31 %)", false,
                "tags.deviceType = 'thermostat'", -1});
  {
    std::string list;
    for (uint64_t i = 0; i < 100; ++i) {
      uint64_t index = (i * spec.devices) / 100 + 7;
      if (!list.empty()) list += ", ";
      list += Quoted(twinq::index::FleetDeviceId(spec, std::min(index, spec.devices - 1)));
    }
    cs.push_back({"in_100_ids", "IN of 100 deviceIds", false, "deviceId IN [" + list + "]", 0.05});
  }
  {
    // 1,000 building names '101'..'1100': 100 of them exist (the fleet has '1'..'200').
    std::string list;
    for (int b = 101; b <= 1100; ++b) {
      if (!list.empty()) list += ",";
      list += Quoted(std::to_string(b));
    }
    cs.push_back({"in_1000_tags", "IN of 1,000 tag values (100 exist)", false,
                  "tags.building IN [" + list + "]", -1});
  }
  cs.push_back({"range_temp", "numeric range, reported (2-sided, many distinct values)", false,
                "properties.reported.temperature >= 20 AND properties.reported.temperature < 25",
                2});
  cs.push_back({"range_battery", "numeric range, reported (1-sided, 101 distinct values)", false,
                "properties.reported.batteryLevel < 20", 2});
  cs.push_back({"startswith_id", "STARTSWITH on deviceId (10,000 ids)", false,
                "STARTSWITH(deviceId, 'dev-001')", 1});
  cs.push_back(
      {"is_defined", "IS_DEFINED of an optional tag", false, "IS_DEFINED(tags.owner)", -1});
  cs.push_back({"not_is_defined", "NOT IS_DEFINED of an optional tag", false,
                "NOT IS_DEFINED(tags.owner)", -1});
  cs.push_back({"not_undefined", "NOT over a path missing in ~70 %", false,
                "NOT (tags.owner = 'team-hvac')", -1});
  cs.push_back(
      {"ne_undefined", "!= over a path missing in ~70 %", false, "tags.owner != 'team-hvac'", -1});
  cs.push_back({"arith", "arithmetic on a reported property", false,
                "properties.reported.batteryLevel * 2 > 150", -1});
  cs.push_back({"lower_eq", "LOWER(...) = const", false, "LOWER(tags.deviceType) = 'camera'", -1});
  cs.push_back({"mix5", "5-term AND/OR/NOT mix", false,
                "tags.environment = 'prod' AND (tags.region = 'westus2' OR tags.floor > 10) AND "
                "NOT (properties.reported.telemetryConfig.status = 'Success') AND "
                "properties.reported.batteryLevel < 50",
                5});
  cs.push_back({"group_by_count", "GROUP BY with COUNT (full query)", true,
                "SELECT properties.reported.telemetryConfig.status AS status, COUNT() AS n "
                "FROM devices GROUP BY properties.reported.telemetryConfig.status",
                -1});
  return cs;
}

// ---- options -------------------------------------------------------------------------------

struct Options {
  uint64_t devices = 1000000;
  uint64_t seed = 7;
  std::string fleet;
  std::string open;  // a file written by Fleet::Save (--save)
  std::string save;
  std::vector<std::string> only;
  size_t vm_reps = 7;
  size_t ref_reps = 3;
  size_t compile_reps = 201;
  double budget_ms = 400;
  bool ref_timing = true;
  std::vector<std::string> loop_cases;
  uint64_t loop_n = 0;
  std::vector<std::string> what = {"run"};
  bool list = false;
};

Options ParseArgs(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) Die(a + " needs a value");
      return argv[++i];
    };
    if (a == "--devices") {
      o.devices = std::stoull(next());
    } else if (a == "--seed") {
      o.seed = std::stoull(next());
    } else if (a == "--fleet") {
      o.fleet = next();
    } else if (a == "--open") {
      o.open = next();
    } else if (a == "--save") {
      o.save = next();
    } else if (a == "--only") {
      std::stringstream ss(next());
      std::string item;
      while (std::getline(ss, item, ',')) o.only.push_back(item);
    } else if (a == "--vm-reps") {
      o.vm_reps = std::max<size_t>(5, std::stoull(next()));
    } else if (a == "--ref-reps") {
      o.ref_reps = std::max<size_t>(1, std::stoull(next()));
    } else if (a == "--compile-reps") {
      o.compile_reps = std::max<size_t>(1, std::stoull(next()));
    } else if (a == "--budget-ms") {
      o.budget_ms = std::stod(next());
    } else if (a == "--no-ref-timing") {
      o.ref_timing = false;
    } else if (a == "--loop") {
      std::stringstream ss(next());
      std::string item;
      while (std::getline(ss, item, ',')) o.loop_cases.push_back(item);
      o.loop_n = std::stoull(next());
    } else if (a == "--what") {
      std::stringstream ss(next());
      std::string item;
      o.what.clear();
      while (std::getline(ss, item, ',')) o.what.push_back(item);
    } else if (a == "--list") {
      o.list = true;
    } else {
      Die("unknown argument " + a +
          " (see the comment at the top of bench/bench_vm.cc for the usage)");
    }
  }
  return o;
}

// ---- the fleet -----------------------------------------------------------------------------

struct Loaded {
  std::unique_ptr<Fleet> fleet;
  std::vector<Value> devices;  // the reference's documents (sorted by deviceId)
  size_t modules = 0;
};

Loaded Load(const Options& o) {
  Loaded l;
  l.fleet = std::make_unique<Fleet>();
  Timer t;
  if (!o.open.empty()) {
    auto f = Fleet::Open(o.open);
    if (!f.ok()) Die(f.error().message);
    l.fleet = std::move(*f);
    std::fprintf(stderr, "opened %s in %.1f s\n", o.open.c_str(), t.Elapsed().wall);
    TwinSet twins = twinq::index::ToTwinSet(l.fleet->snapshot());
    l.modules = twins.modules.size();
    l.devices = std::move(twins.devices);
    return l;
  }
  if (!o.fleet.empty()) {
    twinq::Expected<size_t> n = l.fleet->LoadTwinsFile(o.fleet);
    if (!n.ok()) Die(n.error().message);
    std::fprintf(stderr, "loaded %zu twins from %s in %.1f s\n", *n, o.fleet.c_str(),
                 t.Elapsed().wall);
    TwinSet twins = twinq::index::ToTwinSet(l.fleet->snapshot());
    l.modules = twins.modules.size();
    l.devices = std::move(twins.devices);
    return l;
  }
  twinq::index::FleetSpec spec;
  spec.devices = o.devices;
  spec.seed = o.seed;
  {
    // The index: generated NDJSON text through the streamed loader (no Values held).
    std::string text;
    twinq::index::GenerateFleet(spec, [&](std::string_view line) {
      text.append(line);
      text.push_back('\n');
    });
    std::fprintf(stderr, "generated %.2f GB of NDJSON in %.1f s\n",
                 static_cast<double>(text.size()) / 1e9, t.Elapsed().wall);
    Timer b;
    twinq::Expected<size_t> n = l.fleet->LoadTwinsText(text, "generated");
    if (!n.ok()) Die(n.error().message);
    std::fprintf(stderr, "indexed %zu twins (Fleet::LoadTwinsText) in %.1f s (RSS %.2f GB)\n", *n,
                 b.Elapsed().wall, static_cast<double>(RssBytes()) / 1e9);
  }
  // The reference's documents: the device lines again, parsed (module lines skipped).
  Timer r;
  size_t line_no = 0;
  twinq::index::GenerateFleet(spec, [&](std::string_view line) {
    ++line_no;
    if (line.find("\"moduleId\"") != std::string_view::npos) {
      ++l.modules;
      return;
    }
    twinq::Expected<Value> v = twinq::ParseJson(line, "generated");
    if (!v.ok())
      Die(std::string("generated line ") + std::to_string(line_no) + ": " + v.error().message);
    l.devices.push_back(std::move(*v));
  });
  std::fprintf(stderr, "parsed %zu device documents for the reference in %.1f s (RSS %.2f GB)\n",
               l.devices.size(), r.Elapsed().wall, static_cast<double>(RssBytes()) / 1e9);
  // Both engines must see the same twins in the same order.
  const Table& table = l.fleet->snapshot().devices();
  if (table.order().size() != l.devices.size())
    Die("the index holds " + std::to_string(table.order().size()) + " devices, the reference " +
        std::to_string(l.devices.size()));
  for (size_t i = 0; i < l.devices.size(); ++i) {
    const Value* id = l.devices[i].Find("deviceId");
    if (id == nullptr || !id->is_string() || id->as_string() != table.device_id(table.order()[i]))
      Die("device " + std::to_string(i) + ": the index and the reference disagree on its id");
  }
  return l;
}

// ---- checks --------------------------------------------------------------------------------

void CheckSameIds(const std::string& name, const std::string& engine,
                  const std::vector<std::string>& ref, const std::vector<std::string>& vm) {
  if (ref == vm) return;
  std::string why = name + ": " + engine + " gives " + std::to_string(vm.size()) +
                    " target ids, the reference " + std::to_string(ref.size());
  size_t i = 0;
  while (i < ref.size() && i < vm.size() && ref[i] == vm[i]) ++i;
  why += std::string("; first difference at position ") + std::to_string(i) + ": reference " +
         (i < ref.size() ? ref[i] : "<end>") + ", " + engine + " " +
         (i < vm.size() ? vm[i] : "<end>");
  Die("WRONG ANSWER (no timing is reported): " + why);
}

void CheckSameRows(const std::string& name, const std::vector<Value>& ref,
                   const std::vector<Value>& vm) {
  if (ref == vm) return;
  std::string why = name + ": vm gives " + std::to_string(vm.size()) + " rows, the reference " +
                    std::to_string(ref.size());
  size_t i = 0;
  while (i < ref.size() && i < vm.size() && ref[i] == vm[i]) ++i;
  why += std::string("; first difference at row ") + std::to_string(i) + ": reference " +
         (i < ref.size() ? twinq::ToJson(ref[i]) : "<end>") + ", vm " +
         (i < vm.size() ? twinq::ToJson(vm[i]) : "<end>");
  Die("WRONG ANSWER (no timing is reported): " + why);
}

// ---- one class -----------------------------------------------------------------------------

struct CaseResult {
  const Case* c = nullptr;
  uint64_t rows = 0;
  Measured parse_bind, compile_filter, compile_total;
  Measured run, select, ids, ref;
  bool ref_timed = false;
  std::string program_size;
};

// --loop: N calls of each part named by --what, each followed by a callgrind dump named
// "CLASS/PART" (a no-op outside valgrind).
void LoopParts(const Options& o, const std::string& name,
               const std::vector<std::pair<std::string, std::function<void()>>>& parts) {
  for (const std::string& what : o.what) {
    auto it =
        std::find_if(parts.begin(), parts.end(), [&](const auto& p) { return p.first == what; });
    if (it == parts.end())
      Die(name + ": --what " + what + " is not run, select, ids, compile or ref" +
          " (a query has run, compile and ref)");
    Timer t;
    twinq_bench::ProfiledLoop(it->second, o.loop_n);
    Timing e = t.Elapsed();
#if TWINQ_BENCH_HAVE_CALLGRIND
    std::string label = name + "/" + what;
    CALLGRIND_DUMP_STATS_AT(label.c_str());
#endif
    std::fprintf(stderr, "  %llu x %s: %.3f ms CPU per call\n",
                 static_cast<unsigned long long>(o.loop_n), what.c_str(),
                 e.cpu * 1e3 / static_cast<double>(o.loop_n));
  }
}

twinq::check::BoundCondition BindCondition(const std::string& text) {
  Source src("<condition>", text);
  auto r = twinq::tools::CompileCondition(src);
  if (!r.ok())
    Die(std::string("condition does not compile: ").append(twinq::Render(r.diagnostics(), src)));
  return std::move(r).value();
}
twinq::check::BoundQuery BindQuery(const std::string& text) {
  Source src("<query>", text);
  auto r = twinq::tools::CompileQuery(src);
  if (!r.ok())
    Die(std::string("query does not compile: ").append(twinq::Render(r.diagnostics(), src)));
  return std::move(r).value();
}

CaseResult RunCase(const Case& c, const Options& o, const Snapshot& snap,
                   const twinq::ref::Documents& docs) {
  CaseResult res;
  res.c = &c;
  const Table& table = snap.devices();
  double budget = o.budget_ms / 1000.0;
  std::fprintf(stderr, "%s: %s\n", c.name.c_str(),
               c.text.size() > 160 ? (c.text.substr(0, 157) + "...").c_str() : c.text.c_str());

  if (!c.query) {
    twinq::check::BoundCondition cond = BindCondition(c.text);
    // Checks first.
    std::vector<std::string> ref_ids = twinq::ref::TargetIds(cond, docs);
    std::vector<std::string> vm_ids = twinq::vm::TargetIds(cond, snap);
    CheckSameIds(c.name, "vm", ref_ids, vm_ids);
    twinq::vm::CompileOptions noopt;
    noopt.optimize = false;
    CheckSameIds(c.name, "vm-noopt", ref_ids, twinq::vm::TargetIds(cond, snap, noopt));
    twinq::vm::Program prog = twinq::vm::CompileFilter(cond.expr.get(), table);
    std::string bad = prog.Verify();
    if (!bad.empty()) Die(c.name + ": Program::Verify: " + bad);
    uint64_t card = twinq::vm::Run(prog, table).Cardinality();
    if (card != ref_ids.size())
      Die("WRONG ANSWER (no timing is reported): " + c.name + ": vm::Run gives " +
          std::to_string(card) + " rows, the reference " + std::to_string(ref_ids.size()));
    res.rows = ref_ids.size();
    res.program_size = std::to_string(prog.code.size()) + " instr, " +
                       std::to_string(prog.residuals.size()) + " residual";
    std::fprintf(stderr, "  checked: %llu rows (ref = vm = vm-noopt); program %s\n",
                 static_cast<unsigned long long>(res.rows), res.program_size.c_str());

    auto parse_bind = [&] {
      Source src("<condition>", c.text);
      auto r = twinq::tools::CompileCondition(src);
      if (!r.ok()) std::abort();
    };
    auto compile_filter = [&] {
      twinq::vm::Program p = twinq::vm::CompileFilter(cond.expr.get(), table);
      if (p.code.empty()) std::abort();
    };
    auto compile_total = [&] {
      Source src("<condition>", c.text);
      auto r = twinq::tools::CompileCondition(src);
      twinq::vm::Program p = twinq::vm::CompileFilter(r->expr.get(), table);
      if (p.code.empty()) std::abort();
    };
    auto run = [&] {
      twinq::index::Bitmap b = twinq::vm::Run(prog, table);
      if (b.Cardinality() != res.rows) std::abort();
    };
    auto select = [&] {
      twinq::index::Bitmap b = twinq::vm::SelectRows(cond, snap);
      if (b.Cardinality() != res.rows) std::abort();
    };
    auto ids = [&] {
      std::vector<std::string> v = twinq::vm::TargetIds(cond, snap);
      if (v.size() != res.rows) std::abort();
    };
    auto ref = [&] {
      std::vector<size_t> v = twinq::ref::SelectRows(cond, docs);
      if (v.size() != res.rows) std::abort();
    };

    if (o.loop_n > 0) {
      LoopParts(o, c.name,
                {{"run", run},
                 {"select", select},
                 {"ids", ids},
                 {"compile", compile_total},
                 {"ref", ref}});
      return res;
    }
    res.parse_bind = Measure(parse_bind, 21, o.compile_reps, budget);
    res.compile_filter = Measure(compile_filter, 21, o.compile_reps, budget);
    res.compile_total = Measure(compile_total, 21, o.compile_reps, budget);
    res.run = Measure(run, o.vm_reps, 2000, budget);
    res.select = Measure(select, o.vm_reps, 2000, budget);
    res.ids = Measure(ids, o.vm_reps, 2000, budget);
    if (o.ref_timing) {
      res.ref = Measure(ref, o.ref_reps, o.ref_reps, 0);
      res.ref_timed = true;
    }
  } else {
    twinq::check::BoundQuery q = BindQuery(c.text);
    std::vector<Value> ref_rows = twinq::ref::AllRows(q, docs);
    std::vector<Value> vm_rows = twinq::vm::AllRows(q, snap);
    CheckSameRows(c.name, ref_rows, vm_rows);
    twinq::vm::CompileOptions noopt;
    noopt.optimize = false;
    CheckSameRows(c.name + " (vm-noopt)", ref_rows, twinq::vm::AllRows(q, snap, noopt));
    res.rows = ref_rows.size();
    twinq::vm::Program prog = twinq::vm::CompileFilter(q.where.get(), table);
    res.program_size = std::to_string(prog.code.size()) + " instr, " +
                       std::to_string(prog.residuals.size()) + " residual";
    std::string shown;
    for (const Value& v : ref_rows) {
      shown += ' ';
      shown += twinq::ToJson(v);
    }
    std::fprintf(stderr, "  checked: %llu rows (ref = vm = vm-noopt):%s\n",
                 static_cast<unsigned long long>(res.rows), shown.c_str());

    auto parse_bind = [&] {
      Source src("<query>", c.text);
      auto r = twinq::tools::CompileQuery(src);
      if (!r.ok()) std::abort();
    };
    auto compile_filter = [&] {
      twinq::vm::Program p = twinq::vm::CompileFilter(q.where.get(), table);
      if (p.code.empty()) std::abort();
    };
    auto compile_total = [&] {
      Source src("<query>", c.text);
      auto r = twinq::tools::CompileQuery(src);
      twinq::vm::Program p = twinq::vm::CompileFilter(r->where.get(), table);
      if (p.code.empty()) std::abort();
    };
    auto run = [&] {
      twinq::index::Bitmap b = twinq::vm::Run(prog, table);
      if (b.Empty()) std::abort();
    };
    auto all = [&] {
      std::vector<Value> v = twinq::vm::AllRows(q, snap);
      if (v.size() != res.rows) std::abort();
    };
    auto ref = [&] {
      std::vector<Value> v = twinq::ref::AllRows(q, docs);
      if (v.size() != res.rows) std::abort();
    };
    if (o.loop_n > 0) {
      LoopParts(o, c.name, {{"run", all}, {"compile", compile_total}, {"ref", ref}});
      return res;
    }
    res.parse_bind = Measure(parse_bind, 21, o.compile_reps, budget);
    res.compile_filter = Measure(compile_filter, 21, o.compile_reps, budget);
    res.compile_total = Measure(compile_total, 21, o.compile_reps, budget);
    res.run = Measure(run, o.vm_reps, 2000, budget);  // the WHERE alone (none: every row)
    res.select = Measure(all, o.vm_reps, 2000, budget);
    res.ids = res.select;
    if (o.ref_timing) {
      res.ref = Measure(ref, o.ref_reps, o.ref_reps, 0);
      res.ref_timed = true;
    }
  }
  std::fprintf(stderr,
               "  compile %.1f us (parse+bind %.1f, CompileFilter %.1f) | run %.4f ms | select "
               "%.4f ms | ids %.4f ms | ref %.1f ms (CPU medians)\n",
               res.compile_total.cpu * 1e6, res.parse_bind.cpu * 1e6, res.compile_filter.cpu * 1e6,
               res.run.cpu * 1e3, res.select.cpu * 1e3, res.ids.cpu * 1e3, res.ref.cpu * 1e3);
  return res;
}

std::string Ms(double s) {
  double ms = s * 1e3;
  if (ms < 0.1) return Fmt("%.4f", ms);
  if (ms < 10) return Fmt("%.3f", ms);
  if (ms < 100) return Fmt("%.1f", ms);
  return Fmt("%.0f", ms);
}
std::string Us(double s) { return Fmt(s * 1e6 < 100 ? "%.1f" : "%.0f", s * 1e6); }

std::string LoadAvg() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

}  // namespace

int main(int argc, char** argv) {
  Options o = ParseArgs(argc, argv);
  twinq::index::FleetSpec spec;
  spec.devices = o.devices;
  spec.seed = o.seed;
  std::vector<Case> cases = Cases(spec);
  if (o.list) {
    for (const Case& c : cases) std::printf("%-16s %s\n", c.name.c_str(), c.what.c_str());
    return 0;
  }
  if (!o.loop_cases.empty()) o.only = o.loop_cases;
  for (const std::string& n : o.only) {
    if (std::none_of(cases.begin(), cases.end(), [&](const Case& c) { return c.name == n; }))
      Die("no class named " + n + " (--list shows them)");
  }
  if (!o.fleet.empty() && !o.only.empty() && o.only.size() < cases.size())
    std::fprintf(stderr, "note: the deviceId lists were built for --devices %llu\n",
                 static_cast<unsigned long long>(o.devices));

  std::string load_before = LoadAvg();
  Loaded l = Load(o);
  Snapshot snap = l.fleet->snapshot();
  twinq::ref::Documents docs{l.devices, {}, {}};
  std::fprintf(stderr, "fleet: %llu device twins, %zu module twins; RSS %.2f GB; load %s\n",
               static_cast<unsigned long long>(snap.devices().live_count()), l.modules,
               static_cast<double>(RssBytes()) / 1e9, LoadAvg().c_str());
  if (l.devices.size() != snap.devices().live_count()) Die("reference and index disagree on size");
  if (!o.save.empty()) {
    Timer t;
    auto n = l.fleet->Save(o.save);
    if (!n.ok()) Die(n.error().message);
    std::fprintf(stderr, "saved the fleet to %s (%zu bytes) in %.1f s\n", o.save.c_str(), *n,
                 t.Elapsed().wall);
  }

  std::string load_start = LoadAvg();
  std::vector<CaseResult> results;
  for (const Case& c : cases) {
    if (!o.only.empty() && std::find(o.only.begin(), o.only.end(), c.name) == o.only.end())
      continue;
    results.push_back(RunCase(c, o, snap, docs));
  }
  if (o.loop_n > 0) return 0;
  std::string load_end = LoadAvg();

  double n = static_cast<double>(snap.devices().live_count());
  std::printf(
      "\nFleet: %llu devices (+%zu modules), seed %llu; load average %s at the start of "
      "the timings, %s at the end (before loading: %s)\n\n",
      static_cast<unsigned long long>(snap.devices().live_count()), l.modules,
      static_cast<unsigned long long>(o.seed), load_start.c_str(), load_end.c_str(),
      load_before.c_str());
  std::printf(
      "| class | rows | %% | compile µs (parse+bind / CompileFilter) | VM run ms | VM "
      "select ms | VM ids ms | ref ms | speedup ref/select | speedup ref/run |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const CaseResult& r : results) {
    std::string speed = r.ref_timed ? Fmt("%.0f×", r.ref.cpu / r.select.cpu) : "-";
    std::string speed_run = r.ref_timed && !r.c->query ? Fmt("%.0f×", r.ref.cpu / r.run.cpu) : "-";
    std::printf("| `%s` | %llu | %.2f | %s (%s / %s) | %s | %s | %s | %s | %s | %s |\n",
                r.c->name.c_str(), static_cast<unsigned long long>(r.rows),
                r.c->query ? 0.0 : 100.0 * static_cast<double>(r.rows) / n,
                Us(r.compile_total.cpu).c_str(), Us(r.parse_bind.cpu).c_str(),
                Us(r.compile_filter.cpu).c_str(), r.c->query ? "-" : Ms(r.run.cpu).c_str(),
                Ms(r.select.cpu).c_str(), r.c->query ? "-" : Ms(r.ids.cpu).c_str(),
                r.ref_timed ? Ms(r.ref.cpu).c_str() : "-", speed.c_str(), speed_run.c_str());
  }
  std::printf("\nWall-time medians (ms; compile in µs) and repetitions:\n\n");
  std::printf(
      "| class | compile µs | VM run | VM select | VM ids | ref | reps run/select/ids/ref | "
      "run CPU min–max ms | program |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---|---|---|\n");
  for (const CaseResult& r : results) {
    std::printf("| `%s` | %s | %s | %s | %s | %s | %zu/%zu/%zu/%zu | %s–%s | %s |\n",
                r.c->name.c_str(), Us(r.compile_total.wall).c_str(),
                r.c->query ? "-" : Ms(r.run.wall).c_str(), Ms(r.select.wall).c_str(),
                r.c->query ? "-" : Ms(r.ids.wall).c_str(),
                r.ref_timed ? Ms(r.ref.wall).c_str() : "-", r.run.n, r.select.n, r.ids.n, r.ref.n,
                Ms(r.run.cpu_min).c_str(), Ms(r.run.cpu_max).c_str(), r.program_size.c_str());
  }
  std::printf(
      "\nTargets (CPU medians):\n\n| class | target | measured | verdict |\n|---|---|---:|---|\n");
  for (const CaseResult& r : results) {
    auto verdict = [](bool ok) { return ok ? "met" : "**missed**"; };
    std::printf("| `%s` | compile ≤ 50 µs | %s µs | %s |\n", r.c->name.c_str(),
                Us(r.compile_total.cpu).c_str(), verdict(r.compile_total.cpu <= 50e-6));
    if (r.c->target_ms > 0 && !r.c->query)
      std::printf("| `%s` | VM run ≤ %g ms | %s ms | %s |\n", r.c->name.c_str(), r.c->target_ms,
                  Ms(r.run.cpu).c_str(), verdict(r.run.cpu * 1e3 <= r.c->target_ms));
    if (r.ref_timed)
      std::printf("| `%s` | ≥ 100× the reference (ref/select) | %.0f× | %s |\n", r.c->name.c_str(),
                  r.ref.cpu / r.select.cpu, verdict(r.ref.cpu / r.select.cpu >= 100));
  }
  std::printf("\nCases:\n\n");
  for (const CaseResult& r : results) {
    std::string t = r.c->text;
    if (t.size() > 200) t = t.substr(0, 120) + " … " + t.substr(t.size() - 40);
    std::printf("- `%s` (%s): `%s`\n", r.c->name.c_str(), r.c->what.c_str(), t.c_str());
  }
  return 0;
}
