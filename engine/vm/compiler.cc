#include "engine/vm/compiler.h"

#include <fmt/format.h>

#include <algorithm>
#include <memory>

#include "engine/check/semantics.h"
#include "engine/vm/access.h"

namespace twinq::vm {

namespace {

using check::BoundExpr;
using check::BoundKind;
using check::FunctionId;

uint32_t KindMaskForFunction(FunctionId id) {
  using index::Kind;
  switch (id) {
    case FunctionId::kIsDefined:
      return kAllKinds;
    case FunctionId::kIsNull:
      return KindBit(Kind::kNull);
    case FunctionId::kIsBool:
      return KindBit(Kind::kFalse) | KindBit(Kind::kTrue);
    case FunctionId::kIsNumber:
      return KindBit(Kind::kNumber);
    case FunctionId::kIsString:
      return KindBit(Kind::kString);
    case FunctionId::kIsArray:
      return KindBit(Kind::kArray);
    case FunctionId::kIsObject:
      return KindBit(Kind::kObject);
    case FunctionId::kIsPrimitive:
      return KindBit(Kind::kNull) | KindBit(Kind::kFalse) | KindBit(Kind::kTrue) |
             KindBit(Kind::kNumber) | KindBit(Kind::kString);
    default:
      return 0;
  }
}

ast::Op Flip(ast::Op op) {
  switch (op) {
    case ast::Op::kLt:
      return ast::Op::kGt;
    case ast::Op::kLe:
      return ast::Op::kGe;
    case ast::Op::kGt:
      return ast::Op::kLt;
    case ast::Op::kGe:
      return ast::Op::kLe;
    default:
      return op;
  }
}

class Compiler {
 public:
  Compiler(const index::Table& table, const CompileOptions& options, Program* program)
      : table_(table), options_(options), p_(program) {}

  uint32_t NewRegister() { return p_->registers++; }

  // Resolve() once per distinct path of the program (estimates, notes and id checks all ask).
  const ResolvedPath& Resolved(const std::vector<check::PathStep>& steps) {
    for (const auto& [s, r] : resolved_) {
      if (*s == steps) return *r;
    }
    resolved_.emplace_back(&steps, std::make_unique<ResolvedPath>(Resolve(table_, steps)));
    return *resolved_.back().second;
  }

  uint32_t Constant(const Value& v) {
    p_->constants.push_back(v);
    return static_cast<uint32_t>(p_->constants.size() - 1);
  }

  uint32_t Path(const std::vector<check::PathStep>& steps) {
    for (size_t i = 0; i < p_->paths.size(); ++i) {
      if (p_->paths[i] == steps) return static_cast<uint32_t>(i);
    }
    p_->paths.push_back(steps);
    return static_cast<uint32_t>(p_->paths.size() - 1);
  }

  Instruction& Emit(Op op, uint32_t d, uint32_t a = 0, uint32_t b = 0, uint32_t c = 0) {
    Instruction in;
    in.op = op;
    in.d = d;
    in.a = a;
    in.b = b;
    in.c = c;
    p_->code.push_back(std::move(in));
    return p_->code.back();
  }

  // True when `e` compiles to index operations only (no residual).
  static bool Indexable(const BoundExpr& e) {
    switch (e.kind) {
      case BoundKind::kConst:
        return true;
      case BoundKind::kPath:
        return true;  // as a condition: path = true
      case BoundKind::kCompare:
        return (e.children[0]->kind == BoundKind::kPath &&
                e.children[1]->kind == BoundKind::kConst) ||
               (e.children[1]->kind == BoundKind::kPath &&
                e.children[0]->kind == BoundKind::kConst);
      case BoundKind::kIn:
        return e.children[0]->kind == BoundKind::kPath;
      case BoundKind::kCall: {
        if (e.function == nullptr || e.children.empty() || e.children[0]->kind != BoundKind::kPath)
          return false;
        if (KindMaskForFunction(e.function->id) != 0) return true;
        FunctionId id = e.function->id;
        return (id == FunctionId::kStartsWith || id == FunctionId::kEndsWith ||
                id == FunctionId::kContains) &&
               e.children[1]->kind == BoundKind::kConst;
      }
      case BoundKind::kNot:
        return Indexable(*e.children[0]);
      case BoundKind::kAnd:
      case BoundKind::kOr:
        return std::all_of(e.children.begin(), e.children.end(),
                           [](const auto& c) { return Indexable(*c); });
      default:
        return false;
    }
  }

