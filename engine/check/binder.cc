#include "engine/check/binder.h"

#include <fmt/format.h>

#include <cstdint>
#include <cstring>
#include <set>
#include <string_view>
#include <utility>

#include "engine/check/semantics.h"

namespace twinq::check {

namespace {

using ast::Expr;
using ast::ExprKind;
using ast::Op;

StaticType TypeOfValue(const Value& v) {
  switch (v.kind()) {
    case ValueKind::kUndefined:
      return StaticType::kUndefined;
    case ValueKind::kNull:
      return StaticType::kNull;
    case ValueKind::kBool:
      return StaticType::kBool;
    case ValueKind::kNumber:
      return StaticType::kNumber;
    case ValueKind::kString:
      return StaticType::kString;
    case ValueKind::kArray:
      return StaticType::kArray;
    case ValueKind::kObject:
      return StaticType::kObject;
  }
  return StaticType::kAny;
}

// The strings and numbers of an IN list seen so far, for its duplicate check: an open-addressing
// table of indexes into the list (no allocation per element). Strings are equal when their bytes
// are; numbers when == holds (0 and -0 are the same; the parser never makes NaN, which would
// never be equal), as sem::SameJson has it.
class PrimitiveSet {
 public:
  explicit PrimitiveSet(const Array& items) : items_(items) {
    size_t capacity = 16;
    while (capacity < 2 * items.size()) capacity <<= 1;
    slots_.assign(capacity, 0);
    mask_ = capacity - 1;
  }

  // Adds items[i] (a string or a number); false when an equal one was added before.
  bool Insert(size_t i) {
    const Value& v = items_[i];
    for (size_t s = Hash(v) & mask_;; s = (s + 1) & mask_) {
      uint32_t slot = slots_[s];
      if (slot == 0) {
        slots_[s] = static_cast<uint32_t>(i + 1);
        return true;
      }
      if (Same(items_[slot - 1], v)) return false;
    }
  }

 private:
  static uint64_t Mix(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
  }
  static uint64_t Hash(const Value& v) {
    if (v.is_number()) {
      double d = v.as_number() == 0 ? 0.0 : v.as_number();
      uint64_t bits;
      std::memcpy(&bits, &d, sizeof bits);
      return Mix(bits);
    }
    uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a
    for (char c : v.as_string()) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
    return Mix(h);
  }
  static bool Same(const Value& a, const Value& b) {
    if (a.kind() != b.kind()) return false;
    return a.is_number() ? a.as_number() == b.as_number() : a.as_string() == b.as_string();
  }

  const Array& items_;
  std::vector<uint32_t> slots_;  // index + 1 into items_; 0 is empty
  size_t mask_ = 0;
};

// A node whose value is always a boolean or undefined (so `true AND e` is exactly `e`).
bool IsBoolTyped(const BoundExpr& e) {
  if (e.kind == BoundKind::kConst) return e.value.is_bool() || e.value.is_undefined();
  return e.type == StaticType::kBool;
}

class Binder {
 public:
  Binder(const BindOptions& options, Collection collection)
      : options_(options), collection_(collection) {}

  Diagnostics& diags() { return diags_; }

  void Error(DiagCode code, SourceRange range, std::string message) {
    diags_.push_back({code, Severity::kError, range, std::move(message)});
  }

  std::unique_ptr<BoundExpr> Node(BoundKind kind, const Expr& e) {
    auto b = std::make_unique<BoundExpr>();
    b->kind = kind;
    b->node = e.id;
    b->range = e.range;
    return b;
  }

  std::unique_ptr<BoundExpr> Const(const Expr& e, Value v) {
    auto b = Node(BoundKind::kConst, e);
    b->type = TypeOfValue(v);
    b->value = std::move(v);
    return b;
  }

  static bool AllConst(const BoundExpr& b) {
    for (const auto& c : b.children) {
      if (c->kind != BoundKind::kConst) return false;
    }
    return true;
  }

