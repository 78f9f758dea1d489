// Parse-time benchmarks: Source construction + ParseQuery/ParseCondition on typical inputs.
//
//   bench_parse [--benchmark_...]   steady state (Google Benchmark), items/s = parses/s
//   bench_parse --cold              times the first parses in a fresh process and exits
//   bench_parse --loop NAME N       parses case NAME once, checks it, then N more times, silently:
//                                   for instruction counts, valgrind --tool=callgrind with
//                                   N = 1 and N = 1001 gives instructions per parse / 1000
//
// Before anything is timed, every case is parsed once and its printed AST (or, for the error
// case, its first diagnostic) is compared with the expected answer; a mismatch exits 1 without
// timing anything (simdjson's "check before timing" habit).
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "engine/ast/ast.h"
#include "engine/common/diagnostic.h"
#include "engine/common/result.h"
#include "engine/common/source.h"
#include "engine/parse/parser.h"

namespace {

using twinq::DiagCode;
using twinq::Result;
using twinq::Source;
namespace ast = twinq::ast;

enum class Entry { kQuery, kCondition };

struct Case {
  std::string name;
  Entry entry;
  std::string text;
  // Success cases: the expected ast::Print output. Error cases: a substring of the first
  // diagnostic's message.
  std::string expected;
  bool error = false;
  DiagCode code = DiagCode::kSyntax;  // error cases: the first diagnostic's code
};

// 'd000', 'd001', ... as written in the query and as printed.
std::string IdList(int n) {
  std::string out;
  for (int i = 0; i < n; ++i) {
    char id[16];
    std::snprintf(id, sizeof(id), "'d%03d'", i);
    if (i > 0) out += ", ";
    out += id;
  }
  return out;
}

std::vector<Case> Cases() {
  std::vector<Case> cases;
  cases.push_back({"building_floor", Entry::kCondition, "tags.building = '43' AND tags.floor = 3",
                   "condition(and(eq(tags.building, '43'), eq(tags.floor, 3)))"});
  for (int n : {10, 100}) {
    cases.push_back({"in_list_" + std::to_string(n), Entry::kCondition,
                     "deviceId IN [" + IdList(n) + "]",
                     "condition(in(deviceId, [" + IdList(n) + "]))"});
  }
  cases.push_back({"startswith_battery", Entry::kCondition,
                   "STARTSWITH(deviceId, 'b43-') AND properties.reported.batteryLevel < 20",
                   "condition(and(call(STARTSWITH, deviceId, 'b43-'), "
                   "lt(properties.reported.batteryLevel, 20)))"});
  cases.push_back(
      {"group_by_query", Entry::kQuery,
       "SELECT properties.reported.telemetryConfig.status AS status, COUNT() AS n FROM devices "
       "GROUP BY properties.reported.telemetryConfig.status",
       "query(select properties.reported.telemetryConfig.status as status, call(COUNT) as n; "
       "from devices; group by properties.reported.telemetryConfig.status)"});
  cases.push_back({"syntax_error_rendered", Entry::kQuery,
                   "SELECT * FROM devices WHERE tags.building = '43' ANDD tags.floor = 3",
                   "did you mean 'AND'?", /*error=*/true, DiagCode::kSyntax});
  return cases;
}

Result<ast::Ast> Parse(const Case& c, const Source& source) {
  return c.entry == Entry::kQuery ? twinq::ParseQuery(source) : twinq::ParseCondition(source);
}

// Parses once and compares with the expected answer. Returns an empty string when right.
std::string Check(const Case& c) {
  Source source("<bench>", c.text);
  Result<ast::Ast> r = Parse(c, source);
  if (c.error) {
    if (r.ok()) return "expected an error, got " + ast::Print(*r);
    const twinq::Diagnostic& d = r.diagnostics().front();
    if (d.code != c.code || d.message.find(c.expected) == std::string::npos) {
      return "unexpected diagnostic: " + twinq::RenderShort(d, source);
    }
    if (twinq::Render(r.diagnostics(), source).empty()) return "empty rendering";
    return "";
  }
  if (!r.ok()) return "parse failed: " + twinq::Render(r.diagnostics(), source);
  std::string printed = ast::Print(*r);
  if (printed != c.expected) return "got " + printed + "\n  want " + c.expected;
  return "";
}

// One iteration: build the Source (copy + line table), parse, and for errors render the
// diagnostics as the twinq command would.
void BM_Parse(benchmark::State& state, const Case& c) {
  for (auto _ : state) {
    Source source("<bench>", c.text);
    Result<ast::Ast> r = Parse(c, source);
    if (c.error) {
      std::string rendered = twinq::Render(r.diagnostics(), source);
      benchmark::DoNotOptimize(rendered.data());
    } else {
      benchmark::DoNotOptimize(r->node_count());
    }
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(c.text.size()));
}

// The first parses of the process: the ANTLR DFA cache starts empty. Prints microseconds, once
// the answers have been checked.
int RunCold(const std::vector<Case>& cases) {
  using Clock = std::chrono::steady_clock;
  auto time_one = [](const Case& c) {
    Clock::time_point start = Clock::now();
    Source source("<bench>", c.text);
    Result<ast::Ast> r = Parse(c, source);
    benchmark::DoNotOptimize(r.ok());
    return std::chrono::duration<double, std::micro>(Clock::now() - start).count();
  };
  double first = time_one(cases.front());
  double second = time_one(cases.front());
  std::vector<double> others;
  for (size_t i = 1; i < cases.size(); ++i) others.push_back(time_one(cases[i]));
  for (const Case& c : cases) {
    std::string problem = Check(c);
    if (!problem.empty()) {
      std::fprintf(stderr, "bench_parse: %s: wrong answer: %s\n", c.name.c_str(), problem.c_str());
      return 1;
    }
  }
  std::printf("cold: first parse in the process (%s): %.1f us\n", cases.front().name.c_str(),
              first);
  std::printf("cold: second parse, same text: %.1f us\n", second);
  for (size_t i = 1; i < cases.size(); ++i) {
    std::printf("cold: first parse of %s (after the ones above): %.1f us\n", cases[i].name.c_str(),
                others[i - 1]);
  }
  return 0;
}

// Parses `name` once (checked), then `n` more times. For callgrind instruction counts.
int RunLoop(const std::vector<Case>& cases, const std::string& name, long n) {
  for (const Case& c : cases) {
    if (c.name != name) continue;
    std::string problem = Check(c);
    if (!problem.empty()) {
      std::fprintf(stderr, "bench_parse: %s: wrong answer: %s\n", c.name.c_str(), problem.c_str());
      return 1;
    }
    for (long i = 0; i < n; ++i) {
      Source source("<bench>", c.text);
      Result<ast::Ast> r = Parse(c, source);
      if (c.error) {
        std::string rendered = twinq::Render(r.diagnostics(), source);
        benchmark::DoNotOptimize(rendered.data());
      } else {
        benchmark::DoNotOptimize(r->node_count());
      }
    }
    return 0;
  }
  std::fprintf(stderr, "bench_parse: no case named '%s'\n", name.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  static const std::vector<Case> cases = Cases();
  bool cold = false;
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (i > 0 && std::strcmp(argv[i], "--cold") == 0) {
      cold = true;
    } else if (i > 0 && std::strcmp(argv[i], "--loop") == 0) {
      if (i + 2 >= argc) {
        std::fprintf(stderr, "usage: bench_parse --loop NAME N\n");
        return 1;
      }
      return RunLoop(cases, argv[i + 1], std::strtol(argv[i + 2], nullptr, 10));
    } else {
      args.push_back(argv[i]);
    }
  }
  // --cold must see the parser untouched, so it runs before the correctness check.
  if (cold) return RunCold(cases);

  bool wrong = false;
  for (const Case& c : cases) {
    std::string problem = Check(c);
    if (!problem.empty()) {
      std::fprintf(stderr, "bench_parse: %s: wrong answer, not timing it: %s\n", c.name.c_str(),
                   problem.c_str());
      wrong = true;
    }
  }
  if (wrong) return 1;

  for (const Case& c : cases) {
    benchmark::RegisterBenchmark(("BM_Parse/" + c.name).c_str(), BM_Parse, c);
  }
  int new_argc = static_cast<int>(args.size());
  benchmark::Initialize(&new_argc, args.data());
  if (benchmark::ReportUnrecognizedArguments(new_argc, args.data())) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
