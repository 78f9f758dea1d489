// Parser tests that the golden table (golden_test.cc) cannot express: the limits of
// engine/common/limits.h, invalid UTF-8, the BOM, node ids and source ranges, line and column
// numbers, and a randomized robustness test.
#include "engine/parse/parser.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "engine/ast/ast.h"
#include "engine/common/diagnostic.h"
#include "engine/common/limits.h"
#include "engine/common/source.h"

namespace twinq {
namespace {

using ast::Expr;

Result<ast::Ast> Query(const Source& s) { return ParseQuery(s); }
Result<ast::Ast> Cond(const Source& s) { return ParseCondition(s); }

std::vector<DiagCode> Codes(const Result<ast::Ast>& r) {
  std::vector<DiagCode> out;
  for (const Diagnostic& d : r.diagnostics()) out.push_back(d.code);
  return out;
}

// "E121 1:5" for the first diagnostic, or the printed AST.
std::string Outcome(const Result<ast::Ast>& r, const Source& s) {
  if (r.ok()) return ast::Print(*r);
  return RenderShort(r.diagnostics().front(), s);
}

std::string Repeat(std::string_view piece, size_t n) {
  std::string out;
  out.reserve(piece.size() * n);
  for (size_t i = 0; i < n; ++i) out += piece;
  return out;
}

// Every expression node of an AST, with its parent (null for roots).
void Collect(const Expr* e, const Expr* parent,
             std::vector<std::pair<const Expr*, const Expr*>>* out) {
  out->push_back({e, parent});
  for (const Expr* c : e->children) Collect(c, e, out);
}

std::vector<std::pair<const Expr*, const Expr*>> AllExprs(const ast::Ast& a) {
  std::vector<std::pair<const Expr*, const Expr*>> out;
  if (a.query) {
    for (const ast::Projection& p : a.query->projections) Collect(p.expr, nullptr, &out);
    if (a.query->where) Collect(a.query->where, nullptr, &out);
    for (const Expr* g : a.query->group_by) Collect(g, nullptr, &out);
  }
  if (a.condition && a.condition->expr) Collect(a.condition->expr, nullptr, &out);
  return out;
}

// Node ids are unique (projections included); every range lies inside the text, and inside its
// parent's range.
void CheckStructure(const ast::Ast& a, const Source& s) {
  std::set<ast::NodeId> ids;
  size_t n = 0;
  auto check_range = [&](SourceRange r) {
    EXPECT_LE(r.begin, r.end);
    EXPECT_LE(r.end, s.text().size());
  };
  if (a.query) {
    check_range(a.query->range);
    check_range(a.query->collection_range);
    for (const ast::Projection& p : a.query->projections) {
      ids.insert(p.id);
      ++n;
      check_range(p.range);
      EXPECT_LE(p.range.begin, p.expr->range.begin);
      EXPECT_GE(p.range.end, p.expr->range.end);
    }
  }
  for (auto [e, parent] : AllExprs(a)) {
    ids.insert(e->id);
    ++n;
    check_range(e->range);
    if (parent != nullptr) {
      EXPECT_GE(e->range.begin, parent->range.begin)
          << ast::Print(*e) << " in " << ast::Print(*parent);
      EXPECT_LE(e->range.end, parent->range.end) << ast::Print(*e) << " in " << ast::Print(*parent);
    }
    for (const ast::PathSegment& seg : e->path) {
      EXPECT_GE(seg.range.begin, e->range.begin);
      EXPECT_LE(seg.range.end, e->range.end);
    }
  }
  EXPECT_EQ(ids.size(), n) << "node ids are not unique";
  EXPECT_EQ(ids.count(0), 0u) << "node id 0 is reserved";
}

// ---- E120: text size ------------------------------------------------------------------------

// A valid condition of exactly `size` bytes: x = 'aaa...'.
std::string ConditionOfSize(size_t size) {
  std::string head = "x = '";
  return head + std::string(size - head.size() - 1, 'a') + "'";
}

TEST(ParserLimits, TextAtTheLimitParses) {
  Source c("<condition>", ConditionOfSize(limits::kMaxQueryBytes));
  ASSERT_EQ(c.text().size(), limits::kMaxQueryBytes);
  EXPECT_TRUE(Cond(c).ok());

  std::string q = "SELECT * FROM devices WHERE x = '";
  q += std::string(limits::kMaxQueryBytes - q.size() - 1, 'b') + "'";
  Source qs("<query>", q);
  ASSERT_EQ(q.size(), limits::kMaxQueryBytes);
  EXPECT_TRUE(Query(qs).ok());
}

TEST(ParserLimits, TextOverTheLimitIsE120) {
  Source c("<condition>", ConditionOfSize(limits::kMaxQueryBytes + 1));
  auto r = Cond(c);
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(Codes(r), std::vector<DiagCode>{DiagCode::kTooLong});
  EXPECT_EQ(r.diagnostics()[0].range, (SourceRange{8192, 8193}));
  EXPECT_EQ(r.diagnostics()[0].message, "query text is 8193 bytes; the limit is 8192 bytes");

  // Checked before anything else: even invalid UTF-8 or garbage over the limit is E120.
  Source junk("<query>", std::string(100000, '\xFF'));
  EXPECT_EQ(Codes(Query(junk)), std::vector<DiagCode>{DiagCode::kTooLong});
}

// ---- E121: nesting ---------------------------------------------------------------------------

TEST(ParserLimits, ParenthesesNesting) {
  const size_t n = limits::kMaxNesting;
  Source ok("<condition>", Repeat("(", n) + "a = 1" + Repeat(")", n));
  auto r = Cond(ok);
  ASSERT_TRUE(r.ok()) << Render(r.diagnostics(), ok);
  EXPECT_EQ(ast::Print(*r), "condition(eq(a, 1))");

  Source bad("<condition>", Repeat("(", n + 1) + "a = 1" + Repeat(")", n + 1));
  auto b = Cond(bad);
  ASSERT_EQ(Codes(b), std::vector<DiagCode>{DiagCode::kTooNested});
  // Reported at the parenthesis that crosses the limit.
  EXPECT_EQ(b.diagnostics()[0].range, (SourceRange{uint32_t(n), uint32_t(n + 1)}));
  EXPECT_EQ(b.diagnostics()[0].message,
            "expression nests deeper than 100 levels (parentheses, brackets and prefix operators)");

  // Far deeper input is rejected just the same, without exhausting the stack.
  Source deep("<query>",
              "SELECT * FROM devices WHERE " + Repeat("(", 4000) + "a" + Repeat(")", 4000));
  EXPECT_EQ(Codes(Query(deep)), std::vector<DiagCode>{DiagCode::kTooNested});
}

TEST(ParserLimits, BracketNesting) {
  const size_t n = limits::kMaxNesting;
  // The IN list's own bracket counts as a level.
  Source ok("<condition>", "a IN " + Repeat("[", n) + "1" + Repeat("]", n));
  EXPECT_TRUE(Cond(ok).ok()) << Outcome(Cond(ok), ok);
  Source bad("<condition>", "a IN " + Repeat("[", n + 1) + "1" + Repeat("]", n + 1));
  EXPECT_EQ(Codes(Cond(bad)), std::vector<DiagCode>{DiagCode::kTooNested});

  Source lit_ok("<condition>", "a = " + Repeat("[", n) + Repeat("]", n));
  EXPECT_TRUE(Cond(lit_ok).ok());
  Source lit_bad("<condition>", "a = " + Repeat("[", n + 1) + Repeat("]", n + 1));
  EXPECT_EQ(Codes(Cond(lit_bad)), std::vector<DiagCode>{DiagCode::kTooNested});

  Source calls_ok("<condition>", Repeat("f(", n) + "x" + Repeat(")", n));
  EXPECT_TRUE(Cond(calls_ok).ok());
  Source calls_bad("<condition>", Repeat("f(", n + 1) + "x" + Repeat(")", n + 1));
  EXPECT_EQ(Codes(Cond(calls_bad)), std::vector<DiagCode>{DiagCode::kTooNested});
}

TEST(ParserLimits, PrefixOperatorRuns) {
  const size_t n = limits::kMaxNesting;
  for (std::string_view op : {"NOT ", "- ", "+ ", "-", "not "}) {
    SCOPED_TRACE(std::string(op));
    Source ok("<condition>", Repeat(op, n) + "a");
    auto r = Cond(ok);
    ASSERT_TRUE(r.ok()) << Render(r.diagnostics(), ok);
    Source bad("<condition>", Repeat(op, n + 1) + "a");
    EXPECT_EQ(Codes(Cond(bad)), std::vector<DiagCode>{DiagCode::kTooNested});
  }
  // Mixed: parentheses and prefix operators add up.
  Source mixed_ok("<condition>", Repeat("NOT (", n / 2) + "a" + Repeat(")", n / 2));
  EXPECT_TRUE(Cond(mixed_ok).ok());
  Source mixed_bad("<condition>", Repeat("NOT (", n / 2) + "-a" + Repeat(")", n / 2));
  EXPECT_EQ(Codes(Cond(mixed_bad)), std::vector<DiagCode>{DiagCode::kTooNested});
  // Runs that are cut by AND, OR or a binary operator do not accumulate.
  Source flat("<condition>", Repeat("NOT a AND ", 300) + "a");
  EXPECT_TRUE(Cond(flat).ok());
  Source arith("<condition>", Repeat("- a ", 100) + "- a = 1");
  EXPECT_TRUE(Cond(arith).ok()) << Outcome(Cond(arith), arith);
}

TEST(ParserLimits, ManyParenthesesSideBySideAreFine) {
  Source s("<condition>", Repeat("(a = 1) AND ", 400) + "(a = 1)");
  auto r = Cond(s);
  ASSERT_TRUE(r.ok()) << Outcome(r, s);
  EXPECT_EQ(r->condition->expr->children.size(), 401u);
}

// ---- E122: AST depth -------------------------------------------------------------------------

TEST(ParserLimits, AstDepth) {
  const size_t n = limits::kMaxAstDepth;
  // a+a+...+a with k operands is a left-deep tree of depth k.
  auto chain = [](size_t k, std::string_view op) {
    std::string s = "a";
    for (size_t i = 1; i < k; ++i) s += std::string(op) + "a";
    return s;
  };
  Source ok("<condition>", chain(n, "+"));
  ASSERT_TRUE(Cond(ok).ok());
  Source bad("<condition>", chain(n + 1, "+"));
  auto b = Cond(bad);
  ASSERT_EQ(Codes(b), std::vector<DiagCode>{DiagCode::kTooDeep});
  EXPECT_EQ(b.diagnostics()[0].message, "expression is 257 levels deep; the limit is 256");
  EXPECT_EQ(b.diagnostics()[0].range, (SourceRange{0, uint32_t(bad.text().size())}));

  Source mul("<query>", "SELECT * FROM devices WHERE " + chain(n + 1, " * "));
  EXPECT_EQ(Codes(Query(mul)), std::vector<DiagCode>{DiagCode::kTooDeep});
  // A comparison on top adds a level.
  Source cmp("<condition>", chain(n, "-") + " = 1");
  EXPECT_EQ(Codes(Cond(cmp)), std::vector<DiagCode>{DiagCode::kTooDeep});
  // Projections are checked too.
  Source proj("<query>", "SELECT f(" + chain(n, "+") + ") FROM devices");
  EXPECT_EQ(Codes(Query(proj)), std::vector<DiagCode>{DiagCode::kTooDeep});

  // AND and OR chains are flattened, so they do not deepen the tree.
  Source ands("<condition>", chain(1200, " AND "));
  auto a = Cond(ands);
  ASSERT_TRUE(a.ok()) << Outcome(a, ands);
  EXPECT_EQ(a->condition->expr->children.size(), 1200u);
  Source ors("<condition>", chain(1200, " or "));
  ASSERT_TRUE(Cond(ors).ok());
}

// ---- E123: array elements --------------------------------------------------------------------

TEST(ParserLimits, ArrayElements) {
  const size_t n = limits::kMaxArrayElements;
  auto list = [](size_t k) {
    std::string s = "[";
    for (size_t i = 0; i < k; ++i) s += i == 0 ? "1" : ",1";
    return s + "]";
  };
  Source ok("<condition>", "deviceId IN " + list(n));
  auto r = Cond(ok);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->condition->expr->value.as_array().size(), n);