  // The collection prefix is stripped: devices.x, and devices.modules.x / devices.jobs.x when
  // querying that collection. Escaped segments are literal names and never stripped.
  std::vector<PathStep> BindPath(const std::vector<ast::PathSegment>& segs) {
    size_t skip = 0;
    auto is_name = [&](size_t i, std::string_view word) {
      return i < segs.size() && segs[i].kind == ast::PathSegment::Kind::kName && !segs[i].escaped &&
             EqualsIgnoreCase(segs[i].name, word);
    };
    if (segs.size() >= 2 && is_name(0, "devices")) {
      skip = 1;
      if (collection_ == Collection::kModules && segs.size() >= 3 && is_name(1, "modules"))
        skip = 2;
      if (collection_ == Collection::kJobs && segs.size() >= 3 && is_name(1, "jobs")) skip = 2;
      // An index right after the prefix (devices[0]) is not a property path: keep it whole.
      if (segs[skip].kind == ast::PathSegment::Kind::kIndex) skip = 0;
    }
    std::vector<PathStep> steps;
    for (size_t i = skip; i < segs.size(); ++i) {
      PathStep s;
      s.is_index = segs[i].kind == ast::PathSegment::Kind::kIndex;
      s.name = segs[i].name;
      s.index = segs[i].index;
      steps.push_back(std::move(s));
    }
    return steps;
  }

  const FunctionInfo* ResolveFunction(const Expr& e) {
    const FunctionInfo* f = FindFunction(e.name);
    if (f == nullptr) {
      std::vector<std::string_view> names;
      for (const FunctionInfo& info : AllFunctions()) names.push_back(info.name);
      std::string msg = fmt::format("unknown function '{}'", e.name);
      // Also try the spelling without underscores (STARTS_WITH -> STARTSWITH).
      std::string squeezed;
      for (char c : e.name) {
        if (c != '_') squeezed.push_back(c);
      }
      std::string_view guess;
      if (const FunctionInfo* g = FindFunction(squeezed); g != nullptr) {
        guess = g->name;
      } else {
        guess = ClosestMatch(e.name, names);
      }
      if (!guess.empty()) msg += fmt::format("; did you mean '{}'?", guess);
      Error(DiagCode::kUnknownFunction, e.name_range, std::move(msg));
      return nullptr;
    }
    size_t n = e.children.size();
    if (n < f->min_args || n > f->max_args) {
      std::string want = f->min_args == f->max_args ? fmt::format("{}", f->min_args)
                         : f->max_args == SIZE_MAX
                             ? fmt::format("at least {}", f->min_args)
                             : fmt::format("{} or {}", f->min_args, f->max_args);
      Error(DiagCode::kArity, e.range,
            fmt::format("{} takes {} argument{}, got {}: {}", f->name, want,
                        (f->min_args == 1 && f->max_args == 1) ? "" : "s", n, f->signature));
    }
    if (options_.strict && !f->twin_dialect) {
      Error(DiagCode::kFunctionNotInDialect, e.name_range,
            fmt::format("{} is not accepted by IoT Hub twin queries (strict dialect); only "
                        "IS_DEFINED, STARTSWITH, ENDSWITH and the aggregates are",
                        f->name));
    }
    return f;
  }

