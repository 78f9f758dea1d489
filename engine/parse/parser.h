// The front end: query text to AST, with positioned diagnostics. Nothing throws: invalid UTF-8,
// over-long or over-deep input and every ANTLR failure become diagnostics.
#ifndef TWINQ_ENGINE_PARSE_PARSER_H_
#define TWINQ_ENGINE_PARSE_PARSER_H_

#include "engine/ast/ast.h"
#include "engine/common/result.h"
#include "engine/common/source.h"

namespace twinq {

// A full query: SELECT [TOP n] ... FROM devices|devices.modules|devices.jobs [WHERE e] [GROUP BY ...].
// On success the Ast's `query` is set.
Result<ast::Ast> ParseQuery(const Source& source);

// A job condition: `*`, a bare expression, or FROM <collection> WHERE <expression>.
// On success the Ast's `condition` is set.
Result<ast::Ast> ParseCondition(const Source& source);

}  // namespace twinq

#endif  // TWINQ_ENGINE_PARSE_PARSER_H_
