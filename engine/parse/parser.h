// The front end: query text to AST, with positioned diagnostics. Nothing throws: invalid UTF-8,
// over-long or over-deep input and every ANTLR failure become diagnostics.
//
// Two parsers: a hand-written fast parser (fast_parser.h) takes every input it is sure to parse
// exactly like the ANTLR parser and declines the rest (all errors included); the ANTLR parser
// (grammar/TwinQuery.g4) parses whatever the fast one declines, gives every diagnostic, and is
// the fast parser's oracle in the tests and fuzzers.
#ifndef TWINQ_ENGINE_PARSE_PARSER_H_
#define TWINQ_ENGINE_PARSE_PARSER_H_

#include <cstdint>

#include "engine/ast/ast.h"
#include "engine/common/result.h"
#include "engine/common/source.h"

namespace twinq {

// Which parser ParseQuery / ParseCondition run.
enum class ParserImpl : uint8_t {
  kDefault,    // the fast parser; the ANTLR parser on whatever it declines
  kAntlrOnly,  // the ANTLR parser alone (the oracle; for tests, fuzzers and benchmarks)
};

// A full query: SELECT [TOP n] ... FROM devices|devices.modules|devices.jobs [WHERE e] [GROUP BY
// ...]. On success the Ast's `query` is set.
Result<ast::Ast> ParseQuery(const Source& source, ParserImpl impl = ParserImpl::kDefault);

// A job condition: `*`, a bare expression, or FROM <collection> WHERE <expression>.
// On success the Ast's `condition` is set.
Result<ast::Ast> ParseCondition(const Source& source, ParserImpl impl = ParserImpl::kDefault);

}  // namespace twinq

#endif  // TWINQ_ENGINE_PARSE_PARSER_H_
