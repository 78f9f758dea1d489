// Fuzz target for the front end: arbitrary bytes into ParseQuery and ParseCondition.
//
// Nothing is rejected up front: the parser enforces its own limits (engine/common/limits.h: 8192
// bytes, nesting, AST depth, array length) and must turn every input into an AST or diagnostics.
// On success the AST printer runs (with and without ranges); on failure the diagnostic renderers
// run, so both paths see fuzzed data too.
//
// Besides crashes and sanitizer reports, these are bugs (the target aborts on them):
//   - an E199 internal-error diagnostic (the parser caught an exception it did not expect);
//   - a diagnostic or AST range outside the source text, or with end < begin;
//   - success without the AST part the entry point promises (query or condition);
//   - the fast parser (engine/parse/fast_parser.h) accepting an input that its oracle, the
//     ANTLR parser (ParserImpl::kAntlrOnly), rejects, or building another AST (SameAst: ids,
//     kinds, ranges, values, ...); ParseQuery / ParseCondition (fast parser first) giving
//     another result than the ANTLR parser alone (AST or rendered diagnostics).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/ast/ast.h"
#include "engine/common/diagnostic.h"
#include "engine/common/result.h"
#include "engine/common/source.h"
#include "engine/parse/fast_parser.h"
#include "engine/parse/parser.h"

namespace {

using twinq::DiagCode;
using twinq::Diagnostic;
using twinq::Result;
using twinq::Source;
using twinq::SourceRange;
namespace ast = twinq::ast;

// Keeps the printers' output alive so that the calls cannot be optimised away.
volatile size_t g_sink = 0;

[[noreturn]] void Fail(const char* entry, const Source& source, const std::string& what) {
  std::fprintf(stderr, "fuzz_parse: %s: %s\ninput (%zu bytes): ", entry, what.c_str(),
               source.text().size());
  for (unsigned char c : source.text()) {
    if (c >= 0x20 && c < 0x7F && c != '\\') {
      std::fputc(c, stderr);
    } else {
      std::fprintf(stderr, "\\x%02X", c);
    }
  }
  std::fputc('\n', stderr);
  std::abort();
}

void CheckRange(const char* entry, const Source& source, SourceRange r, const char* what) {
  if (r.begin > r.end || r.end > source.text().size()) {
    Fail(entry, source,
         std::string(what) + " range " + std::to_string(r.begin) + ":" + std::to_string(r.end) +
             " is outside the " + std::to_string(source.text().size()) + "-byte source");
  }
}

void CheckExpr(const char* entry, const Source& source, const ast::Expr* e) {
  if (e == nullptr) return;
  // Iterative: the parser bounds the depth, but the checker should not rely on it.
  std::vector<const ast::Expr*> stack = {e};
  while (!stack.empty()) {
    const ast::Expr* x = stack.back();
    stack.pop_back();
    CheckRange(entry, source, x->range, "expression");
    if (x->kind == ast::ExprKind::kCall) CheckRange(entry, source, x->name_range, "call name");
    for (const ast::PathSegment& s : x->path) CheckRange(entry, source, s.range, "path segment");
    for (const ast::Expr* c : x->children) {
      if (c == nullptr) Fail(entry, source, "null child expression");
      stack.push_back(c);
    }
  }
}

void CheckAst(const char* entry, const Source& source, const ast::Ast& tree, bool want_query) {
  if (want_query && !tree.query) Fail(entry, source, "success without a query");
  if (!want_query && !tree.condition) Fail(entry, source, "success without a condition");
  if (tree.query) {
    const ast::Query& q = *tree.query;
    CheckRange(entry, source, q.range, "query");
    for (const ast::Projection& p : q.projections) {
      CheckRange(entry, source, p.range, "projection");
      CheckExpr(entry, source, p.expr);
    }
    CheckExpr(entry, source, q.where);
    for (const ast::Expr* g : q.group_by) CheckExpr(entry, source, g);
  }
  if (tree.condition) {
    CheckRange(entry, source, tree.condition->range, "condition");
    CheckExpr(entry, source, tree.condition->expr);
  }
}

void Exercise(const char* entry, const Source& source, const Result<ast::Ast>& result,
              bool want_query) {
  if (result.ok()) {
    CheckAst(entry, source, *result, want_query);
    ast::PrintOptions with_ranges;
    with_ranges.ranges = true;
    g_sink = g_sink + ast::Print(*result).size() + ast::Print(*result, with_ranges).size();
    return;
  }
  const twinq::Diagnostics& diags = result.diagnostics();
  if (diags.empty()) Fail(entry, source, "failure without diagnostics");
  for (const Diagnostic& d : diags) {
    CheckRange(entry, source, d.range, "diagnostic");
    if (d.code == DiagCode::kInternal) {
      Fail(entry, source, "internal error: " + twinq::RenderShort(d, source));
    }
    if (d.message.empty()) Fail(entry, source, "diagnostic without a message");
    g_sink = g_sink + twinq::RenderShort(d, source).size();
  }
  g_sink = g_sink + twinq::Render(diags, source).size();
}

std::string Describe(const Result<ast::Ast>& r, const Source& source) {
  if (!r.ok()) return twinq::Render(r.diagnostics(), source);
  ast::PrintOptions with_ranges;
  with_ranges.ranges = true;
  return ast::Print(*r, with_ranges);
}

// The fast parser against the ANTLR parser, and the default entry point (fast, falling back to
// ANTLR) against the ANTLR parser alone. Returns the ANTLR result for Exercise.
Result<ast::Ast> Differential(const char* entry, const Source& source, bool query) {
  namespace pi = twinq::parse_internal;
  Result<ast::Ast> antlr = query ? twinq::ParseQuery(source, twinq::ParserImpl::kAntlrOnly)
                                 : twinq::ParseCondition(source, twinq::ParserImpl::kAntlrOnly);
  std::optional<ast::Ast> fast =
      pi::FastParse(source, query ? pi::FastEntry::kQuery : pi::FastEntry::kCondition);
  if (fast) {
    if (!antlr.ok()) {
      Fail(entry, source, "the fast parser accepts what ANTLR rejects: " + Describe(antlr, source));
    }
    std::string diff;
    if (!pi::SameAst(*fast, *antlr, &diff)) {
      Fail(entry, source, "fast and ANTLR ASTs differ: " + diff);
    }
  }
  Result<ast::Ast> dflt = query ? twinq::ParseQuery(source) : twinq::ParseCondition(source);
  if (dflt.ok() != antlr.ok()) Fail(entry, source, "default and ANTLR parsers disagree");
  if (dflt.ok()) {
    std::string diff;
    if (!pi::SameAst(*dflt, *antlr, &diff))
      Fail(entry, source, "default and ANTLR differ: " + diff);
  } else if (Describe(dflt, source) != Describe(antlr, source)) {
    Fail(entry, source, "default and ANTLR diagnostics differ");
  }
  return antlr;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Source source("<fuzz>", std::string(reinterpret_cast<const char*>(data), size));
  Exercise("ParseQuery", source, Differential("ParseQuery", source, /*query=*/true),
           /*want_query=*/true);
  Exercise("ParseCondition", source, Differential("ParseCondition", source, /*query=*/false),
           /*want_query=*/false);
  return 0;
}