  std::unique_ptr<BoundExpr> Bind(const Expr& e) {
    switch (e.kind) {
      case ExprKind::kLiteral:
        return Const(e, e.value);
      case ExprKind::kPath: {
        auto b = Node(BoundKind::kPath, e);
        b->path = BindPath(e.path);
        return b;
      }
      case ExprKind::kCall: {
        const FunctionInfo* f = ResolveFunction(e);
        auto b = Node(BoundKind::kCall, e);
        for (const Expr* c : e.children) b->children.push_back(Bind(*c));
        if (f == nullptr) return b;
        if (f->aggregate) {
          Error(DiagCode::kMisplacedAggregate, e.range,
                fmt::format("aggregate {} is allowed only as a SELECT projection", f->name));
          return b;
        }
        b->function = f;
        b->type = f->result;
        if (options_.fold && AllConst(*b) && e.children.size() >= f->min_args &&
            e.children.size() <= f->max_args) {
          std::vector<Value> args;
          for (const auto& c : b->children) args.push_back(c->value);
          return Const(e, CallFunction(f->id, args));
        }
        return b;
      }
      case ExprKind::kUnary: {
        auto b = Node(BoundKind::kUnary, e);
        b->op = e.op;
        b->type = StaticType::kNumber;
        b->children.push_back(Bind(*e.children[0]));
        if (options_.fold && AllConst(*b)) return Const(e, sem::Unary(e.op, b->children[0]->value));
        return b;
      }
      case ExprKind::kBinary: {
        bool cmp = ast::IsComparison(e.op);
        auto b = Node(cmp ? BoundKind::kCompare : BoundKind::kArith, e);
        b->op = e.op;
        b->type = cmp ? StaticType::kBool : StaticType::kNumber;
        b->children.push_back(Bind(*e.children[0]));
        b->children.push_back(Bind(*e.children[1]));
        if (options_.fold && AllConst(*b)) {
          const Value& x = b->children[0]->value;
          const Value& y = b->children[1]->value;
          return Const(e, cmp ? sem::Compare(e.op, x, y) : sem::Arithmetic(e.op, x, y));
        }
        return b;
      }
      case ExprKind::kIn: {
        auto b = Node(BoundKind::kIn, e);
        b->op = e.op;
        b->type = StaticType::kBool;
        b->children.push_back(Bind(*e.children[0]));
        // Duplicates removed (first occurrence kept, by sem::SameJson): primitives through hash
        // sets, so that long lists take linear time; arrays and objects (rare) by comparison.
        // A list without duplicates (the usual case) is shared with the AST, not copied.
        const Array& items = e.value.as_array();
        std::vector<bool> keep;  // sized on the first duplicate
        PrimitiveSet primitives(items);
        bool seen_null = false, seen_false = false, seen_true = false;
        std::vector<size_t> containers;  // indexes into `items` of the kept arrays and objects
        for (size_t i = 0; i < items.size(); ++i) {
          const Value& v = items[i];
          bool fresh = false;
          switch (v.kind()) {
            case ValueKind::kString:
            case ValueKind::kNumber:  // 0 and -0 are the same (SameJson compares with ==)
              fresh = primitives.Insert(i);
              break;
            case ValueKind::kNull:
              fresh = !std::exchange(seen_null, true);
              break;
            case ValueKind::kBool:
              fresh = !std::exchange(v.as_bool() ? seen_true : seen_false, true);
              break;
            default: {
              fresh = true;
              for (size_t u : containers) fresh = fresh && !sem::SameJson(items[u], v);
              if (fresh) containers.push_back(i);
              break;
            }
          }
          if (!fresh) {
            if (keep.empty()) keep.assign(items.size(), true);
            keep[i] = false;
          }
        }
        if (keep.empty()) {
          b->value = e.value;
        } else {
          Array unique;
          for (size_t i = 0; i < items.size(); ++i) {
            if (keep[i]) unique.push_back(items[i]);
          }
          b->value = Value::MakeArray(std::move(unique));
        }
        if (options_.fold && AllConst(*b)) {
          Value r = sem::In(b->children[0]->value, b->value);
          return Const(e, e.op == Op::kNin ? sem::Not(r) : r);
        }
        return b;
      }
      case ExprKind::kNot: {
        auto child = Bind(*e.children[0]);
        if (options_.fold) {
          if (child->kind == BoundKind::kConst) return Const(e, sem::Not(child->value));
          if (child->kind == BoundKind::kNot && IsBoolTyped(*child->children[0])) {
            return std::move(child->children[0]);  // NOT NOT e = e for boolean e
          }
        }
        auto b = Node(BoundKind::kNot, e);
        b->type = StaticType::kBool;
        b->children.push_back(std::move(child));
        return b;
      }
      case ExprKind::kAnd:
      case ExprKind::kOr:
        return BindLogic(e);
    }
    return Const(e, Value());
  }