  // Estimated true rows of an indexable term (for ordering); -1 when unknown.
  double Estimate(const BoundExpr& e) {
    if (e.kind == BoundKind::kCompare || e.kind == BoundKind::kIn) {
      const BoundExpr* path =
          e.children[0]->kind == BoundKind::kPath ? e.children[0].get() : e.children[1].get();
      const ResolvedPath& p = Resolved(path->path);
      double present = 0, distinct = 1;
      for (const Candidate& c : p.candidates) {
        present += static_cast<double>(c.column->present().Cardinality());
        distinct =
            std::max<double>(distinct, static_cast<double>(c.column->dictionary().size() +
                                                           c.column->distinct_numbers().size()));
      }
      double per_value = present / distinct;
      if (e.kind == BoundKind::kIn)
        return per_value * static_cast<double>(e.value.as_array().size());
      if (e.op == ast::Op::kEq) return per_value;
      if (e.op == ast::Op::kNe) return present - per_value;
      return present / 3;
    }
    if (e.kind == BoundKind::kCall && e.function != nullptr && !e.children.empty() &&
        e.children[0]->kind == BoundKind::kPath) {
      const ResolvedPath& p = Resolved(e.children[0]->path);
      double present = 0;
      for (const Candidate& c : p.candidates)
        present += static_cast<double>(c.column->present().Cardinality());
      if (e.function->id == FunctionId::kIsDefined) return present;
      return present / 2;
    }
    if (e.kind == BoundKind::kConst)
      return sem::IsTrue(e.value) ? static_cast<double>(table_.live_count()) : 0;
    return static_cast<double>(table_.live_count()) / 2;
  }

  // Compiles `e`; `candidates` is the register whose true rows a residual must cover (or -1:
  // every live row). Returns the register holding the result.
  uint32_t Compile(const BoundExpr& e, int64_t candidates) {
    switch (e.kind) {
      case BoundKind::kConst: {
        uint32_t d = NewRegister();
        Emit(Op::kConst, d, Constant(e.value));
        return d;
      }
      case BoundKind::kPath: {  // a path used as a condition: true where it holds true
        uint32_t d = NewRegister();
        Instruction& in = Emit(Op::kCompare, d, Path(e.path), Constant(Value::Bool(true)));
        in.cmp = ast::Op::kEq;
        in.note = "bool bitmaps";
        return d;
      }
      case BoundKind::kCompare:
        if (Indexable(e)) return CompileCompare(e);
        break;
      case BoundKind::kIn:
        if (Indexable(e)) return CompileIn(e);
        break;
      case BoundKind::kCall:
        if (Indexable(e)) return CompileCall(e);
        break;
      case BoundKind::kNot: {
        uint32_t a = Compile(*e.children[0], candidates);
        uint32_t d = NewRegister();
        Emit(Op::kNot, d, a);
        return d;
      }
      case BoundKind::kAnd:
      case BoundKind::kOr:
        return CompileLogic(e, candidates);
      default:
        break;
    }
    return CompileResidual(e, candidates);
  }

  uint32_t CompileResidual(const BoundExpr& e, int64_t candidates) {
    uint32_t cand;
    if (candidates < 0) {
      cand = NewRegister();
      Emit(Op::kAll, cand);
    } else {
      cand = static_cast<uint32_t>(candidates);
    }
    p_->residuals.push_back(&e);
    uint32_t d = NewRegister();
    Instruction& in = Emit(Op::kResidual, d, static_cast<uint32_t>(p_->residuals.size() - 1), cand,
                           options_.optimize ? 1 : 0);
    in.note = options_.optimize ? "once per distinct value of its path, or chunked over the rows"
                                : "chunked evaluation over candidate rows";
    return d;
  }

