// Internal to engine/parse (and its tests and fuzzers): the hand-written fast parser.
//
// A lexer and a recursive-descent (precedence-climbing) parser for the whole language of
// grammar/TwinQuery.g4: job conditions (`*`, expressions, FROM <collection> WHERE ...) and full
// SELECT queries. It builds exactly the AST the ANTLR path builds (parser.cc + build_ast.cc):
// the same nodes in the same order (ids), the same source ranges, the same decoded strings and
// numbers. It never reports anything: on any input it is not sure to handle exactly like the
// ANTLR path (every syntax, lexical or semantic error, a limit reached, a leading `[[`, which
// may open an escaped name or a nested array), it declines, and ParseQuery / ParseCondition run
// the ANTLR path, which stays the only source of diagnostics. The ANTLR path is its oracle:
// tests/unit/parse/fast_parser_test.cc and fuzz/fuzz_parse.cc compare the two with SameAst.
#ifndef TWINQ_ENGINE_PARSE_FAST_PARSER_H_
#define TWINQ_ENGINE_PARSE_FAST_PARSER_H_

#include <cstdint>
#include <optional>
#include <string>

#include "engine/ast/ast.h"
#include "engine/common/source.h"

namespace twinq::parse_internal {

enum class FastEntry : uint8_t { kQuery, kCondition };

// The fast parser alone: the AST, or nullopt when it declines (then `*why`, if given, points to
// a short static description of the reason, e.g. "syntax", "lexical", "leading [[").
// Checks everything itself (size limit, UTF-8, blank input, nesting and depth limits).
std::optional<ast::Ast> FastParse(const Source& source, FastEntry entry,
                                  const char** why = nullptr);

// The same for text that parser.cc has already checked: at most limits::kMaxQueryBytes bytes,
// valid UTF-8 and not blank.
std::optional<ast::Ast> FastParseChecked(const Source& source, FastEntry entry,
                                         const char** why = nullptr);

// True when `a` and `b` are the same AST: node count, every node's kind, operator, id, range,
// parenthesized flag, value (numbers bit for bit), path segments (kind, name, index, escaped,
// range), call name and its range; the query's and condition's fields and ranges. Otherwise
// false, with the first difference described in `*difference` (if given).
bool SameAst(const ast::Ast& a, const ast::Ast& b, std::string* difference = nullptr);

}  // namespace twinq::parse_internal

#endif  // TWINQ_ENGINE_PARSE_FAST_PARSER_H_
