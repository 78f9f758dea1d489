// twinq query / twinq targets over a twins file or an index file, on the VM (default), the
// reference engine, or both (cross-checked).
#include <fmt/format.h>

#include <chrono>
#include <iostream>

#include "engine/common/json_reader.h"
#include "engine/ref/query.h"
#include "engine/vm/query.h"
#include "index/fleet.h"
#include "tools/commands.h"
#include "tools/frontend.h"

namespace twinq::tools {

namespace {

enum class Engine { kVm, kRef, kBoth };

struct CommonOptions {
  std::string twins;
  std::string index;
  std::string text;
  bool strict = false;
  bool timing = false;
  Engine engine = Engine::kVm;
  size_t page_size = 0;
  std::string continuation;
};

using Clock = std::chrono::steady_clock;
double Micros(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::micro>(b - a).count();
}

// Parses the shared options; returns an exit code >= 0 to stop, -1 to go on.
int ParseOptions(const char* cmd, const char* usage, bool paging, const Args& args,
                 CommonOptions* o) {
  bool have_text = false, options_done = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](std::string* out) {
      if (i + 1 >= args.size()) {
        std::cerr << "twinq " << cmd << ": " << a << " needs a value\n";
        return false;
      }
      *out = args[++i];
      return true;
    };
    bool option = !options_done && !a.empty() && a[0] == '-' && a != "-" && a != "*";
    if (!option) {
      if (have_text) {
        std::cerr << "twinq " << cmd << ": unexpected argument '" << a << "'\n" << usage;
        return 1;
      }
      o->text = a;
      have_text = true;
    } else if (a == "--") {
      options_done = true;
    } else if (a == "-h" || a == "--help") {
      std::cout << usage;
      return 0;
    } else if (a == "--twins") {
      if (!value(&o->twins)) return 1;
    } else if (a == "--index") {
      if (!value(&o->index)) return 1;
    } else if (a == "--strict") {
      o->strict = true;
    } else if (a == "--timing") {
      o->timing = true;
    } else if (a == "--engine") {
      std::string e;
      if (!value(&e)) return 1;
      if (e == "vm") {
        o->engine = Engine::kVm;
      } else if (e == "ref") {
        o->engine = Engine::kRef;
      } else if (e == "both") {
        o->engine = Engine::kBoth;
      } else {
        std::cerr << "twinq " << cmd << ": --engine is vm, ref or both, not '" << e << "'\n";
        return 1;
      }
    } else if (paging && a == "--page-size") {
      std::string v;
      if (!value(&v)) return 1;
      char* end = nullptr;
      unsigned long n = std::strtoul(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || n == 0 || v[0] == '-') {
        std::cerr << "twinq " << cmd << ": --page-size needs a positive integer, not '" << v
                  << "'\n";
        return 1;
      }
      o->page_size = n;
    } else if (paging && a == "--continuation") {
      if (!value(&o->continuation)) return 1;
    } else {
      std::cerr << "twinq " << cmd << ": unknown option '" << a << "'\n" << usage;
      return 1;
    }
  }
  if (o->twins.empty() == o->index.empty() || !have_text) {
    std::cerr << usage;
    return 1;
  }
  return -1;
}

// The fleet of --twins or --index.
Expected<std::unique_ptr<index::Fleet>> LoadFleet(const CommonOptions& o) {
  if (!o.index.empty()) return OpenIndexFile(o.index);
  auto fleet = std::make_unique<index::Fleet>();
  Expected<size_t> n = fleet->LoadTwinsFile(o.twins);
  if (!n.ok()) return n.error();
  return fleet;
}

void Report(const CommonOptions& o, const char* what, double micros) {
  if (o.timing) std::cerr << fmt::format("timing: {:<10} {:>12.1f} us\n", what, micros);
}

const char* kEngineHelp =
    "  --engine vm|ref|both  the VM over the columnar index (default), the reference evaluator,\n"
    "                        or both, cross-checked (a difference is an error, exit 3)\n"
    "  --timing              print load, parse+bind, evaluate times to stderr\n"
    "  --twins FILE | --index FILE  twins (NDJSON, JSON array, objects) or a twinq index file\n"
    "  --                    ends the options (for a TEXT starting with '-')\n";

}  // namespace

