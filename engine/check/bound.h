// The bound IR: paths resolved to canonical steps (collection prefixes stripped), functions
// resolved against the registry, constants folded, IN lists de-duplicated. Every node keeps the
// AST node id and source range it came from, so later phases can point into the query text.
#ifndef TWINQ_ENGINE_CHECK_BOUND_H_
#define TWINQ_ENGINE_CHECK_BOUND_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/ast/ast.h"
#include "engine/check/functions.h"
#include "engine/common/value.h"

namespace twinq::check {

// One step of a resolved path: a property name (matched case-insensitively, DESIGN.md decision 2)
// or an array index.
struct PathStep {
  bool is_index = false;
  std::string name;  // as written in the query
  uint64_t index = 0;
  bool operator==(const PathStep&) const = default;
};

// The canonical text of a path: names lower-cased, joined by '.', indexes as [n]. Two paths with
// the same key name the same property up to letter case (in a twin holding keys that differ
// only by case, different spellings may still select different keys: decision 2).
std::string PathKey(const std::vector<PathStep>& steps);
// The path as the printer writes it (spelling of the query).
std::string PathText(const std::vector<PathStep>& steps);

enum class BoundKind : uint8_t {
  kConst,    // value
  kPath,     // steps
  kCall,     // function(children...)
  kUnary,    // op children[0]
  kArith,    // children[0] op children[1]
  kCompare,  // children[0] op children[1]
  kIn,       // children[0] IN value (op kIn or kNin); value is a de-duplicated array
  kNot,
  kAnd,  // n-ary
  kOr,   // n-ary
};

struct BoundExpr {
  BoundKind kind = BoundKind::kConst;
  ast::Op op = ast::Op::kNone;
  StaticType type = StaticType::kAny;  // kBool means: a boolean or undefined
  ast::NodeId node = 0;
  SourceRange range;
  Value value;
  std::vector<PathStep> path;
  const FunctionInfo* function = nullptr;
  std::vector<std::unique_ptr<BoundExpr>> children;
};

// Printer for golden tests: and(eq($tags.building~any, '43'), ...)~bool
std::string Print(const BoundExpr& e);

enum class Collection : uint8_t { kDevices, kModules, kJobs };
const char* CollectionName(Collection c);

struct BoundProjection {
  enum class Kind : uint8_t { kPath, kCount, kAvg, kSum, kMin, kMax };
  Kind kind = Kind::kPath;
  std::vector<PathStep> path;  // kPath, and the argument of AVG/SUM/MIN/MAX
  // The result key: the alias when given. Otherwise, for a path ending in a name, empty: the
  // executor uses the last segment as spelled in the document. For others, "$<n>" (1-based
  // position in the SELECT list).
  std::string key;
  bool key_from_document = false;
  ast::NodeId node = 0;
  SourceRange range;
};

struct BoundQuery {
  Collection collection = Collection::kDevices;
  std::optional<uint64_t> top;
  bool select_all = false;
  std::vector<BoundProjection> projections;
  std::unique_ptr<BoundExpr> where;  // null when absent
  std::vector<std::vector<PathStep>> group_by;
  bool aggregate = false;  // has aggregates (one row, or one per group)
};

struct BoundCondition {
  Collection collection = Collection::kDevices;  // kDevices or kModules
  bool all = false;                              // `*`
  std::unique_ptr<BoundExpr> expr;               // null when all
};

std::string Print(const BoundQuery& q);
std::string Print(const BoundCondition& c);

}  // namespace twinq::check

#endif  // TWINQ_ENGINE_CHECK_BOUND_H_