  bool IsIdPath(const std::vector<check::PathStep>& path) {
    if (path.size() != 1 || path[0].is_index || !EqualsIgnoreCase(path[0].name, "deviceId"))
      return false;
    const ResolvedPath& p = Resolved(path);
    return p.candidates.size() == 1 && p.candidates[0].column->path()[0].name == "deviceId";
  }

  std::string AccessNote(const std::vector<check::PathStep>& path, const Value& c) {
    const ResolvedPath& p = Resolved(path);
    if (p.candidates.empty()) return "no such path: undefined everywhere";
    const index::Column& col = *p.candidates[0].column;
    std::string what;
    if (c.is_string()) {
      what = col.has_string_postings() ? "dictionary + postings" : "dictionary + code scan";
    } else if (c.is_number()) {
      what = !col.number_postings().empty() ? "number postings" : "number scan";
    } else if (c.is_bool() || c.is_null()) {
      what = "kind bitmaps";
    } else {
      what = "never defined";
    }
    if (p.candidates.size() > 1) what += fmt::format(", {} case variants", p.candidates.size());
    return what;
  }

  uint32_t CompileCompare(const BoundExpr& e) {
    bool path_left = e.children[0]->kind == BoundKind::kPath;
    const BoundExpr& path = path_left ? *e.children[0] : *e.children[1];
    const Value& c = path_left ? e.children[1]->value : e.children[0]->value;
    ast::Op op = path_left ? e.op : Flip(e.op);
    uint32_t d = NewRegister();
    if (IsIdPath(path.path) && (op == ast::Op::kEq)) {
      Instruction& in = Emit(Op::kIdLookup, d, Path(path.path), Constant(c));
      in.cmp = ast::Op::kEq;
      in.note = "id lookup";
      in.estimate = 1;
      return d;
    }
    Instruction& in = Emit(Op::kCompare, d, Path(path.path), Constant(c));
    in.cmp = op;
    in.note = AccessNote(path.path, c);
    in.estimate = Estimate(e);
    return d;
  }

  uint32_t CompileIn(const BoundExpr& e) {
    const BoundExpr& path = *e.children[0];
    uint32_t d = NewRegister();
    if (IsIdPath(path.path)) {
      Instruction& in = Emit(Op::kIdLookup, d, Path(path.path), Constant(e.value));
      in.cmp = ast::Op::kIn;
      in.note = fmt::format("id lookup of {} ids", e.value.as_array().size());
      in.estimate = static_cast<double>(e.value.as_array().size());
    } else {
      Instruction& in = Emit(Op::kIn, d, Path(path.path), Constant(e.value));
      in.note = fmt::format("{} postings lookups", e.value.as_array().size());
      in.estimate = Estimate(e);
    }
    if (e.op == ast::Op::kNin) {
      uint32_t n = NewRegister();
      Emit(Op::kNot, n, d);
      return n;
    }
    return d;
  }

  uint32_t CompileCall(const BoundExpr& e) {
    const BoundExpr& path = *e.children[0];
    uint32_t d = NewRegister();
    uint32_t mask = KindMaskForFunction(e.function->id);
    if (mask != 0) {
      Instruction& in = Emit(Op::kIsKind, d, Path(path.path), mask);
      in.note = "kind bitmaps";
      in.estimate = Estimate(e);
      return d;
    }
    const Value& c = e.children[1]->value;
    if (e.function->id == FunctionId::kStartsWith) {
      bool ids = options_.optimize && IsIdPath(path.path);
      Instruction& in = Emit(Op::kStartsWith, d, Path(path.path), Constant(c), ids ? 1 : 0);
      in.note = ids ? "id order range" : "dictionary code range";
      in.estimate = Estimate(e);
      return d;
    }
    Instruction& in = Emit(Op::kStringMatch, d, Path(path.path), Constant(c),
                           e.function->id == FunctionId::kEndsWith ? 0 : 1);
    in.note = "dictionary scan";
    in.estimate = Estimate(e);
    return d;
  }

