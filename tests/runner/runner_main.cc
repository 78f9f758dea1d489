// Runs tests/queries/*.test files under every engine configuration, plus metamorphic checks on
// every targets/count record. Usage:
//   twinq_test_runner [--engines ref,ref-nofold] [--data DIR] FILE...
// Prints each failure as FILE:LINE: [engine] ..., then "N passed, M failed".
#include <algorithm>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include "engine/ref/query.h"
#include "tests/runner/engines.h"
#include "tests/runner/test_file.h"
#include "tools/frontend.h"

namespace twinq::testing {
namespace {

std::string Join(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& l : lines) out += "    " + l + "\n";
  return out.empty() ? "    (nothing)\n" : out;
}

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::stringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return true;
}

// Expected diagnostics: a line holding only a code ("E100") matches any diagnostic with that
// code; a longer line must equal the short rendering ("E100 1:5: message").
bool DiagnosticsMatch(const std::vector<std::string>& expected,
                      const std::vector<std::string>& actual) {
  if (expected.size() != actual.size()) return false;
  for (size_t i = 0; i < expected.size(); ++i) {
    const std::string& e = expected[i];
    bool code_only = e.find(' ') == std::string::npos;
    if (code_only ? actual[i].substr(0, actual[i].find(' ')) != e : actual[i] != e) return false;
  }
  return true;
}

void ReverseLogic(check::BoundExpr* e) {
  if (e->kind == check::BoundKind::kAnd || e->kind == check::BoundKind::kOr) {
    std::reverse(e->children.begin(), e->children.end());
  }
  for (auto& c : e->children) ReverseLogic(c.get());
}

class Runner {
 public:
  Runner(std::vector<std::string> engines, std::string data_dir)
      : engine_names_(std::move(engines)), data_dir_(std::move(data_dir)) {}

  int passed() const { return passed_; }
  int failed() const { return failed_; }

  void RunFile(const std::string& path) {
    std::string text;
    if (!ReadFile(path, &text)) {
      Fail(path + ": cannot read file");
      return;
    }
    TestFile file;
    std::string error;
    if (!ParseTestFile(path, text, &file, &error)) {
      Fail(error);
      return;
    }
    auto engines = MakeEngines(engine_names_);
    TwinSet twins;
    bool strict = false;
    for (const Record& r : file.records) {
      std::string where = path + ":" + std::to_string(r.line) + ": ";
      switch (r.kind) {
        case Record::Kind::kFleet: {
          Expected<TwinSet> loaded = LoadFleet(r);
          if (!loaded.ok()) {
            Fail(where + "cannot load fleet: " + loaded.error().message);
            twins = TwinSet();
          } else {
            twins = std::move(loaded.value());
          }
          for (auto& e : engines) e->Load(twins);
          continue;
        }
        case Record::Kind::kMode:
          strict = r.arg == "strict";
          continue;
        default:
          break;
      }
      bool ok = true;
      for (auto& e : engines) ok = RunRecord(where, r, *e, strict) && ok;
      if (ok && (r.kind == Record::Kind::kTargets || r.kind == Record::Kind::kCount)) {
        ok = Metamorphic(where, r.arg, twins, strict);
      }
      ok ? ++passed_ : ++failed_;
    }
  }

 private:
  Expected<TwinSet> LoadFleet(const Record& r) {
    if (!r.body.empty()) {
      std::string text;
      for (const std::string& l : r.body) text += l + "\n";
      return ReadTwins(text, "inline fleet");
    }
    return ReadTwinsFile(data_dir_ + "/" + r.arg);
  }

  bool RunRecord(const std::string& where, const Record& r, Engine& e, bool strict) {
    Outcome out;
    bool is_condition = r.kind == Record::Kind::kTargets || r.kind == Record::Kind::kCount ||
                        r.kind == Record::Kind::kErrorCondition;
    if (is_condition) {
      out = e.Targets(r.arg, strict);
    } else {
      out = e.Query(r.arg, strict, r.kind == Record::Kind::kQueryPaged ? r.page_size : 0);
    }
    std::string tag = where + "[" + e.name() + "] ";
    if (r.kind == Record::Kind::kError || r.kind == Record::Kind::kErrorCondition) {
      if (!DiagnosticsMatch(r.body, out.diagnostics)) {
        Fail(tag + "expected diagnostics\n" + Join(r.body) + "  got\n" +
             Join(out.diagnostics.empty() ? out.lines : out.diagnostics));
        return false;
      }
      return true;
    }
    if (!out.diagnostics.empty() || !out.error.empty()) {
      Fail(tag + "unexpected error for: " + r.arg + "\n" + Join(out.diagnostics) + out.error);
      return false;
    }
    std::vector<std::string> actual = out.lines;
    if (r.kind == Record::Kind::kCount) actual = {std::to_string(out.lines.size())};
    if (actual != r.body) {
      Fail(tag + "for: " + r.arg + "\n  expected\n" + Join(r.body) + "  got\n" + Join(actual));
      return false;
    }
    return true;
  }

