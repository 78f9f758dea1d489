// Diagnostics: a stable code, a source range, a message, and caret rendering.
#ifndef TWINQ_ENGINE_COMMON_DIAGNOSTIC_H_
#define TWINQ_ENGINE_COMMON_DIAGNOSTIC_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/common/source.h"

namespace twinq {

// Stable diagnostic codes, rendered as E<number>. Never renumber; docs/language.md lists them all.
// X-macro: (name, number, short description).
#define TWINQ_DIAG_CODES(X)                                                       \
  /* 1xx: lexical and syntax errors (engine/parse) */                             \
  X(kSyntax, 100, "syntax error")                                                 \
  X(kUnterminatedString, 101, "unterminated string literal")                      \
  X(kBadEscape, 102, "invalid escape sequence in a string")                       \
  X(kBadCharacter, 103, "character not allowed here")                             \
  X(kBadNumber, 104, "invalid or out-of-range number")                            \
  X(kInvalidUtf8, 105, "text is not valid UTF-8")                                 \
  X(kReservedWord, 106, "reserved word used as a name")                           \
  X(kUnknownCollection, 107, "unknown collection")                                \
  X(kChainedComparison, 108, "comparisons do not chain")                          \
  X(kEmptyInList, 110, "empty IN list")                                           \
  X(kBadTop, 111, "TOP needs a non-negative integer")                             \
  X(kBadEscapedName, 112, "malformed [[escaped]] name")                           \
  X(kBadIndex, 113, "array index must be a non-negative integer")                 \
  X(kSelectAsCondition, 114, "a full SELECT query where a condition is expected") \
  X(kEmptyInput, 115, "empty query")                                              \
  /* 12x: limits (engine/common/limits.h) */                                      \
  X(kTooLong, 120, "query text too long")                                         \
  X(kTooNested, 121, "nesting too deep")                                          \
  X(kTooDeep, 122, "expression too deep")                                         \
  X(kTooManyElements, 123, "array literal too long")                              \
  X(kTooManyErrors, 124, "too many errors")                                       \
  X(kInternal, 199, "internal error")                                             \
  /* 2xx: binding and checking (engine/check) */                                  \
  X(kUnknownFunction, 200, "unknown function")                                    \
  X(kArity, 201, "wrong number of arguments")                                     \
  X(kFunctionNotInDialect, 202, "function not available in the strict dialect")   \
  X(kMisplacedAggregate, 210, "aggregate outside SELECT")                         \
  X(kAggregateArgument, 211, "aggregate argument must be a path")                 \
  X(kGroupByProjection, 212, "projection not allowed with GROUP BY")              \
  X(kMixedAggregate, 213, "aggregates mixed with plain projections")              \
  X(kJobsProjection, 214, "devices.jobs allows only SELECT *")                    \
  X(kConditionCollection, 215, "collection not allowed in a condition")           \
  X(kDuplicateAlias, 216, "duplicate result key")                                 \
  X(kBadProjection, 217, "projection must be a path or an aggregate")             \
  X(kJobsAggregate, 218, "devices.jobs does not support aggregates or GROUP BY")

enum class DiagCode : uint16_t {
#define TWINQ_DIAG_ENUM(name, number, desc) name = number,
  TWINQ_DIAG_CODES(TWINQ_DIAG_ENUM)
#undef TWINQ_DIAG_ENUM
};

// "E104".
std::string DiagCodeName(DiagCode code);
// The short description from the table.
std::string_view DiagCodeDescription(DiagCode code);
// Every code, in table order (for docs and tests).
const std::vector<DiagCode>& AllDiagCodes();

enum class Severity : uint8_t { kError, kNote };

struct Diagnostic {
  DiagCode code = DiagCode::kSyntax;
  Severity severity = Severity::kError;
  SourceRange range;
  std::string message;
};

using Diagnostics = std::vector<Diagnostic>;

// Renders one diagnostic:
//   error[E200] <query>:1:20: unknown function 'STARTWITH'; did you mean 'STARTSWITH'?
//    | tags.floor > 2 AND STARTWITH(deviceId, 'b43-')
//    |                    ^~~~~~~~~
std::string Render(const Diagnostic& d, const Source& source);
// Renders all diagnostics, one block each, newline-terminated.
std::string Render(const Diagnostics& ds, const Source& source);
// One-line form without the snippet: "E200 1:20: message".
std::string RenderShort(const Diagnostic& d, const Source& source);

// Damerau-free Levenshtein distance, for did-you-mean suggestions (ASCII case-insensitive).
size_t EditDistanceIgnoreCase(std::string_view a, std::string_view b);
// The closest candidate within a small distance, or empty.
std::string_view ClosestMatch(std::string_view word,
                              const std::vector<std::string_view>& candidates);

}  // namespace twinq

#endif  // TWINQ_ENGINE_COMMON_DIAGNOSTIC_H_
