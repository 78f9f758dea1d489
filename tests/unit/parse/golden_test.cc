// The golden parse table: tests/golden/parse.txt (its header documents the format). Every record
// is parsed with ParseQuery or ParseCondition and its output (the printed AST, or the rendered
// diagnostics) compared with the expected text. With TWINQ_UPDATE_GOLDEN=1 the file is rewritten
// with the actual outputs instead (comments, inputs and order kept); review the diff by hand.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "engine/ast/ast.h"
#include "engine/common/diagnostic.h"
#include "engine/common/source.h"
#include "engine/parse/parser.h"

namespace twinq {
namespace {

const char kGoldenPath[] = TWINQ_SOURCE_DIR "/tests/golden/parse.txt";

struct Record {
  bool condition = false;
  std::string input;
  size_t line = 0;            // 1-based line of the record's first line
  size_t expected_begin = 0;  // 0-based index of the first expected line in `lines`
  size_t expected_end = 0;    // one past the last expected line
  std::string expected;       // expected lines joined by '\n'
};

struct GoldenFile {
  std::vector<std::string> lines;
  std::vector<Record> records;
  std::vector<std::string> errors;  // malformed records
};

bool StartsWith(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

GoldenFile ReadGolden(const std::string& path) {
  GoldenFile g;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    g.errors.push_back("cannot open " + path);
    return g;
  }
  std::string line;
  while (std::getline(in, line)) g.lines.push_back(line);

  size_t i = 0;
  while (i < g.lines.size()) {
    const std::string& l = g.lines[i];
    if (l.empty() || l[0] == '#') {
      ++i;
      continue;
    }
    Record r;
    r.line = i + 1;
    std::string kind;
    if (StartsWith(l, "query<<") || StartsWith(l, "condition<<")) {
      r.condition = l[0] == 'c';
      if (l != (r.condition ? "condition<<" : "query<<")) {
        g.errors.push_back("parse.txt:" + std::to_string(i + 1) + ": junk after <<");
      }
      // Raw lines up to "----", joined by '\n'.
      ++i;
      bool first = true;
      while (i < g.lines.size() && g.lines[i] != "----") {
        if (!first) r.input.push_back('\n');
        first = false;
        r.input += g.lines[i];
        ++i;
      }
    } else if (StartsWith(l, "query:") || StartsWith(l, "condition:")) {
      r.condition = l[0] == 'c';
      std::string rest = l.substr(r.condition ? 10 : 6);
      if (!rest.empty() && rest[0] == ' ') rest.erase(0, 1);
      r.input = rest;
      ++i;
    } else {
      g.errors.push_back("parse.txt:" + std::to_string(i + 1) + ": expected a record, got '" + l +
                         "'");
      ++i;
      continue;
    }
    if (i >= g.lines.size() || g.lines[i] != "----") {
      g.errors.push_back("parse.txt:" + std::to_string(r.line) + ": record without '----'");
      continue;
    }
    ++i;
    r.expected_begin = i;
    while (i < g.lines.size() && !g.lines[i].empty()) {
      if (i > r.expected_begin) r.expected.push_back('\n');
      r.expected += g.lines[i];
      ++i;
    }
    r.expected_end = i;
    g.records.push_back(std::move(r));
  }
  return g;
}

// The output of one record: the printed AST, or the rendered diagnostics (without the final
// newline).
std::string RunRecord(const Record& r) {
  Source source(r.condition ? "<condition>" : "<query>", r.input);
  Result<ast::Ast> ast = r.condition ? ParseCondition(source) : ParseQuery(source);
  std::string out = ast.ok() ? ast::Print(*ast) : Render(ast.diagnostics(), source);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

TEST(GoldenParse, Table) {
  GoldenFile g = ReadGolden(kGoldenPath);
  for (const std::string& e : g.errors) ADD_FAILURE() << e;
  ASSERT_TRUE(g.errors.empty());

  const char* update = std::getenv("TWINQ_UPDATE_GOLDEN");
  if (update != nullptr && std::string(update) == "1") {
    std::ostringstream out;
    size_t next = 0;  // next line of g.lines to copy
    for (const Record& r : g.records) {
      for (; next < r.expected_begin; ++next) out << g.lines[next] << '\n';
      out << RunRecord(r) << '\n';
      next = r.expected_end;
    }
    for (; next < g.lines.size(); ++next) out << g.lines[next] << '\n';
    std::ofstream f(kGoldenPath, std::ios::binary | std::ios::trunc);
    f << out.str();
    ASSERT_TRUE(f.good()) << "cannot write " << kGoldenPath;
    GTEST_SKIP() << "rewrote " << kGoldenPath << " with " << g.records.size() << " records";
  }

  size_t valid = 0, malformed = 0;
  for (const Record& r : g.records) {
    std::string actual = RunRecord(r);
    bool failed = StartsWith(actual, "error[") || StartsWith(actual, "note[");
    (failed ? malformed : valid)++;
    if (actual != r.expected) {
      ADD_FAILURE() << "parse.txt:" << r.line << ": " << (r.condition ? "condition" : "query")
                    << " '" << r.input << "'\n--- expected\n"
                    << r.expected << "\n--- actual\n"
                    << actual << "\n(TWINQ_UPDATE_GOLDEN=1 rewrites the file)";
    }
  }
  // The Foundation issue asks for at least 200 records, 50 of them malformed.
  EXPECT_GE(g.records.size(), 200u);
  EXPECT_GE(malformed, 50u);
  RecordProperty("valid", static_cast<int>(valid));
  RecordProperty("malformed", static_cast<int>(malformed));
}

// Every diagnostic code the parse stage can produce appears in the table at least once.
TEST(GoldenParse, CoversParseDiagnostics) {
  GoldenFile g = ReadGolden(kGoldenPath);
  ASSERT_TRUE(g.errors.empty());
  std::string all;
  for (const Record& r : g.records) all += r.expected + "\n";
  // E120-E124 (limits) and E105 (invalid UTF-8) are covered by parser_test.cc: the inputs are
  // too long or not expressible in the text file. E199 is an internal error.
  for (DiagCode code : {DiagCode::kSyntax, DiagCode::kUnterminatedString, DiagCode::kBadEscape,
                        DiagCode::kBadCharacter, DiagCode::kBadNumber, DiagCode::kReservedWord,
                        DiagCode::kUnknownCollection, DiagCode::kChainedComparison,
                        DiagCode::kEmptyInList, DiagCode::kBadTop, DiagCode::kBadEscapedName,
                        DiagCode::kBadIndex, DiagCode::kSelectAsCondition, DiagCode::kEmptyInput}) {
    EXPECT_NE(all.find("[" + DiagCodeName(code) + "]"), std::string::npos)
        << DiagCodeName(code) << " never appears in parse.txt";
  }
}

}  // namespace
}  // namespace twinq
