#include "engine/vm/interpreter.h"

#include <algorithm>
#include <unordered_map>

#include "engine/check/functions.h"
#include "engine/check/semantics.h"
#include "engine/vm/access.h"

namespace twinq::vm {

using index::Bitmap;
using index::Column;
using index::Kind;

namespace {

constexpr uint32_t kBool = (1u << 1) | (1u << 2);

// The kind mask of the JSON type of a constant, or 0 when comparisons with it are never
// defined (arrays, objects, undefined).
uint32_t TypeMask(const Value& v) {
  switch (v.kind()) {
    case ValueKind::kNull:
      return KindBit(Kind::kNull);
    case ValueKind::kBool:
      return kBool;
    case ValueKind::kNumber:
      return KindBit(Kind::kNumber);
    case ValueKind::kString:
      return KindBit(Kind::kString);
    default:
      return 0;
  }
}

Bitmap UnionPostings(const std::vector<Bitmap>& postings, size_t begin, size_t end) {
  Bitmap out;
  for (size_t i = begin; i < end; ++i) out |= postings[i];
  return out;
}

// Rows of a column whose string code lies in [lo, hi).
Bitmap StringCodeRange(const Column& c, uint32_t lo, uint32_t hi) {
  if (lo >= hi) return Bitmap();
  if (c.has_string_postings() && c.dictionary().size() > 0) {
    size_t n = c.dictionary().size();
    if (hi - lo <= n / 2) return UnionPostings(c.string_postings_list(), lo, hi);
    return c.rows(Kind::kString) - (UnionPostings(c.string_postings_list(), 0, lo) |
                                    UnionPostings(c.string_postings_list(), hi, n));
  }
  const index::DenseView& d = c.dense();
  const std::vector<uint32_t>& rows = d.rows[static_cast<size_t>(Kind::kString)];
  const std::vector<uint32_t>& codes = c.codes();
  std::vector<uint32_t> hit;
  for (size_t i = 0; i < codes.size(); ++i) {
    if (codes[i] >= lo && codes[i] < hi) hit.push_back(rows[i]);
  }
  return Bitmap::Of(hit);
}

// Rows of a column whose string code is marked.
Bitmap StringCodeSet(const Column& c, const std::vector<bool>& marked) {
  if (c.has_string_postings() && c.dictionary().size() > 0) {
    Bitmap out;
    for (size_t i = 0; i < marked.size(); ++i) {
      if (marked[i]) out |= c.string_posting(static_cast<uint32_t>(i));
    }
    return out;
  }
  const index::DenseView& d = c.dense();
  const std::vector<uint32_t>& rows = d.rows[static_cast<size_t>(Kind::kString)];
  std::vector<uint32_t> hit;
  for (size_t i = 0; i < c.codes().size(); ++i) {
    if (marked[c.codes()[i]]) hit.push_back(rows[i]);
  }
  return Bitmap::Of(hit);
}

// Rows of a column whose number satisfies `op c`.
Bitmap NumberMatch(const Column& col, ast::Op op, double c) {
  const std::vector<double>& distinct = col.distinct_numbers();
  if (!col.number_postings().empty()) {
    size_t lb = std::lower_bound(distinct.begin(), distinct.end(), c) - distinct.begin();
    size_t ub = std::upper_bound(distinct.begin(), distinct.end(), c) - distinct.begin();
    size_t n = distinct.size();
    size_t begin = 0, end = 0;
    bool complement = false;
    switch (op) {
      case ast::Op::kEq:
        begin = lb, end = ub;
        break;
      case ast::Op::kNe:
        begin = lb, end = ub, complement = true;
        break;
      case ast::Op::kLt:
        begin = 0, end = lb;
        break;
      case ast::Op::kLe:
        begin = 0, end = ub;
        break;
      case ast::Op::kGt:
        begin = ub, end = n;
        break;
      case ast::Op::kGe:
        begin = lb, end = n;
        break;
      default:
        return Bitmap();
    }
    if (!complement && end - begin <= n / 2)
      return UnionPostings(col.number_postings(), begin, end);
    Bitmap inside = UnionPostings(col.number_postings(), begin, end);
    if (complement) return col.rows(Kind::kNumber) - inside;
    return col.rows(Kind::kNumber) - (UnionPostings(col.number_postings(), 0, begin) |
                                      UnionPostings(col.number_postings(), end, n));
  }
  const index::DenseView& d = col.dense();
  const std::vector<uint32_t>& rows = d.rows[static_cast<size_t>(Kind::kNumber)];
  const std::vector<double>& v = col.numbers();
  std::vector<uint32_t> hit;
  switch (op) {
    case ast::Op::kEq:
      for (size_t i = 0; i < v.size(); ++i)
        if (v[i] == c) hit.push_back(rows[i]);
      break;
    case ast::Op::kNe:
      for (size_t i = 0; i < v.size(); ++i)
        if (v[i] != c) hit.push_back(rows[i]);
      break;
    case ast::Op::kLt:
      for (size_t i = 0; i < v.size(); ++i)
        if (v[i] < c) hit.push_back(rows[i]);
      break;
    case ast::Op::kLe:
      for (size_t i = 0; i < v.size(); ++i)
        if (v[i] <= c) hit.push_back(rows[i]);
      break;
    case ast::Op::kGt:
      for (size_t i = 0; i < v.size(); ++i)
        if (v[i] > c) hit.push_back(rows[i]);
      break;
    case ast::Op::kGe:
      for (size_t i = 0; i < v.size(); ++i)
        if (v[i] >= c) hit.push_back(rows[i]);
      break;
    default:
      break;
  }
  return Bitmap::Of(hit);
}

// Rows of one column (all its rows: the caller restricts to the candidate's rows) where
// `value op c` is true, and the rows of c's JSON type (where the comparison is defined).
void CompareColumn(const Column& col, ast::Op op, const Value& c, Bitmap* t, Bitmap* same_type) {
  switch (c.kind()) {
    case ValueKind::kNull:
      *same_type = col.rows(Kind::kNull);
      if (op == ast::Op::kEq) {
        *t = *same_type;
      } else if (op != ast::Op::kNe) {
        *same_type = Bitmap();  // null < null: undefined
      }
      return;
    case ValueKind::kBool: {
      *same_type = col.rows(Kind::kFalse) | col.rows(Kind::kTrue);
      for (bool b : {false, true}) {
        if (sem::IsTrue(sem::Compare(op, Value::Bool(b), c)))
          *t |= col.rows(b ? Kind::kTrue : Kind::kFalse);
      }
      return;
    }
    case ValueKind::kNumber:
      *same_type = col.rows(Kind::kNumber);
      *t = NumberMatch(col, op, c.as_number());
      return;
    case ValueKind::kString: {
      *same_type = col.rows(Kind::kString);
      const index::Dictionary& dict = col.dictionary();
      const std::string& s = c.as_string();
      uint32_t lb = dict.LowerBound(s), ub = dict.UpperBound(s),
               n = static_cast<uint32_t>(dict.size());
      switch (op) {
        case ast::Op::kEq:
          *t = StringCodeRange(col, lb, ub);
          break;
        case ast::Op::kNe:
          *t = *same_type - StringCodeRange(col, lb, ub);
          break;
        case ast::Op::kLt:
          *t = StringCodeRange(col, 0, lb);
          break;
        case ast::Op::kLe:
          *t = StringCodeRange(col, 0, ub);
          break;
        case ast::Op::kGt:
          *t = StringCodeRange(col, ub, n);
          break;
        case ast::Op::kGe:
          *t = StringCodeRange(col, lb, n);
          break;
        default:
          break;
      }
      return;
    }
    default:
      return;
  }
}

TruthSet ComparePath(const ResolvedPath& p, ast::Op op, const Value& c) {
  TruthSet out;
  for (const Candidate& cand : p.candidates) {
    Bitmap t, same;
    CompareColumn(*cand.column, op, c, &t, &same);
    if (!cand.whole) {
      t &= cand.rows;
      same &= cand.rows;
    }
    out.f |= same - t;
    out.t |= t;
  }
  return out;
}

TruthSet InPath(const ResolvedPath& p, const Value& list) {
  TruthSet out;
  uint32_t types = 0;
  bool never_false = false;  // an element whose comparison is never false (null, array, ...)
  for (const Value& e : list.as_array()) {
    TruthSet one = ComparePath(p, ast::Op::kEq, e);
    out.t |= one.t;
    uint32_t m = TypeMask(e);
    if (m == 0 || m == KindBit(Kind::kNull)) never_false = true;
    types |= m;
  }
  // x IN [c1..cn] is false only where every x = ci is false: impossible when the elements have
  // several JSON types (a value has one type) or one of them is never false.
  if (!never_false &&
      (types == kBool || types == KindBit(Kind::kNumber) || types == KindBit(Kind::kString))) {
    for (size_t c = 0; c < p.candidates.size(); ++c) out.f |= p.RowsOfKinds(c, types);
    out.f -= out.t;
  }
  return out;
}

TruthSet IdLookup(const index::Table& table, ast::Op op, const Value& constant) {
  TruthSet out;
  std::vector<Value> ids;
  if (op == ast::Op::kIn) {
    ids = constant.as_array();
  } else {
    ids.push_back(constant);
  }
  bool all_strings = true;
  std::vector<uint32_t> hit;
  for (const Value& id : ids) {
    if (!id.is_string()) {
      all_strings = false;
      continue;
    }
    if (!table.modules()) {
      if (auto row = table.FindRow(id.as_string())) hit.push_back(*row);
      continue;
    }
    // Module twins: every module of the device, a contiguous run of the id order.
    const std::vector<uint32_t>& order = table.order();
    auto it = std::lower_bound(
        order.begin(), order.end(), id.as_string(),
        [&](uint32_t row, const std::string& want) { return table.device_id(row) < want; });
    for (; it != order.end() && table.device_id(*it) == id.as_string(); ++it) hit.push_back(*it);
  }
  std::sort(hit.begin(), hit.end());
  out.t = Bitmap::Of(hit);
  if (all_strings) out.f = table.live() - out.t;  // deviceId is a string in every twin
  return out;
}

uint32_t KindMaskOf(uint32_t operand) { return operand; }

}  // namespace

Bitmap Run(const Program& program, const index::Table& table, Trace* trace) {
  std::vector<TruthSet> r(program.registers);
  std::vector<ResolvedPath> paths(program.paths.size());
  std::vector<bool> resolved(program.paths.size(), false);
  auto path = [&](uint32_t p) -> const ResolvedPath& {
    if (!resolved[p]) {
      paths[p] = Resolve(table, program.paths[p]);
      resolved[p] = true;
    }
    return paths[p];
  };
  const Bitmap& live = table.live();
  if (trace != nullptr) trace->true_rows.assign(program.code.size(), -1);
  size_t pc = 0;
  while (pc < program.code.size()) {
    const Instruction& in = program.code[pc];
    size_t next = pc + 1;
    switch (in.op) {
      // Const: a constant truth for every row; only true and false are truths.
      case Op::kConst: {
        const Value& v = program.constants[in.a];
        r[in.d] = TruthSet{};
        if (sem::IsTrue(v)) r[in.d].t = live;
        if (sem::IsFalse(v)) r[in.d].f = live;
        break;
      }
      case Op::kAll:
        r[in.d] = TruthSet{live, Bitmap()};
        break;
      // Compare: defined only where the path holds a value of the constant's JSON type.
      case Op::kCompare:
        r[in.d] = ComparePath(path(in.a), in.cmp, program.constants[in.b]);
        break;
      case Op::kIn:
        r[in.d] = InPath(path(in.a), program.constants[in.b]);
        break;
      // IsKind: IS_DEFINED and the IS_* tests are always true or false, never undefined.
      case Op::kIsKind: {
        const ResolvedPath& p = path(in.a);
        TruthSet s;
        for (size_t c = 0; c < p.candidates.size(); ++c) s.t |= p.RowsOfKinds(c, KindMaskOf(in.b));
        s.f = live - s.t;
        r[in.d] = std::move(s);
        break;
      }
      // StartsWith: a prefix is a contiguous range of dictionary codes.
      case Op::kStartsWith: {
        const ResolvedPath& p = path(in.a);
        const Value& prefix = program.constants[in.b];
        TruthSet s;
        if (prefix.is_string()) {
          for (size_t c = 0; c < p.candidates.size(); ++c) {
            const Column& col = *p.candidates[c].column;
            auto [lo, hi] = col.dictionary().PrefixRange(prefix.as_string());
            Bitmap t = StringCodeRange(col, lo, hi);
            if (!p.candidates[c].whole) t &= p.candidates[c].rows;
            s.f |= p.RowsOfKinds(c, KindBit(Kind::kString)) - t;
            s.t |= t;
          }
        }
        r[in.d] = std::move(s);
        break;
      }
      // StringMatch: ENDSWITH / CONTAINS test each distinct string once.
      case Op::kStringMatch: {
        const ResolvedPath& p = path(in.a);
        const Value& needle = program.constants[in.b];
        TruthSet s;
        if (needle.is_string()) {
          const std::string& n = needle.as_string();
          for (size_t c = 0; c < p.candidates.size(); ++c) {
            const Column& col = *p.candidates[c].column;
            const auto& strings = col.dictionary().strings();
            std::vector<bool> marked(strings.size());
            for (size_t i = 0; i < strings.size(); ++i) {
              marked[i] = in.c == 0 ? std::string_view(strings[i]).ends_with(n)
                                    : strings[i].find(n) != std::string::npos;
            }
            Bitmap t = StringCodeSet(col, marked);
            if (!p.candidates[c].whole) t &= p.candidates[c].rows;
            s.f |= p.RowsOfKinds(c, KindBit(Kind::kString)) - t;
            s.t |= t;
          }
        }
        r[in.d] = std::move(s);
        break;
      }
      case Op::kIdLookup:
        r[in.d] = IdLookup(table, in.cmp, program.constants[in.b]);
        break;
      // Not: true and false swap; undefined stays undefined.
      case Op::kNot:
        r[in.d] = TruthSet{r[in.a].f, r[in.a].t};
        break;
      // And / Or: Kleene's rules on the pair of row sets.
      case Op::kAnd: {
        TruthSet s{r[in.a].t & r[in.b].t, r[in.a].f | r[in.b].f};
        r[in.d] = std::move(s);
        break;
      }
      case Op::kOr: {
        TruthSet s{r[in.a].t | r[in.b].t, r[in.a].f & r[in.b].f};
        r[in.d] = std::move(s);
        break;
      }
      case Op::kCandidates:
        r[in.d] = TruthSet{live - (in.b == 0 ? r[in.a].f : r[in.a].t), Bitmap()};
        break;
      case Op::kJumpIfEmpty:
        if (r[in.a].t.Empty()) next = in.b;
        break;
      case Op::kResidual:
        r[in.d] = EvaluateResidual(*program.residuals[in.a], table, r[in.b].t);
        break;
      case Op::kMove:
        r[in.d] = r[in.a];
        break;
      case Op::kResult:
        if (trace != nullptr) trace->true_rows[pc] = static_cast<int64_t>(r[in.a].t.Cardinality());
        return r[in.a].t;
    }
    if (trace != nullptr && (InfoOf(in.op).flags & kWritesD)) {
      trace->true_rows[pc] = static_cast<int64_t>(r[in.d].t.Cardinality());
    }
    pc = next;
  }
  return Bitmap();
}

// ---- residual evaluation: vector at a time over chunks of candidate rows ----------------------

namespace {

constexpr size_t kChunk = 1024;

class ResidualEvaluator {
 public:
  ResidualEvaluator(const index::Table& table) : table_(table) {}

