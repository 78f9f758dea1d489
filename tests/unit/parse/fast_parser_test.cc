// The differential test of the fast parser (engine/parse/fast_parser.h) against its oracle, the
// ANTLR parser (ParserImpl::kAntlrOnly): every record of tests/golden/parse.txt, every query and
// condition of tests/queries/**/*.test (each tried as a query and as a condition) and the
// tricky inputs below. Whenever the fast parser accepts an input, the ANTLR parser must accept it
// too and build the same AST (SameAst: node ids, kinds, ranges, values, path segments, ...);
// ParseQuery / ParseCondition with the default implementation must give exactly what the ANTLR
// parser gives (the AST, or the same rendered diagnostics). The accept rate on valid inputs is
// asserted: only the constructs the fast parser is documented to decline may fall back.
#include "engine/parse/fast_parser.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "engine/ast/ast.h"
#include "engine/common/diagnostic.h"
#include "engine/common/limits.h"
#include "engine/common/source.h"
#include "engine/parse/parser.h"
#include "tests/runner/test_file.h"

namespace twinq {
namespace {

using parse_internal::FastEntry;
using parse_internal::FastParse;
using parse_internal::SameAst;

struct Input {
  std::string text;
  bool condition = false;
  std::string origin;  // file:line, for messages
};

// tests/golden/parse.txt: "query: TEXT", "condition: TEXT", or the raw "query<<" / "condition<<"
// form up to "----" (the format is described in the file's header).
std::vector<Input> GoldenInputs() {
  std::vector<Input> out;
  std::ifstream in(TWINQ_SOURCE_DIR "/tests/golden/parse.txt", std::ios::binary);
  EXPECT_TRUE(in.good());
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string& l = lines[i];
    Input r;
    r.origin = "parse.txt:" + std::to_string(i + 1);
    if (l == "query<<" || l == "condition<<") {
      r.condition = l[0] == 'c';
      bool first = true;
      for (++i; i < lines.size() && lines[i] != "----"; ++i) {
        if (!first) r.text.push_back('\n');
        first = false;
        r.text += lines[i];
      }
      out.push_back(std::move(r));
    } else if (l.rfind("query:", 0) == 0 || l.rfind("condition:", 0) == 0) {
      r.condition = l[0] == 'c';
      std::string rest = l.substr(r.condition ? 10 : 6);
      if (!rest.empty() && rest[0] == ' ') rest.erase(0, 1);
      r.text = rest;
      out.push_back(std::move(r));
    }
  }
  return out;
}

std::vector<Input> QueryFileInputs() {
  std::vector<Input> out;
  namespace fs = std::filesystem;
  std::vector<fs::path> files;
  for (const auto& e : fs::recursive_directory_iterator(TWINQ_SOURCE_DIR "/tests/queries")) {
    if (e.is_regular_file() && e.path().extension() == ".test") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  EXPECT_GE(files.size(), 10u);
  for (const fs::path& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    testing::TestFile tf;
    std::string error;
    EXPECT_TRUE(testing::ParseTestFile(f.string(), ss.str(), &tf, &error)) << error;
    for (const testing::Record& r : tf.records) {
      using K = testing::Record::Kind;
      if (r.kind == K::kFleet || r.kind == K::kMode) continue;
      bool condition = r.kind == K::kTargets || r.kind == K::kCount || r.kind == K::kErrorCondition;
      out.push_back({r.arg, condition, f.filename().string() + ":" + std::to_string(r.line)});
    }
  }
  return out;
}

// Inputs aimed at the corners of the language: precedence, prefix operators, flattening,
// ranges, literals, escapes, identifiers, white space, limits and the constructs declined.
std::vector<std::string> TrickyInputs() {
  std::vector<std::string> v = {
      "a",
      "*",
      " * ",
      "a = 1",
      "a=1AND b=2",
      "NOT a = 1 AND b",
      "NOT a IN [1] OR NOT NOT b",
      "a = NOT b = c",
      "a = NOT b AND c",
      "- NOT a = 1",
      "-a * b + c",
      "a * -b * -c - -d",
      "a + - b + - c",
      "a - b - c * d / e % f",
      "a AND b AND c OR d AND e OR (f OR g) OR (h AND i) AND j",
      "(a AND b) AND c AND (d AND e)",
      "((a)) = ((1))",
      "(a = 1) = true",
      "(a IN [1]) IN [true]",
      "a = b = c",
      "a IN [1] = b",
      "a = b IN [1]",
      "a IN []",
      "a NIN ['x', -1, +2, -0, 1e3, .5, 5., 0x1F, 0XfF, 1.5e-3, [1, [2, []]], true, "
      "false, null, undefined]",
      "a IN ['it''s', \"say \"\"hi\"\"\", 'tab\\t', '\\u00e9\\uD83D\\uDE00', '\\/\\\\']",
      "a = 'bad \\q escape'",
      "a = '\\uD800'",
      "a = 'unterminated",
      "a = 1e999",
      "a = 0x10000000000000000",
      "a = 00012345678901234567",
      "a = 123456789012345",
      "a = 1234567890123456",
      "a = 9007199254740993",
      "a = 1e+",
      "a = 12ab",
      "a.b.c[0][1].d = 1",
      "a[1e0] = 1",
      "a[1.] = 1",
      "a[0.5] = 1",
      "a[-1] = 1",
      "a[4294967295] = 1",
      "a[4294967296] = 1",
      "tags.[[my-key]].x = 1",
      "tags . [[ spaced name ]] = 1",
      "tags.[[]] = 1",
      "tags.[[ ]] = 1",
      "tags.[[a]b]] = 1",
      "tags.[[a\n]] = 1",
      "tags.[ [a]] = 1",
      "[[x]] = 1",
      "[[1]] = a",
      "[1, 2] = a",
      "[] = a",
      "tags.group = 1",
      "tags.select.x = 1",
      "$a.$b = 1",
      "$ = 1",
      "a.5 = 1",
      "_x9.y_ = 1",
      "caf\xC3\xA9.\xE6\x97\xA5\xE6\x9C\xAC = '\xF0\x9F\x98\x80'",
      "a\xC2\xA0=\xC2\xA0"
      "1",
      "\xEF\xBB\xBF"
      "a = 1",
      "a = 1\xEF\xBB\xBF",
      "a\t=\r\n1\f\v",
      "\xF0\x9F\x98\x80x.y\xE2\x80\xA8z = 1",
      "a\x7F = 1",
      std::string("a = '\0'", 7),
      std::string("a\0 = 1", 6),
      "[[1]].z = 1",
      "[[1]][0] = 1",
      "SELECT a.b AS [[x]], c AS d FROM devices",
      "IS_DEFINED(tags.x) AND NOT IS_NULL(tags.y)",
      "STARTSWITH(deviceId, 'dev-') OR ENDSWITH(deviceId, 'x')",
      "f()",
      "f(a, b + 1, g(h(1)), [1, 2])",
      "f(a,)",
      "f a",
      "lower(tags.x) = 'a'",
      "a <> 1 AND b != 2 AND c < 3 AND d <= 4 AND e > 5 AND f >= 6",
      "a == 1",
      "a ! = 1",
      "a # 1",
      "a NOT IN [1]",
      "FROM devices WHERE a = 1",
      "FROM devices.modules WHERE moduleId = '$edgeAgent'",
      "from DEVICES.Modules where x = 1",
      "FROM devices.jobs WHERE status = 'completed'",
      "FROM devices.foo WHERE a = 1",
      "FROM devices a = 1",
      "SELECT * FROM devices",
      "SELECT * FROM devices WHERE a = 1",
      "SELECT TOP 5 * FROM devices",
      "SELECT TOP (5) deviceId FROM devices",
      "SELECT TOP 5.5 * FROM devices",
      "SELECT TOP 1e3 * FROM devices",
      "SELECT TOP 5x FROM devices",
      "SELECT TOP 9007199254740993 * FROM devices",
      "SELECT deviceId, tags.x AS x, COUNT() AS n, properties.reported.[[a b]] AS [[c d]] FROM "
      "devices.modules WHERE x > 1 GROUP BY tags.x, tags.y[0]",
      "SELECT a AS group FROM devices",
      "SELECT a AS [[ ]] FROM devices",
      "SELECT [[a]] FROM devices",
      "SELECT f(a + b * c) FROM devices",
      "SELECT * FROM devices GROUP BY",
      "SELECT * FROM devices WHERE",
      "select * from devices where not a = 1",
      "SELECT * FROM devices WHERE a = 1 GROUP BY b extra",
      "",
      "   ",
      "\xEF\xBB\xBF",
      "\xC0\xAF",
  };
  // Limits: nesting, AST depth, array length, text size.
  auto repeat = [](const std::string& s, size_t n) {
    std::string r;
    for (size_t i = 0; i < n; ++i) r += s;
    return r;
  };
  for (size_t n : {99u, 100u, 101u}) {
    v.push_back(repeat("(", n) + "a" + repeat(")", n) + " = 1");
    v.push_back(repeat("NOT ", n) + "a");
    v.push_back(repeat("- ", n) + "a = 1");
    v.push_back("a IN " + repeat("[", n) + repeat("]", n));
  }
  for (size_t n : {254u, 255u, 256u, 257u}) {
    std::string s = "a";
    for (size_t i = 0; i < n; ++i) s += " + a";
    v.push_back(s + " = 1");
  }
  for (size_t n : {2047u, 2048u, 2049u}) {
    std::string s = "a IN [1";
    for (size_t i = 1; i < n; ++i) s += ",1";
    v.push_back(s + "]");
  }
  v.push_back("a = '" + std::string(limits::kMaxQueryBytes - 7, 'x') + "'");
  v.push_back("a = '" + std::string(limits::kMaxQueryBytes - 6, 'x') + "'");
  return v;
}

std::string Describe(const Result<ast::Ast>& r, const Source& source) {
  if (!r.ok()) return Render(r.diagnostics(), source);
  ast::PrintOptions ranges;
  ranges.ranges = true;
  return ast::Print(*r, ranges);
}

struct Stats {
  size_t inputs = 0;
  size_t valid = 0;           // the ANTLR parser accepts
  size_t accepted = 0;        // the fast parser accepts
  size_t valid_declined = 0;  // valid, but the fast parser declined
  std::map<std::string, size_t> declined_valid_reasons;
};

// Checks one input under one entry point.
void Check(const std::string& text, bool condition, const std::string& origin, Stats* stats) {
  Source source(condition ? "<condition>" : "<query>", text);
  const char* why = nullptr;
  std::optional<ast::Ast> fast =
      FastParse(source, condition ? FastEntry::kCondition : FastEntry::kQuery, &why);
  Result<ast::Ast> antlr = condition ? ParseCondition(source, ParserImpl::kAntlrOnly)
                                     : ParseQuery(source, ParserImpl::kAntlrOnly);
  Result<ast::Ast> dflt = condition ? ParseCondition(source) : ParseQuery(source);
  std::string where = origin + " (" + (condition ? "condition" : "query") + ") '" + text + "'";
  stats->inputs++;
  if (antlr.ok()) stats->valid++;
  if (fast) {
    stats->accepted++;
    ASSERT_TRUE(antlr.ok()) << where << ": the fast parser accepts, ANTLR reports\n"
                            << Render(antlr.diagnostics(), source);
    std::string diff;
    EXPECT_TRUE(SameAst(*fast, *antlr, &diff))
        << where << ": " << diff
        << "\nfast:  " << Describe(Result<ast::Ast>(std::move(*fast)), source)
        << "\nantlr: " << Describe(antlr, source);
  } else {
    EXPECT_NE(why, nullptr) << where;
    if (antlr.ok()) {
      stats->valid_declined++;
      stats->declined_valid_reasons[why != nullptr ? why : "?"]++;
    }
  }
  // The default entry point gives exactly the oracle's output.
  EXPECT_EQ(Describe(dflt, source), Describe(antlr, source)) << where;
  if (dflt.ok() && antlr.ok()) {
    std::string diff;
    EXPECT_TRUE(SameAst(*dflt, *antlr, &diff)) << where << ": " << diff;
  }
}

void Report(const char* name, const Stats& s) {
  std::string reasons;
  for (const auto& [why, n] : s.declined_valid_reasons) {
    reasons += " [" + why + "] x" + std::to_string(n);
  }
  std::printf("%s: %zu inputs, %zu valid, fast parser accepted %zu (%zu valid declined:%s)\n", name,
              s.inputs, s.valid, s.accepted, s.valid_declined, reasons.c_str());
}

TEST(FastParser, GoldenTableMatchesAntlr) {
  std::vector<Input> inputs = GoldenInputs();
  ASSERT_GE(inputs.size(), 200u);
  Stats s;
  for (const Input& in : inputs) Check(in.text, in.condition, in.origin, &s);
  Report("parse.txt", s);
  // Every valid record is taken, except the leading `[[` (an escaped name or a nested array,
  // which only ANTLR's prediction decides).
  for (const auto& [why, n] : s.declined_valid_reasons) {
    EXPECT_EQ(why, "leading [[") << n << " valid golden records declined";
  }
  EXPECT_GE(s.accepted * 100, s.valid * 97);  // 306 of 314 when written
  RecordProperty("valid", static_cast<int>(s.valid));
  RecordProperty("accepted", static_cast<int>(s.accepted));
}

TEST(FastParser, GoldenTableOtherEntryMatchesAntlr) {
  // The same texts through the other entry point (conditions as queries and back).
  Stats s;
  for (const Input& in : GoldenInputs()) Check(in.text, !in.condition, in.origin, &s);
  Report("parse.txt, other entry", s);
}

TEST(FastParser, QueryFilesMatchAntlr) {
  std::vector<Input> inputs = QueryFileInputs();
  ASSERT_GE(inputs.size(), 100u);
  Stats own, other;
  for (const Input& in : inputs) {
    Check(in.text, in.condition, in.origin, &own);
    Check(in.text, !in.condition, in.origin, &other);
  }
  Report("tests/queries", own);
  Report("tests/queries, other entry", other);
  for (const auto& [why, n] : own.declined_valid_reasons) {
    EXPECT_EQ(why, "leading [[") << n << " valid queries/conditions declined";
  }
  EXPECT_GE(own.accepted * 100, own.valid * 99);  // 900 of 904 when written
}

TEST(FastParser, TrickyInputsMatchAntlr) {
  Stats s;
  for (const std::string& text : TrickyInputs()) {
    Check(text, true, "tricky", &s);
    Check(text, false, "tricky", &s);
  }
  Report("tricky", s);
}

TEST(FastParser, AcceptsTheBenchmarkShapes) {
  std::string ids, tags;
  for (int i = 0; i < 100; ++i) ids += (i ? ", '" : "'") + std::to_string(i) + "'";
  for (int i = 0; i < 1000; ++i) tags += (i ? ",'" : "'") + std::to_string(i) + "'";
  for (const std::string& text :
       {"deviceId IN [" + ids + "]", "tags.building IN [" + tags + "]",
        std::string("tags.environment = 'prod' AND (tags.region = 'westus2' OR tags.floor > 10) "
                    "AND NOT (properties.reported.telemetryConfig.status = 'Success') AND "
                    "properties.reported.batteryLevel < 50")}) {
    Source source("<condition>", text);
    const char* why = nullptr;
    EXPECT_TRUE(FastParse(source, FastEntry::kCondition, &why).has_value()) << why;
  }
}

TEST(FastParser, SameAstSeesDifferences) {
  Source a("<c>", "a = 1 AND b = 2");
  Source b("<c>", "a = 1 AND  b = 2");
  Source c("<c>", "(a = 1) AND b = 2");
  auto x = FastParse(a, FastEntry::kCondition);
  auto y = FastParse(b, FastEntry::kCondition);
  auto z = FastParse(c, FastEntry::kCondition);
  ASSERT_TRUE(x && y && z);
  std::string diff;
  EXPECT_TRUE(SameAst(*x, *x, &diff)) << diff;
  EXPECT_FALSE(SameAst(*x, *y, &diff));
  EXPECT_NE(diff.find("range"), std::string::npos) << diff;
  EXPECT_FALSE(SameAst(*x, *z, &diff));
}

}  // namespace
}  // namespace twinq