int CmdQuery(const Args& args) {
  std::string usage =
      std::string(
          "usage: twinq query (--twins FILE | --index FILE) [--page-size N] [--continuation T]\n"
          "                   [--engine vm|ref|both] [--strict] [--timing] 'QUERY'\n"
          "  Runs a query and prints the rows as one JSON array. With --page-size, prints one\n"
          "  page and, when more rows follow, the continuation token on stderr as\n"
          "  'continuation: TOKEN'. Exit 0 on success, 1 for unreadable or malformed input,\n"
          "  2 for query errors.\n") +
      kEngineHelp;
  CommonOptions o;
  if (int rc = ParseOptions("query", usage.c_str(), true, args, &o); rc >= 0) return rc;
  check::BindOptions bind;
  bind.strict = o.strict;
  auto t0 = Clock::now();
  Source source("<query>", o.text);
  auto bound = CompileQuery(source, bind);
  auto t1 = Clock::now();
  if (!bound.ok()) {
    std::cerr << Render(bound.diagnostics(), source);
    return 2;
  }
  auto fleet = LoadFleet(o);
  auto t2 = Clock::now();
  if (!fleet.ok()) {
    std::cerr << "twinq query: " << fleet.error().message << "\n";
    return 1;
  }
  Report(o, "load", Micros(t1, t2));
  Report(o, "parse+bind", Micros(t0, t1));
  index::Snapshot snap = (*fleet)->snapshot();
  PageRequest page{o.page_size, o.continuation};
  Expected<QueryResult> result = Error{""};
  if (o.engine != Engine::kRef) {
    auto a = Clock::now();
    result = vm::RunQuery(*bound, snap, page);
    Report(o, "vm", Micros(a, Clock::now()));
  }
  if (o.engine != Engine::kVm) {
    TwinSet twins = index::ToTwinSet(snap);
    auto a = Clock::now();
    auto r = ref::RunQuery(*bound, {twins.devices, twins.modules, {}}, page);
    Report(o, "ref", Micros(a, Clock::now()));
    if (o.engine == Engine::kBoth && result.ok() && r.ok()) {
      std::string x, y;
      for (const Value& v : result->rows) x += ToJson(v) + "\n";
      for (const Value& v : r->rows) y += ToJson(v) + "\n";
      if (x != y || result->continuation != r->continuation) {
        std::cerr << "twinq query: ENGINE MISMATCH between vm and ref\n--- vm\n"
                  << x << "--- ref\n"
                  << y;
        return 3;
      }
    }
    if (o.engine == Engine::kRef || !r.ok()) result = std::move(r);
  }
  if (!result.ok()) {
    std::cerr << "twinq query: " << result.error().message << "\n";
    return 1;
  }
  std::string out = "[";
  for (size_t i = 0; i < result->rows.size(); ++i) {
    out += i == 0 ? "\n" : ",\n";
    AppendJson(result->rows[i], &out);
  }
  out += result->rows.empty() ? "]\n" : "\n]\n";
  std::cout << out;
  if (!result->continuation.empty()) std::cerr << "continuation: " << result->continuation << "\n";
  return 0;
}

int CmdTargets(const Args& args) {
  std::string usage =
      std::string(
          "usage: twinq targets (--twins FILE | --index FILE) [--engine vm|ref|both] [--strict]\n"
          "                     [--timing] 'CONDITION'\n"
          "  Prints the ids a job condition targets, one per line, ordered by deviceId then\n"
          "  moduleId: deviceId for device twins, deviceId/moduleId for module targets\n"
          "  (FROM devices.modules WHERE ...). '*' targets every device.\n"
          "  Exit 0 on success, 1 for unreadable or malformed input, 2 for condition errors.\n") +
      kEngineHelp;
  CommonOptions o;
  if (int rc = ParseOptions("targets", usage.c_str(), false, args, &o); rc >= 0) return rc;
  check::BindOptions bind;
  bind.strict = o.strict;
  auto t0 = Clock::now();
  Source source("<condition>", o.text);
  auto bound = CompileCondition(source, bind);
  auto t1 = Clock::now();
  if (!bound.ok()) {
    std::cerr << Render(bound.diagnostics(), source);
    return 2;
  }
  auto fleet = LoadFleet(o);
  auto t2 = Clock::now();
  if (!fleet.ok()) {
    std::cerr << "twinq targets: " << fleet.error().message << "\n";
    return 1;
  }
  Report(o, "load", Micros(t1, t2));
  Report(o, "parse+bind", Micros(t0, t1));
  index::Snapshot snap = (*fleet)->snapshot();
  std::vector<std::string> ids;
  if (o.engine != Engine::kRef) {
    auto a = Clock::now();
    ids = vm::TargetIds(*bound, snap);
    Report(o, "vm", Micros(a, Clock::now()));
  }
  if (o.engine != Engine::kVm) {
    TwinSet twins = index::ToTwinSet(snap);
    auto a = Clock::now();
    std::vector<std::string> r = ref::TargetIds(*bound, {twins.devices, twins.modules, {}});
    Report(o, "ref", Micros(a, Clock::now()));
    if (o.engine == Engine::kBoth && r != ids) {
      std::cerr << "twinq targets: ENGINE MISMATCH: vm selects " << ids.size() << ", ref selects "
                << r.size() << "\n";
      return 3;
    }
    ids = std::move(r);
  }
  std::string out;
  for (const std::string& id : ids) {
    out += id;
    out += '\n';
  }
  std::cout << out;
  return 0;
}

}  // namespace twinq::tools
