// The AST: what was written. Every node has an id and a byte range into the source; no types.
// Nodes live in an arena owned by the Ast. AND and OR chains are flattened into n-ary nodes.
#ifndef TWINQ_ENGINE_AST_AST_H_
#define TWINQ_ENGINE_AST_AST_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/common/source.h"
#include "engine/common/value.h"

namespace twinq::ast {

using NodeId = uint32_t;

enum class ExprKind : uint8_t {
  kLiteral,  // value (a constant; arrays of constants included)
  kPath,     // segments
  kCall,     // name(children...)
  kUnary,    // op children[0]
  kBinary,   // children[0] op children[1]: arithmetic and comparisons
  kIn,       // children[0] IN / NIN value (an array constant)
  kNot,      // NOT children[0]
  kAnd,      // children[0] AND children[1] AND ...
  kOr,       // children[0] OR children[1] OR ...
};

enum class Op : uint8_t {
  kNone,
  kNeg,
  kPos,  // unary - +
  kMul,
  kDiv,
  kMod,
  kAdd,
  kSub,  // arithmetic
  kEq,
  kNe,
  kLt,
  kLe,
  kGt,
  kGe,  // comparison (<> is kNe)
  kIn,
  kNin,  // membership
};

// The printer's name of an operator: "neg", "mul", "eq", "in", ...
const char* OpName(Op op);
bool IsComparison(Op op);
bool IsArithmetic(Op op);

struct PathSegment {
  enum class Kind : uint8_t { kName, kIndex };
  Kind kind = Kind::kName;
  std::string name;      // kName: the name as written (escapes removed)
  uint64_t index = 0;    // kIndex
  bool escaped = false;  // written as [[name]]
  SourceRange range;
};

struct Expr {
  ExprKind kind = ExprKind::kLiteral;
  Op op = Op::kNone;
  NodeId id = 0;
  SourceRange range;
  Value value;                    // kLiteral; the list of kIn
  std::vector<PathSegment> path;  // kPath
  std::string name;               // kCall: the function name as written
  SourceRange name_range;         // kCall
  std::vector<Expr*> children;
  bool parenthesized = false;  // written inside ( )
};

enum class Collection : uint8_t { kDevices, kModules, kJobs };
const char* CollectionName(Collection c);  // "devices", "devices.modules", "devices.jobs"

struct Projection {
  NodeId id = 0;
  SourceRange range;
  Expr* expr = nullptr;  // a path or a call (aggregate)
  std::optional<std::string> alias;
  SourceRange alias_range;
};

struct Query {
  SourceRange range;
  std::optional<uint64_t> top;
  SourceRange top_range;
  bool select_all = false;
  std::vector<Projection> projections;
  Collection collection = Collection::kDevices;
  SourceRange collection_range;
  Expr* where = nullptr;  // may be null
  std::vector<Expr*> group_by;
};

struct Condition {
  SourceRange range;
  bool all = false;       // the condition `*`
  bool has_from = false;  // written with FROM <collection> WHERE
  Collection collection = Collection::kDevices;
  SourceRange collection_range;
  Expr* expr = nullptr;  // null when all
};

class Ast {
 public:
  Ast() = default;
  Ast(Ast&&) = default;
  Ast& operator=(Ast&&) = default;

  Expr* NewExpr(ExprKind kind, SourceRange range) {
    nodes_.push_back(std::make_unique<Expr>());
    Expr* e = nodes_.back().get();
    e->kind = kind;
    e->range = range;
    e->id = next_id_++;
    return e;
  }
  NodeId NewId() { return next_id_++; }
  size_t node_count() const { return nodes_.size(); }

  std::optional<Query> query;
  std::optional<Condition> condition;

 private:
  std::vector<std::unique_ptr<Expr>> nodes_;
  NodeId next_id_ = 1;
};

struct PrintOptions {
  bool ranges = false;  // append @begin:end to every node
};

// Compact one-line printer used by golden tests, e.g.
//   and(eq(tags.building, '43'), eq(tags.floor, 3))
std::string Print(const Expr& e, const PrintOptions& opts = {});
std::string Print(const Query& q, const PrintOptions& opts = {});
std::string Print(const Condition& c, const PrintOptions& opts = {});
std::string Print(const Ast& ast, const PrintOptions& opts = {});
// A path as the printer writes it: tags.[[my-key]].list[0]
std::string PrintPath(const std::vector<PathSegment>& path);
// A constant as the printer writes it: 'str', 3, true, null, undefined, [1, 'a'].
std::string PrintConstant(const Value& v);

}  // namespace twinq::ast

#endif  // TWINQ_ENGINE_AST_AST_H_