  // `e` as `path op number` with the path on the left, for op one of < <= > >=.
  static bool NumberBound(const BoundExpr& e, const BoundExpr** path, ast::Op* op,
                          const Value** c) {
    if (e.kind != BoundKind::kCompare || e.children.size() != 2) return false;
    bool left = e.children[0]->kind == BoundKind::kPath;
    const BoundExpr& p = left ? *e.children[0] : *e.children[1];
    const BoundExpr& k = left ? *e.children[1] : *e.children[0];
    if (p.kind != BoundKind::kPath || k.kind != BoundKind::kConst || !k.value.is_number())
      return false;
    ast::Op o = left ? e.op : Flip(e.op);
    if (o != ast::Op::kLt && o != ast::Op::kLe && o != ast::Op::kGt && o != ast::Op::kGe)
      return false;
    *path = &p;
    *op = o;
    *c = &k.value;
    return true;
  }

  // A term of an AND/OR: one operand, or (AND only) a lower and an upper bound of one path.
  struct Term {
    const BoundExpr* e = nullptr;
    const BoundExpr* upper = nullptr;  // set: e is the lower bound, a NumberRange
  };

  // Pairs `p > a` / `p >= a` with `p < b` / `p <= b` of the same path (same spelling) in the
  // operands of an AND: both comparisons are defined on the same rows (the path's numbers), so
  // their AND is one interval.
  static std::vector<Term> MergeRanges(const std::vector<const BoundExpr*>& operands) {
    std::vector<Term> out;
    std::vector<bool> used(operands.size(), false);
    for (size_t i = 0; i < operands.size(); ++i) {
      if (used[i]) continue;
      used[i] = true;
      Term t{operands[i], nullptr};
      const BoundExpr* pi = nullptr;
      ast::Op oi = ast::Op::kNone;
      const Value* ci = nullptr;
      if (NumberBound(*operands[i], &pi, &oi, &ci)) {
        bool lower = oi == ast::Op::kGt || oi == ast::Op::kGe;
        for (size_t j = i + 1; j < operands.size(); ++j) {
          const BoundExpr* pj = nullptr;
          ast::Op oj = ast::Op::kNone;
          const Value* cj = nullptr;
          if (used[j] || !NumberBound(*operands[j], &pj, &oj, &cj) || pj->path != pi->path)
            continue;
          bool lower_j = oj == ast::Op::kGt || oj == ast::Op::kGe;
          if (lower_j == lower) continue;
          used[j] = true;
          t = lower ? Term{operands[i], operands[j]} : Term{operands[j], operands[i]};
          break;
        }
      }
      out.push_back(t);
    }
    return out;
  }

  // Estimated rows of lo <(=) path <(=) hi from the columns' number counts and extremes.
  double EstimateRange(const BoundExpr& lower, const BoundExpr& upper) {
    const BoundExpr* p = nullptr;
    ast::Op op = ast::Op::kNone;
    const Value *lo = nullptr, *hi = nullptr;
    NumberBound(lower, &p, &op, &lo);
    NumberBound(upper, &p, &op, &hi);
    const ResolvedPath& rp = Resolved(p->path);
    double rows = 0;
    for (const Candidate& c : rp.candidates) {
      const index::ColumnStats& st = c.column->stats();
      double n = static_cast<double>(st.kind_counts[static_cast<size_t>(index::Kind::kNumber)]);
      double a = std::max(lo->as_number(), st.min_number);
      double b = std::min(hi->as_number(), st.max_number);
      if (n == 0 || b < a) continue;
      double width = st.max_number - st.min_number;
      rows += width > 0 ? n * std::min(1.0, (b - a) / width) : n;
    }
    return rows;
  }