  Source bad("<condition>", "deviceId IN " + list(n + 1));
  auto b = Cond(bad);
  ASSERT_EQ(Codes(b), std::vector<DiagCode>{DiagCode::kTooManyElements});
  EXPECT_EQ(b.diagnostics()[0].message, "array literal has 2049 elements; the limit is 2048");
  EXPECT_EQ(b.diagnostics()[0].range.begin, 12u);

  Source literal("<condition>", "a = " + list(n + 1));
  EXPECT_EQ(Codes(Cond(literal)), std::vector<DiagCode>{DiagCode::kTooManyElements});
  Source nested("<condition>", "a IN [" + list(n + 1) + "]");
  EXPECT_EQ(Codes(Cond(nested)), std::vector<DiagCode>{DiagCode::kTooManyElements});
}

// ---- E124: too many errors ---------------------------------------------------------------------

TEST(ParserLimits, TooManyErrors) {
  const size_t n = limits::kMaxDiagnostics;
  // Exactly the limit: all shown, no note.
  Source exact("<condition>", "x = 1" + Repeat(" #", n));
  auto e = Cond(exact);
  ASSERT_EQ(e.diagnostics().size(), n);
  for (const Diagnostic& d : e.diagnostics()) EXPECT_EQ(d.code, DiagCode::kBadCharacter);

  // One more: the first n, then a note where the next error was.
  Source over("<condition>", "x = 1" + Repeat(" #", n + 5));
  auto o = Cond(over);
  ASSERT_EQ(o.diagnostics().size(), n + 1);
  const Diagnostic& note = o.diagnostics().back();
  EXPECT_EQ(note.code, DiagCode::kTooManyErrors);
  EXPECT_EQ(note.severity, Severity::kNote);
  EXPECT_EQ(note.message, "too many errors; 5 more not shown");
  EXPECT_EQ(note.range, (SourceRange{uint32_t(6 + 2 * n), uint32_t(7 + 2 * n)}));
  EXPECT_EQ(Render(note, over).substr(0, 30), "note[E124] <condition>:1:27: t");

  // The cap holds for every kind of error: escapes, semantic errors.
  Source escapes("<condition>", "x = '" + Repeat("\\q", 50) + "'");
  auto es = Cond(escapes);
  ASSERT_EQ(es.diagnostics().size(), n + 1);
  EXPECT_EQ(es.diagnostics()[0].code, DiagCode::kBadEscape);
  EXPECT_EQ(es.diagnostics().back().code, DiagCode::kTooManyErrors);
  Source reserved("<condition>", Repeat("tags.group = 1 AND ", 20) + "true");
  auto rs = Cond(reserved);
  ASSERT_EQ(rs.diagnostics().size(), n + 1);
  EXPECT_EQ(rs.diagnostics()[0].code, DiagCode::kReservedWord);
  EXPECT_EQ(rs.diagnostics().back().message, "too many errors; 10 more not shown");
  // A whole text of bad characters.
  Source hashes("<query>", std::string(8000, '#'));
  EXPECT_EQ(Query(hashes).diagnostics().size(), n + 1);
}

// ---- E105: invalid UTF-8 ---------------------------------------------------------------------

struct Utf8Case {
  const char* what;
  std::string text;
  uint32_t at;  // byte offset of the first invalid byte
};

TEST(ParserUtf8, InvalidSequencesAreE105AtTheRightByte) {
  const std::vector<Utf8Case> cases = {
      {"stray continuation", "x = 1 AND y\x80 = 2", 11},
      {"stray continuation in a string", "x = 'ab\xBF'", 7},
      {"truncated 2-byte at end", "x = 'a\xC3", 6},
      {"truncated 3-byte", "x = '\xE2\x82' AND y = 1", 5},
      {"truncated 4-byte", "tags.\xF0\x9F\x98 = 1", 5},
      {"overlong 2-byte /", "x = '\xC0\xAF'", 5},
      {"overlong 2-byte C1", "x = '\xC1\xBF'", 5},
      {"overlong 3-byte", "x = '\xE0\x80\xAF'", 5},
      {"overlong 4-byte", "x = '\xF0\x80\x80\xAF'", 5},
      {"UTF-16 surrogate D800", "x = '\xED\xA0\x80'", 5},
      {"UTF-16 surrogate DFFF", "x = 1 AND '\xED\xBF\xBF' = y", 11},
      {"beyond U+10FFFF", "x = '\xF4\x90\x80\x80'", 5},
      {"lead byte F5", "x = '\xF5\x80\x80\x80'", 5},
      {"byte FF", "\xFF", 0},
      {"byte FE after valid text", "x = 'h\xC3\xA9llo' \xFE", 13},
      {"invalid after a BOM", "\xEF\xBB\xBF\x80", 3},
  };
  for (const Utf8Case& c : cases) {
    SCOPED_TRACE(c.what);
    for (bool condition : {false, true}) {
      Source s(condition ? "<condition>" : "<query>", c.text);
      auto r = condition ? Cond(s) : Query(s);
      ASSERT_EQ(Codes(r), std::vector<DiagCode>{DiagCode::kInvalidUtf8});
      EXPECT_EQ(r.diagnostics()[0].range, (SourceRange{c.at, c.at + 1}));
      EXPECT_EQ(r.diagnostics()[0].message, fmt::format("invalid UTF-8 byte 0x{:02X}",
                                                        static_cast<unsigned char>(c.text[c.at])));
    }
  }
}

TEST(ParserUtf8, ValidMultiByteText) {
  // 2-, 3- and 4-byte sequences, the largest code point and U+FFFF.
  Source s("<condition>",
           "tags.\xC3\xA9t\xC3\xA9 = '\xE6\x97\xA5\xF0\x9F\x98\x80\xF4\x8F\xBF\xBF\xEF\xBF\xBF'");
  auto r = Cond(s);
  ASSERT_TRUE(r.ok()) << Render(r.diagnostics(), s);
  const Expr* eq = r->condition->expr;
  EXPECT_EQ(eq->children[0]->path[1].name, "\xC3\xA9t\xC3\xA9");
  EXPECT_EQ(eq->children[1]->value.as_string(),
            "\xE6\x97\xA5\xF0\x9F\x98\x80\xF4\x8F\xBF\xBF\xEF\xBF\xBF");
  EXPECT_EQ(s.Slice(eq->children[1]->range), s.text().substr(13));
}

// ---- BOM, blank input ----------------------------------------------------------------------

TEST(ParserText, LeadingBomIsSkippedAndRangesStayOnBytes) {
  const std::string bom = "\xEF\xBB\xBF";
  Source s("<query>", bom + "SELECT * FROM devices WHERE tags.x = 'caf\xC3\xA9' AND y > 2");
  auto r = Query(s);
  ASSERT_TRUE(r.ok()) << Render(r.diagnostics(), s);
  EXPECT_EQ(s.Slice(r->query->range), s.text().substr(3));
  EXPECT_EQ(s.Slice(r->query->collection_range), "devices");
  const Expr* w = r->query->where;
  EXPECT_EQ(s.Slice(w->range), "tags.x = 'caf\xC3\xA9' AND y > 2");
  EXPECT_EQ(s.Slice(w->children[0]->children[1]->range), "'caf\xC3\xA9'");
  EXPECT_EQ(s.Slice(w->children[1]->range), "y > 2");

  // Errors after a BOM point at the right bytes too.
  Source e("<condition>", bom + "x = 1 AND #");
  auto er = Cond(e);
  ASSERT_EQ(Codes(er), std::vector<DiagCode>{DiagCode::kBadCharacter});
  EXPECT_EQ(er.diagnostics()[0].range, (SourceRange{13, 14}));
  Source syn("<condition>", bom + "x = = 1");
  auto sr = Cond(syn);
  ASSERT_EQ(Codes(sr), std::vector<DiagCode>{DiagCode::kSyntax});
  EXPECT_EQ(sr.diagnostics()[0].range, (SourceRange{7, 8}));

  // A BOM alone is an empty input; a BOM elsewhere is white space.
  Source only("<condition>", bom);
  EXPECT_EQ(Codes(Cond(only)), std::vector<DiagCode>{DiagCode::kEmptyInput});
  Source middle("<condition>", "x = 1" + bom + "AND y = 2");
  auto m = Cond(middle);
  ASSERT_TRUE(m.ok()) << Outcome(m, middle);
  EXPECT_EQ(ast::Print(*m), "condition(and(eq(x, 1), eq(y, 2)))");
}

TEST(ParserText, BlankInputIsE115) {
  for (std::string text : {"", " ", "\t\r\n", "\f\v", "\xC2\xA0", " \xEF\xBB\xBF \xC2\xA0\n"}) {
    for (bool condition : {false, true}) {
      Source s(condition ? "<condition>" : "<query>", text);
      auto r = condition ? Cond(s) : Query(s);
      ASSERT_EQ(Codes(r), std::vector<DiagCode>{DiagCode::kEmptyInput}) << Outcome(r, s);
      EXPECT_EQ(r.diagnostics()[0].range,
                (SourceRange{uint32_t(text.size()), uint32_t(text.size())}));
    }
  }
}

// ---- node ids and ranges ---------------------------------------------------------------------

TEST(ParserRanges, PrintWithRanges) {
  ast::PrintOptions ranges{.ranges = true};
  {
    Source s("<condition>", "a = 1");
    auto r = Cond(s);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(ast::Print(*r, ranges), "condition(eq(a@0:1, 1@4:5)@0:5)@0:5");
  }
  {
    Source s("<condition>", "(a OR b) AND NOT -c.d[0] > 2");
    auto r = Cond(s);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(ast::Print(*r, ranges),
              "condition(and(or(a@1:2, b@6:7)@0:8, not(gt(neg(c.d[0]@18:24)@17:24, 2@27:28)@17:28)"
              "@13:28)@0:28)@0:28");
  }
  {
    Source s("<query>",
             "SELECT TOP 5 deviceId AS id, COUNT() FROM devices.modules WHERE x IN [1, 2] "
             "GROUP BY tags.[[a b]]");
    auto r = Query(s);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(ast::Print(*r, ranges),
              "query(top 5; select deviceId@13:21 as id, call(COUNT)@29:36; from devices.modules; "
              "where in(x@64:65, [1, 2])@64:75; group by tags.[[a b]]@85:97)@0:97");
    const ast::Query& q = *r->query;
    EXPECT_EQ(s.Slice(q.top_range), "5");
    EXPECT_EQ(s.Slice(q.collection_range), "devices.modules");
    EXPECT_EQ(s.Slice(q.projections[0].range), "deviceId AS id");
    EXPECT_EQ(s.Slice(q.projections[0].alias_range), "id");
    EXPECT_EQ(s.Slice(q.projections[1].expr->name_range), "COUNT");
    EXPECT_EQ(s.Slice(q.group_by[0]->path[1].range), "[[a b]]");
  }
  {
    Source s("<condition>", "FROM devices.modules WHERE moduleId = '$edgeAgent'");
    auto r = Cond(s);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(ast::Print(*r, ranges),
              "condition(from devices.modules; eq(moduleId@27:35, '$edgeAgent'@38:50)@27:50)@0:50");
    EXPECT_TRUE(r->condition->has_from);
    EXPECT_EQ(r->condition->collection, ast::Collection::kModules);
    EXPECT_EQ(s.Slice(r->condition->collection_range), "devices.modules");
  }
  {
    Source s("<condition>", " * ");
    auto r = Cond(s);
    ASSERT_TRUE(r.ok());
    EXPECT_TRUE(r->condition->all);
    EXPECT_EQ(r->condition->expr, nullptr);
    EXPECT_EQ(ast::Print(*r, ranges), "condition(*)@1:2");
    Source t("<condition>", "a = 1 \n");
    EXPECT_EQ(ast::Print(*Cond(t), ranges), "condition(eq(a@0:1, 1@4:5)@0:5)@0:5");
  }
}

struct SliceCase {
  std::string text;
  std::vector<std::string> slices;  // every expression node, in pre-order
};

TEST(ParserRanges, EveryNodeSlicesToItsText) {
  const std::vector<SliceCase> cases = {
      {"a + b * c", {"a + b * c", "a", "b * c", "b", "c"}},
      {"(a + b) * c", {"(a + b) * c", "(a + b)", "a", "b", "c"}},
      {"NOT (x = 'it''s')", {"NOT (x = 'it''s')", "(x = 'it''s')", "x", "'it''s'"}},
      {"a AND b AND (c OR d)", {"a AND b AND (c OR d)", "a", "b", "(c OR d)", "c", "d"}},
      {"STARTSWITH(devices.deviceId, \"pre\")",
       {"STARTSWITH(devices.deviceId, \"pre\")", "devices.deviceId", "\"pre\""}},
      {"x NIN [1, [2, 'a']] OR - - y",
       {"x NIN [1, [2, 'a']] OR - - y", "x NIN [1, [2, 'a']]", "x", "- - y", "- y", "y"}},
      {"tags.[[my-key]].list[3] >= 0x1F",
       {"tags.[[my-key]].list[3] >= 0x1F", "tags.[[my-key]].list[3]", "0x1F"}},
      {"f() = g(1, (2))", {"f() = g(1, (2))", "f()", "g(1, (2))", "1", "(2)"}},
      {"tags.\xE6\x97\xA5 = '\xF0\x9F\x98\x80'",
       {"tags.\xE6\x97\xA5 = '\xF0\x9F\x98\x80'", "tags.\xE6\x97\xA5", "'\xF0\x9F\x98\x80'"}},
  };
  for (const SliceCase& c : cases) {
    SCOPED_TRACE(c.text);
    Source s("<condition>", c.text);
    auto r = Cond(s);
    ASSERT_TRUE(r.ok()) << Render(r.diagnostics(), s);
    std::vector<std::string> got;
    for (auto [e, parent] : AllExprs(*r)) got.emplace_back(s.Slice(e->range));
    EXPECT_EQ(got, c.slices);
    CheckStructure(*r, s);
  }
}

TEST(ParserRanges, PathSegmentRanges) {
  Source s("<condition>", "devices.tags.[[a-b]].$x[12].y = 1");
  auto r = Cond(s);
  ASSERT_TRUE(r.ok());
  const Expr* p = r->condition->expr->children[0];
  ASSERT_EQ(p->path.size(), 6u);
  std::vector<std::string> slices;
  for (const ast::PathSegment& seg : p->path) slices.emplace_back(s.Slice(seg.range));
  EXPECT_EQ(slices, (std::vector<std::string>{"devices", "tags", "[[a-b]]", "$x", "12", "y"}));
  EXPECT_TRUE(p->path[2].escaped);
  EXPECT_EQ(p->path[2].name, "a-b");
  EXPECT_EQ(p->path[4].kind, ast::PathSegment::Kind::kIndex);
  EXPECT_EQ(p->path[4].index, 12u);
}

TEST(ParserRanges, NodeIdsAreUniqueAcrossAQuery) {
  Source s("<query>",
           "SELECT a AS x, COUNT(), SUM(b.c) FROM devices WHERE (a = 1 OR b IN [1]) AND "
           "NOT f(c, -d) GROUP BY a, b.c");
  auto r = Query(s);
  ASSERT_TRUE(r.ok()) << Render(r.diagnostics(), s);
  CheckStructure(*r, s);
  EXPECT_EQ(r->node_count(), AllExprs(*r).size());
}

// A leading [[ is ambiguous: [[1]] is an array literal, [[name]] a path.
TEST(ParserRanges, LeadingDoubleBracket) {
  Source arr("<condition>", "[[1]] = 1");
  auto a = Cond(arr);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->condition->expr->children[0]->kind, ast::ExprKind::kLiteral);
  Source path("<condition>", "[[x y]].z = 1");
  auto p = Cond(path);
  ASSERT_TRUE(p.ok());
  const Expr* lhs = p->condition->expr->children[0];
  ASSERT_EQ(lhs->kind, ast::ExprKind::kPath);
  EXPECT_EQ(lhs->path[0].name, "x y");
  EXPECT_TRUE(lhs->path[0].escaped);
}

