// Internal to engine/parse: the lexical helpers shared by the ANTLR path (parser.cc) and the
// hand-written fast parser (fast_parser.cc): UTF-8 validation, white space, string and number
// decoding, AST depth. Both parsers decode literals with the same code.
#ifndef TWINQ_ENGINE_PARSE_LEXICAL_H_
#define TWINQ_ENGINE_PARSE_LEXICAL_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "engine/ast/ast.h"
#include "engine/common/diagnostic.h"

namespace twinq::parse_internal {

// Returns the byte offset of the first invalid UTF-8 sequence, or npos.
size_t FindInvalidUtf8(std::string_view s);

// Decodes a STRING token (quotes included) that starts at byte `base` of the source. Escapes:
// \' \" \\ \/ \b \f \n \r \t \uXXXX (UTF-16 surrogate pairs combine), and a doubled quote stands
// for one quote. Bad escapes are appended to `diags` (positioned) and make it return false.
bool DecodeString(std::string_view text, uint32_t base, std::string* out, Diagnostics* diags);

// Parses a NUMBER token: decimal (with fraction and exponent) or 0x hex. False when out of range.
bool ParseNumber(std::string_view text, double* out);

// Only white space, as the lexer's WS rule defines it (U+00A0 and U+FEFF included).
bool IsBlank(std::string_view s);

// The depth of an expression tree (a leaf is 1); iterative.
size_t AstDepth(const ast::Expr* root);

}  // namespace twinq::parse_internal

#endif  // TWINQ_ENGINE_PARSE_LEXICAL_H_
