// Internal to engine/parse: the ANTLR parse tree to our AST. Only parser.cc includes this.
#ifndef TWINQ_ENGINE_PARSE_BUILD_AST_H_
#define TWINQ_ENGINE_PARSE_BUILD_AST_H_

#include <string>
#include <unordered_map>
#include <vector>

#include "TwinQueryParser.h"
#include "engine/ast/ast.h"
#include "engine/common/diagnostic.h"
#include "engine/common/source.h"

namespace twinq::parse_internal {

// What the lexical pass learned about the tokens, indexed by token index.
struct TokenTable {
  // Byte offset of every code point index of the ANTLR input (plus one past the end).
  std::vector<uint32_t> cp_to_byte;
  std::unordered_map<size_t, std::string> strings;  // decoded STRING tokens
  std::unordered_map<size_t, double> numbers;       // NUMBER tokens

  SourceRange RangeOf(const antlr4::Token* t) const;
  SourceRange RangeOf(antlr4::ParserRuleContext* ctx) const;
};

// Builds the AST for a parse tree free of syntax errors. Semantic problems found on the way
// (reserved words as names, chained comparisons, unknown collections, bad TOP or index values,
// empty IN lists) are appended to `diags`.
void BuildQuery(twinq_grammar::TwinQueryParser::QueryContext* ctx, const Source& source,
                const TokenTable& tokens, ast::Ast* ast, Diagnostics* diags);
void BuildCondition(twinq_grammar::TwinQueryParser::ConditionEntryContext* ctx,
                    const Source& source, const TokenTable& tokens, ast::Ast* ast,
                    Diagnostics* diags);

}  // namespace twinq::parse_internal

#endif  // TWINQ_ENGINE_PARSE_BUILD_AST_H_