  std::unique_ptr<BoundExpr> BindLogic(const Expr& e) {
    bool is_and = e.kind == ExprKind::kAnd;
    BoundKind kind = is_and ? BoundKind::kAnd : BoundKind::kOr;
    auto b = Node(kind, e);
    b->type = StaticType::kBool;
    for (const Expr* c : e.children) {
      auto child = Bind(*c);
      if (options_.fold && child->kind == kind) {  // (a AND b) AND c: associative
        for (auto& g : child->children) b->children.push_back(std::move(g));
      } else {
        b->children.push_back(std::move(child));
      }
    }
    if (!options_.fold) return b;
    // The absorbing constant decides alone: false for AND, true for OR.
    for (const auto& c : b->children) {
      if (c->kind == BoundKind::kConst &&
          (is_and ? sem::IsFalse(c->value) : sem::IsTrue(c->value))) {
        return Const(e, Value::Bool(!is_and));
      }
    }
    if (AllConst(*b)) {
      Value acc = Value::Bool(is_and);
      for (const auto& c : b->children)
        acc = is_and ? sem::And(acc, c->value) : sem::Or(acc, c->value);
      return Const(e, acc);
    }
    // The neutral constant (true for AND, false for OR) can go when every other operand is
    // boolean-typed.
    bool all_bool = true;
    for (const auto& c : b->children) all_bool = all_bool && IsBoolTyped(*c);
    if (all_bool) {
      std::vector<std::unique_ptr<BoundExpr>> kept;
      for (auto& c : b->children) {
        if (c->kind == BoundKind::kConst && c->value.is_bool()) continue;
        kept.push_back(std::move(c));
      }
      b->children = std::move(kept);
      if (b->children.size() == 1) return std::move(b->children[0]);
    }
    return b;
  }