  uint32_t CompileRange(const Term& t) {
    const BoundExpr *p = nullptr, *p2 = nullptr;
    ast::Op lo_op = ast::Op::kNone, hi_op = ast::Op::kNone;
    const Value *lo = nullptr, *hi = nullptr;
    NumberBound(*t.e, &p, &lo_op, &lo);
    NumberBound(*t.upper, &p2, &hi_op, &hi);
    uint32_t d = NewRegister();
    Instruction& in = Emit(Op::kNumberRange, d, Path(p->path), Constant(*lo), Constant(*hi));
    in.cmp = lo_op;
    in.cmp2 = hi_op;
    in.note = "number interval (postings or one scan)";
    in.estimate = EstimateRange(*t.e, *t.upper);
    return d;
  }

  uint32_t CompileTerm(const Term& t, int64_t candidates) {
    return t.upper != nullptr ? CompileRange(t) : Compile(*t.e, candidates);
  }

  uint32_t CompileLogic(const BoundExpr& e, int64_t candidates) {
    bool is_and = e.kind == BoundKind::kAnd;
    std::vector<const BoundExpr*> operands;
    for (const auto& c : e.children) operands.push_back(c.get());
    std::vector<Term> order;
    if (options_.optimize && is_and) {
      order = MergeRanges(operands);
    } else {
      for (const BoundExpr* c : operands) order.push_back(Term{c, nullptr});
    }
    if (options_.optimize) {
      // Index terms first, the most selective first for AND (least for OR); residuals last,
      // so they see the fewest candidate rows.
      std::vector<std::pair<double, Term>> keyed;
      for (const Term& t : order) {
        bool indexable = t.upper != nullptr || Indexable(*t.e);
        double est = t.upper != nullptr ? EstimateRange(*t.e, *t.upper)
                     : indexable        ? Estimate(*t.e)
                                        : 1e300;
        if (!is_and && indexable) est = -est;
        keyed.emplace_back(est, t);
      }
      std::stable_sort(keyed.begin(), keyed.end(),
                       [](const auto& a, const auto& b) { return a.first < b.first; });
      for (size_t i = 0; i < keyed.size(); ++i) order[i] = keyed[i].second;
    }
    if (order.size() == 1) return CompileTerm(order[0], candidates);
    uint32_t acc = NewRegister();
    uint32_t first = CompileTerm(order[0], candidates);
    Emit(Op::kMove, acc, first);
    std::vector<size_t> jumps;
    for (size_t i = 1; i < order.size(); ++i) {
      int64_t cand = candidates;
      if (options_.optimize) {
        uint32_t c = NewRegister();
        Emit(Op::kCandidates, c, acc, is_and ? 0 : 1);
        if (candidates >= 0) Emit(Op::kAnd, c, c, static_cast<uint32_t>(candidates));
        jumps.push_back(p_->code.size());
        Emit(Op::kJumpIfEmpty, 0, c, 0);
        cand = c;
      }
      uint32_t r = CompileTerm(order[i], cand);
      Emit(is_and ? Op::kAnd : Op::kOr, acc, acc, r);
    }
    for (size_t j : jumps) p_->code[j].b = static_cast<uint32_t>(p_->code.size());
    if (!jumps.empty()) Emit(Op::kMove, acc, acc);  // the jump target
    return acc;
  }

 private:
  const index::Table& table_;
  CompileOptions options_;
  Program* p_;
  // Keyed by the bound IR's path (alive while compiling), compared by value.
  std::vector<std::pair<const std::vector<check::PathStep>*, std::unique_ptr<ResolvedPath>>>
      resolved_;
};

}  // namespace

Program CompileFilter(const check::BoundExpr* where, const index::Table& table,
                      const CompileOptions& options) {
  Program p;
  p.modules = table.modules();
  Compiler c(table, options, &p);
  uint32_t result;
  if (where == nullptr) {
    result = c.NewRegister();
    c.Emit(Op::kAll, result);
  } else {
    result = c.Compile(*where, -1);
  }
  c.Emit(Op::kResult, 0, result);
  return p;
}

}  // namespace twinq::vm