  void SetChunk(const std::vector<uint32_t>* rows) {
    rows_ = rows;
    docs_.assign(rows->size(), Value());
  }

  std::vector<Value> Eval(const check::BoundExpr& e) {
    size_t n = rows_->size();
    std::vector<Value> out(n);
    switch (e.kind) {
      case check::BoundKind::kConst:
        out.assign(n, e.value);
        break;
      case check::BoundKind::kPath: {
        const ResolvedPath& p = PathOf(e);
        for (size_t i = 0; i < n; ++i) out[i] = ValueAt(table_, p, e.path, (*rows_)[i], &docs_[i]);
        break;
      }
      case check::BoundKind::kCall: {
        std::vector<std::vector<Value>> args;
        for (const auto& c : e.children) args.push_back(Eval(*c));
        std::vector<Value> row_args(args.size());
        for (size_t i = 0; i < n; ++i) {
          for (size_t a = 0; a < args.size(); ++a) row_args[a] = std::move(args[a][i]);
          out[i] = check::CallFunction(e.function->id, row_args);
        }
        break;
      }
      case check::BoundKind::kUnary: {
        std::vector<Value> a = Eval(*e.children[0]);
        for (size_t i = 0; i < n; ++i) out[i] = sem::Unary(e.op, a[i]);
        break;
      }
      case check::BoundKind::kArith: {
        std::vector<Value> a = Eval(*e.children[0]), b = Eval(*e.children[1]);
        for (size_t i = 0; i < n; ++i) out[i] = sem::Arithmetic(e.op, a[i], b[i]);
        break;
      }
      case check::BoundKind::kCompare: {
        std::vector<Value> a = Eval(*e.children[0]), b = Eval(*e.children[1]);
        for (size_t i = 0; i < n; ++i) out[i] = sem::Compare(e.op, a[i], b[i]);
        break;
      }
      case check::BoundKind::kIn: {
        std::vector<Value> a = Eval(*e.children[0]);
        for (size_t i = 0; i < n; ++i) {
          Value v = sem::In(a[i], e.value);
          out[i] = e.op == ast::Op::kNin ? sem::Not(v) : v;
        }
        break;
      }
      case check::BoundKind::kNot: {
        std::vector<Value> a = Eval(*e.children[0]);
        for (size_t i = 0; i < n; ++i) out[i] = sem::Not(a[i]);
        break;
      }
      case check::BoundKind::kAnd:
      case check::BoundKind::kOr: {
        bool is_and = e.kind == check::BoundKind::kAnd;
        out.assign(n, Value::Bool(is_and));
        for (const auto& c : e.children) {
          std::vector<Value> v = Eval(*c);
          for (size_t i = 0; i < n; ++i)
            out[i] = is_and ? sem::And(out[i], v[i]) : sem::Or(out[i], v[i]);
        }
        break;
      }
    }
    return out;
  }