// ---- lines and columns -----------------------------------------------------------------------

TEST(ParserPositions, MultiLineQueries) {
  Source s("<query>", "SELECT *\nFROM devices\nWHERE tags.x = 1\n  AND tags.y = #");
  auto r = Query(s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(RenderShort(r.diagnostics()[0], s), "E103 4:16: unexpected character '#'");
  EXPECT_EQ(Render(r.diagnostics(), s),
            "error[E103] <query>:4:16: unexpected character '#'\n"
            " |   AND tags.y = #\n"
            " |                ^\n");

  // CRLF line ends: same lines and columns; the snippet drops the \r.
  Source crlf("<query>", "SELECT *\r\nFROM devices\r\nWHERE x = = 1\r\n");
  auto c = Query(crlf);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(RenderShort(c.diagnostics()[0], crlf),
            "E100 3:11: unexpected '='; expected an expression");
  EXPECT_EQ(Render(c.diagnostics(), crlf),
            "error[E100] <query>:3:11: unexpected '='; expected an expression\n"
            " | WHERE x = = 1\n"
            " |           ^\n");

  // An error at the very end of a multi-line text.
  Source end("<condition>", "x = 1 AND\n");
  auto e = Cond(end);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(RenderShort(e.diagnostics()[0], end),
            "E100 2:1: unexpected end of input; expected an expression");

  // Successful multi-line parse: ranges span lines.
  Source ok("<condition>", "a = 1\nAND\nb = 2");
  auto o = Cond(ok);
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(ok.Slice(o->condition->expr->range), "a = 1\nAND\nb = 2");
  EXPECT_EQ(ok.Slice(o->condition->expr->children[1]->range), "b = 2");
}

TEST(ParserPositions, ColumnsCountCodePoints) {
  // é is 2 bytes, 日 3, 😀 4: each is one column.
  Source s("<condition>", "tags.caf\xC3\xA9 = '\xE6\x97\xA5\xF0\x9F\x98\x80' AND #");
  auto r = Cond(s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.diagnostics()[0].range.begin, 27u);
  EXPECT_EQ(RenderShort(r.diagnostics()[0], s), "E103 1:22: unexpected character '#'");
  EXPECT_EQ(Render(r.diagnostics(), s),
            "error[E103] <condition>:1:22: unexpected character '#'\n"
            " | tags.caf\xC3\xA9 = '\xE6\x97\xA5\xF0\x9F\x98\x80' AND #\n"
            " |                      ^\n");

  // Syntax errors (positions from ANTLR, which counts code points) map back to bytes.
  Source syn("<condition>", "'\xE6\x97\xA5\xE6\x97\xA5' = = 1");
  auto sr = Cond(syn);
  ASSERT_FALSE(sr.ok());
  EXPECT_EQ(sr.diagnostics()[0].range, (SourceRange{11, 12}));
  EXPECT_EQ(RenderShort(sr.diagnostics()[0], syn),
            "E100 1:8: unexpected '='; expected an expression");

  // A multi-byte token is underlined one caret per code point.
  Source kw("<condition>", "tags.\xE6\x97\xA5\xE6\x97\xA5 = 1 ANDD x");
  auto k = Cond(kw);
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(Render(k.diagnostics(), kw),
            "error[E100] <condition>:1:13: unexpected 'ANDD'; expected end of input; did you mean "
            "'AND'?\n"
            " | tags.\xE6\x97\xA5\xE6\x97\xA5 = 1 ANDD x\n"
            " |             ^~~~\n");
  Source wide("<condition>", "x = 1 \xE6\x97\xA5\xE6\x97\xA5");
  auto w = Cond(wide);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(
      Render(w.diagnostics(), wide),
      "error[E100] <condition>:1:7: unexpected '\xE6\x97\xA5\xE6\x97\xA5'; expected end of input\n"
      " | x = 1 \xE6\x97\xA5\xE6\x97\xA5\n"
      " |       ^~\n");
}

// ---- robustness ------------------------------------------------------------------------------

// Parses `text` with both entry points: no crash, and either an AST with sane ranges or at
// least one diagnostic whose range lies inside the text. Never an internal error.
void CheckRobust(const std::string& text) {
  for (bool condition : {false, true}) {
    Source s(condition ? "<condition>" : "<query>", text);
    auto r = condition ? Cond(s) : Query(s);
    if (r.ok()) {
      EXPECT_TRUE(condition ? r->condition.has_value() : r->query.has_value());
      CheckStructure(*r, s);
      EXPECT_FALSE(ast::Print(*r).empty());
      continue;
    }
    ASSERT_FALSE(r.diagnostics().empty());
    for (const Diagnostic& d : r.diagnostics()) {
      EXPECT_NE(d.code, DiagCode::kInternal) << d.message << " for: " << text;
      EXPECT_LE(d.range.begin, d.range.end) << text;
      EXPECT_LE(d.range.end, text.size()) << text;
      EXPECT_FALSE(d.message.empty());
      EXPECT_FALSE(Render(d, s).empty());
    }
    EXPECT_LE(r.diagnostics().size(), limits::kMaxDiagnostics + 1);
  }
}

TEST(ParserRobustness, RandomBytesAndTokenSoups) {
  std::mt19937 rng(20260126);
  auto pick = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
  const std::vector<std::string> vocab = {"SELECT",
                                          "select",
                                          "TOP",
                                          "FROM",
                                          "from",
                                          "WHERE",
                                          "GROUP",
                                          "BY",
                                          "AS",
                                          "AND",
                                          "and",
                                          "OR",
                                          "NOT",
                                          "IN",
                                          "NIN",
                                          "true",
                                          "FALSE",
                                          "null",
                                          "undefined",
                                          "devices",
                                          "devices.modules",
                                          "devices.jobs",
                                          "modules",
                                          "*",
                                          "/",
                                          "%",
                                          "+",
                                          "-",
                                          "=",
                                          "!=",
                                          "<>",
                                          "<",
                                          "<=",
                                          ">",
                                          ">=",
                                          "(",
                                          ")",
                                          "[",
                                          "]",
                                          "[[",
                                          "]]",
                                          ",",
                                          ".",
                                          "tags",
                                          "x",
                                          "$version",
                                          "deviceId",
                                          "IS_DEFINED",
                                          "COUNT()",
                                          "0",
                                          "1",
                                          "42",
                                          ".5",
                                          "5.",
                                          "1e3",
                                          "0x1F",
                                          "1e999",
                                          "1.5",
                                          "'a'",
                                          "\"b\"",
                                          "'it''s'",
                                          "'\\u00e9'",
                                          "'\\q'",
                                          "'\\uD800'",
                                          "'",
                                          "\"",
                                          "#",
                                          "@",
                                          ";",
                                          "!",
                                          "\\",
                                          "\t",
                                          "\n",
                                          " ",
                                          "[[group]]",
                                          "group",
                                          "caf\xC3\xA9",
                                          "\xE6\x97\xA5",
                                          "\xEF\xBB\xBF",
                                          "\xFF",
                                          "\x80",
                                          "[[a#b]]",
                                          "f(",
                                          "ANDD",
                                          "SELEC"};
  const std::vector<std::string> seps = {" ", "", "  ", "\n"};
  for (int iter = 0; iter < 10000; ++iter) {
    std::string text;
    switch (iter % 4) {
      case 0: {  // random bytes
        size_t len = pick(48);
        for (size_t i = 0; i < len; ++i) text.push_back(static_cast<char>(pick(256)));
        break;
      }
      case 1: {  // random printable ASCII
        size_t len = pick(64);
        for (size_t i = 0; i < len; ++i) text.push_back(static_cast<char>(0x20 + pick(95)));
        break;
      }
      default: {  // token soup, half of them behind a plausible prefix
        if (iter % 4 == 3) text = pick(2) ? "SELECT * FROM devices WHERE " : "tags.x = 1 AND ";
        size_t len = 1 + pick(30);
        for (size_t i = 0; i < len; ++i)
          text += vocab[pick(vocab.size())] + seps[pick(seps.size())];
        break;
      }
    }
    SCOPED_TRACE(testing::Message() << "iteration " << iter);
    CheckRobust(text);
    if (testing::Test::HasFatalFailure()) return;
  }
}

// Inputs that once tripped parsers of this kind: deep or long constructs at the limits.
TEST(ParserRobustness, Pathological) {
  CheckRobust(Repeat("(", 8192));
  CheckRobust(Repeat("[", 8192));
  CheckRobust(Repeat("[[", 4096));
  CheckRobust(Repeat("NOT ", 2048));
  CheckRobust(Repeat("-", 8192));
  CheckRobust("a" + Repeat("+a", 4095));
  CheckRobust("a" + Repeat(" AND a", 1365));
  CheckRobust("a" + Repeat(".b", 4095));
  CheckRobust("a" + Repeat("[0]", 2730));
  CheckRobust("a IN [" + Repeat("1,", 4000) + "1]");
  CheckRobust("'" + Repeat("\\u00e9", 1300) + "'");
  CheckRobust(Repeat("'", 8192));
  CheckRobust(Repeat("tags.[[", 1000));
  CheckRobust("SELECT " + Repeat("a, ", 2700) + "a FROM devices");
  CheckRobust("SELECT * FROM devices GROUP BY " + Repeat("a, ", 2700) + "a");
  CheckRobust(Repeat("f(", 4096));
  CheckRobust(Repeat("a = 1 = ", 1000));
}

}  // namespace
}  // namespace twinq