 private:
  BindOptions options_;
  Collection collection_;
  Diagnostics diags_;
};

Collection FromAst(ast::Collection c) {
  switch (c) {
    case ast::Collection::kDevices:
      return Collection::kDevices;
    case ast::Collection::kModules:
      return Collection::kModules;
    case ast::Collection::kJobs:
      return Collection::kJobs;
  }
  return Collection::kDevices;
}

BoundProjection::Kind AggregateKind(FunctionId id) {
  switch (id) {
    case FunctionId::kCount:
      return BoundProjection::Kind::kCount;
    case FunctionId::kAvg:
      return BoundProjection::Kind::kAvg;
    case FunctionId::kSum:
      return BoundProjection::Kind::kSum;
    case FunctionId::kMin:
      return BoundProjection::Kind::kMin;
    default:
      return BoundProjection::Kind::kMax;
  }
}

}  // namespace

Result<BoundQuery> BindQuery(const ast::Query& query, const BindOptions& options) {
  BoundQuery q;
  q.collection = FromAst(query.collection);
  q.top = query.top;
  q.select_all = query.select_all;
  Binder b(options, q.collection);

  if (q.collection == Collection::kJobs) {
    if (!query.select_all && !query.projections.empty()) {
      SourceRange r{query.projections.front().range.begin, query.projections.back().range.end};
      b.Error(DiagCode::kJobsProjection, r, "FROM devices.jobs supports only SELECT *");
    }
    if (!query.group_by.empty()) {
      SourceRange r{query.group_by.front()->range.begin, query.group_by.back()->range.end};
      b.Error(DiagCode::kJobsAggregate, r, "FROM devices.jobs does not support GROUP BY");
    }
  }

  // Projections.
  std::vector<std::pair<std::string, SourceRange>> keys;  // lower-cased static keys
  const ast::Projection* first_path = nullptr;
  const ast::Projection* first_aggregate = nullptr;
  for (size_t i = 0; i < query.projections.size(); ++i) {
    const ast::Projection& p = query.projections[i];
    BoundProjection bp;
    bp.node = p.id;
    bp.range = p.range;
    const Expr& e = *p.expr;
    if (e.kind == ExprKind::kPath) {
      bp.kind = BoundProjection::Kind::kPath;
      bp.path = b.BindPath(e.path);
      if (first_path == nullptr) first_path = &p;
    } else {
      const FunctionInfo* f = FindFunction(e.name);
      if (f != nullptr && !f->aggregate) {
        b.Error(DiagCode::kBadProjection, e.range,
                fmt::format("{}(...) cannot be projected: a projection is a path or an "
                            "aggregate (COUNT, AVG, SUM, MIN, MAX)",
                            f->name));
        continue;
      }
      f = b.ResolveFunction(e);  // unknown name or arity: reported there
      if (f == nullptr) continue;
      if (q.collection == Collection::kJobs) {
        b.Error(DiagCode::kJobsAggregate, e.range, "FROM devices.jobs does not support aggregates");
      }
      bp.kind = AggregateKind(f->id);
      if (f->id != FunctionId::kCount && e.children.size() == 1) {
        if (e.children[0]->kind != ExprKind::kPath) {
          b.Error(DiagCode::kAggregateArgument, e.children[0]->range,
                  fmt::format("the argument of {} must be a property path", f->name));
        } else {
          bp.path = b.BindPath(e.children[0]->path);
        }
      }
      if (first_aggregate == nullptr) first_aggregate = &p;
    }
    if (p.alias) {
      bp.key = *p.alias;
    } else if (bp.kind == BoundProjection::Kind::kPath && !bp.path.empty() &&
               !bp.path.back().is_index) {
      bp.key_from_document = true;
    } else {
      bp.key = fmt::format("${}", i + 1);
    }
    std::string static_key = ToLowerAscii(bp.key_from_document ? bp.path.back().name : bp.key);
    for (const auto& [k, r] : keys) {
      if (k == static_key) {
        b.Error(DiagCode::kDuplicateAlias, p.alias ? p.alias_range : p.range,
                fmt::format("duplicate result key '{}'; give one of the projections another "
                            "name with AS",
                            bp.key_from_document ? bp.path.back().name : bp.key));
        break;
      }
    }
    keys.emplace_back(static_key, p.range);
    q.projections.push_back(std::move(bp));
  }
  q.aggregate = first_aggregate != nullptr;

  for (const Expr* g : query.group_by) q.group_by.push_back(b.BindPath(g->path));
  if (!query.group_by.empty()) {
    if (query.select_all) {
      b.Error(DiagCode::kGroupByProjection, query.group_by.front()->range,
              "SELECT * cannot be combined with GROUP BY; project the grouped paths and "
              "aggregates");
    }
    for (size_t i = 0; i < q.projections.size(); ++i) {
      const BoundProjection p = q.projections[i];
      if (p.kind != BoundProjection::Kind::kPath) continue;
      bool grouped = false;
      for (const auto& g : q.group_by) {
        if (PathKey(g) != PathKey(p.path)) continue;
        // A grouped projection shows its group's value: it reads the GROUP BY path itself. The
        // two may differ in letter case, which selects different keys in a twin holding keys
        // that differ only by case (tags.Floor and tags.floor).
        q.projections[i].path = g;
        grouped = true;
        break;
      }
      if (!grouped) {
        b.Error(DiagCode::kGroupByProjection, p.range,
                fmt::format("'{}' is neither grouped nor aggregated; add it to GROUP BY or "
                            "wrap it in an aggregate",
                            PathText(p.path)));
      }
    }
  } else if (first_path != nullptr && first_aggregate != nullptr) {
    b.Error(DiagCode::kMixedAggregate, first_path->range,
            "plain projections cannot be mixed with aggregates without GROUP BY");
  }

  if (query.where != nullptr) q.where = b.Bind(*query.where);
  if (!b.diags().empty()) return std::move(b.diags());
  return q;
}

Result<BoundCondition> BindCondition(const ast::Condition& condition, const BindOptions& options) {
  BoundCondition c;
  c.collection = FromAst(condition.collection);
  c.all = condition.all;
  Binder b(options, c.collection);
  if (c.collection == Collection::kJobs) {
    b.Error(DiagCode::kConditionCollection, condition.collection_range,
            "a job condition targets devices or devices.modules, not devices.jobs");
  }
  if (condition.expr != nullptr) c.expr = b.Bind(*condition.expr);
  if (!b.diags().empty()) return std::move(b.diags());
  return c;
}

}  // namespace twinq::check