  // p and NOT p never overlap; p OR NOT p selects exactly the rows where p is defined; AND and
  // OR operands in reverse order select the same rows.
  bool Metamorphic(const std::string& where, const std::string& p, const TwinSet& twins,
                   bool strict) {
    check::BindOptions opts;
    opts.strict = strict;
    ref::Documents docs{twins.devices, twins.modules, {}};
    auto targets = [&](const std::string& text, bool reverse, bool* compiled) {
      Source source("<condition>", text);
      auto bound = tools::CompileCondition(source, opts);
      *compiled = bound.ok();
      if (!bound.ok()) return std::vector<size_t>();
      if (reverse && bound->expr) ReverseLogic(bound->expr.get());
      return ref::SelectRows(*bound, docs);
    };
    bool ok1 = false, ok2 = false, ok3 = false, ok4 = false;
    std::vector<size_t> t = targets(p, false, &ok1);
    std::vector<size_t> reversed = targets(p, true, &ok4);
    if (ok1 && ok4 && t != reversed) {
      Fail(where + "metamorphic: reversing AND/OR operands changed the result of: " + p);
      return false;
    }
    std::string trimmed = p.substr(0, 4);
    bool bare =
        p != "*" && p.find_first_not_of(" \t") != std::string::npos &&
        !(trimmed.size() == 4 && (trimmed == "FROM" || trimmed == "from" || trimmed == "From"));
    if (!bare || !ok1) return true;
    std::vector<size_t> n = targets("NOT (" + p + ")", false, &ok2);
    std::vector<size_t> d = targets("(" + p + ") OR NOT (" + p + ")", false, &ok3);
    if (!ok2 || !ok3) return true;  // e.g. the composed text exceeds a limit
    std::vector<size_t> both, either;
    std::set_intersection(t.begin(), t.end(), n.begin(), n.end(), std::back_inserter(both));
    std::set_union(t.begin(), t.end(), n.begin(), n.end(), std::back_inserter(either));
    if (!both.empty()) {
      Fail(where + "metamorphic: p and NOT p both select a row for: " + p);
      return false;
    }
    if (d != either) {
      Fail(where + "metamorphic: p OR NOT p differs from the rows where p is defined: " + p);
      return false;
    }
    return true;
  }

  void Fail(const std::string& msg) {
    std::cerr << msg << "\n";
    ++failures_reported_;
  }

  std::vector<std::string> engine_names_;
  std::string data_dir_;
  int passed_ = 0;
  int failed_ = 0;
  int failures_reported_ = 0;
};

}  // namespace
}  // namespace twinq::testing

int main(int argc, char** argv) {
  std::vector<std::string> engines = twinq::testing::AllEngineNames();
  std::string data_dir = TWINQ_SOURCE_DIR "/tests/data";
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--engines" && i + 1 < argc) {
      engines.clear();
      std::stringstream ss(argv[++i]);
      std::string e;
      while (std::getline(ss, e, ',')) engines.push_back(e);
    } else if (a == "--data" && i + 1 < argc) {
      data_dir = argv[++i];
    } else {
      files.push_back(a);
    }
  }
  if (files.empty()) {
    std::cerr << "usage: twinq_test_runner [--engines ref,ref-nofold] [--data DIR] FILE...\n";
    return 1;
  }
  twinq::testing::Runner runner(engines, data_dir);
  for (const std::string& f : files) runner.RunFile(f);
  std::cout << runner.passed() << " passed, " << runner.failed() << " failed\n";
  return runner.failed() == 0 && runner.passed() > 0 ? 0 : 1;
}