 private:
  const ResolvedPath& PathOf(const check::BoundExpr& e) {
    auto it = paths_.find(&e);
    if (it == paths_.end()) it = paths_.emplace(&e, Resolve(table_, e.path)).first;
    return it->second;
  }

  const index::Table& table_;
  const std::vector<uint32_t>* rows_ = nullptr;
  std::vector<Value> docs_;
  std::unordered_map<const check::BoundExpr*, ResolvedPath> paths_;
};

}  // namespace

TruthSet EvaluateResidual(const check::BoundExpr& expr, const index::Table& table,
                          const Bitmap& rows) {
  TruthSet out;
  ResidualEvaluator eval(table);
  std::vector<uint32_t> all = rows.ToVector();
  std::vector<uint32_t> t, f;
  std::vector<uint32_t> chunk;
  for (size_t begin = 0; begin < all.size(); begin += kChunk) {
    chunk.assign(all.begin() + static_cast<ptrdiff_t>(begin),
                 all.begin() + static_cast<ptrdiff_t>(std::min(all.size(), begin + kChunk)));
    eval.SetChunk(&chunk);
    std::vector<Value> v = eval.Eval(expr);
    for (size_t i = 0; i < chunk.size(); ++i) {
      if (sem::IsTrue(v[i])) t.push_back(chunk[i]);
      if (sem::IsFalse(v[i])) f.push_back(chunk[i]);
    }
  }
  out.t = Bitmap::Of(t);
  out.f = Bitmap::Of(f);
  return out;
}

}  // namespace twinq::vm
