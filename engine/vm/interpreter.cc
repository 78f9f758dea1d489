#include "engine/vm/interpreter.h"

#include <algorithm>
#include <memory>
#include <mutex>
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
  std::vector<const Bitmap*> in;
  in.reserve(end > begin ? end - begin : 0);
  for (size_t i = begin; i < end; ++i) in.push_back(&postings[i]);
  return Bitmap::Union(in);
}

// A range of a union of postings is answered from the postings when it spans at most this many
// of them (or all but this many), otherwise by one scan of the column's numbers.
constexpr size_t kMaxPostingsInUnion = 64;

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
    std::vector<const Bitmap*> in;
    for (size_t i = 0; i < marked.size(); ++i) {
      if (marked[i]) in.push_back(&c.string_posting(static_cast<uint32_t>(i)));
    }
    return Bitmap::Union(in);
  }
  const index::DenseView& d = c.dense();
  const std::vector<uint32_t>& rows = d.rows[static_cast<size_t>(Kind::kString)];
  std::vector<uint32_t> hit;
  for (size_t i = 0; i < c.codes().size(); ++i) {
    if (marked[c.codes()[i]]) hit.push_back(rows[i]);
  }
  return Bitmap::Of(hit);
}

// One end of an interval of numbers: absent (unbounded), or a value, inclusive or not.
struct Bound {
  bool present = false;
  double value = 0;
  bool inclusive = false;
};

// ---- number bins: a range over many distinct values without a scan of every number ----------
//
// The numbers of a large column, sorted by value and cut into kBins bins of equal size, each with
// its rows as a bitmap and its (row, value) entries in row order. A range is the union of the
// bins wholly inside it plus a scan of the (at most two) bins it cuts. Built on first use per
// column object and kept in a small process-wide cache keyed by the column (a weak pointer, so a
// freed column is never mistaken for a new one at the same address).
constexpr size_t kBins = 256;
constexpr size_t kMinNumbersForBins = 1u << 16;

struct NumberBins {
  std::weak_ptr<const Column> column;
  const Column* raw = nullptr;
  std::vector<double> min, max;                                   // per bin
  std::vector<Bitmap> rows;                                       // per bin
  std::vector<std::vector<std::pair<uint32_t, double>>> entries;  // per bin, in row order
};

std::shared_ptr<const NumberBins> BuildBins(const std::shared_ptr<const Column>& col) {
  auto b = std::make_shared<NumberBins>();
  b->column = col;
  b->raw = col.get();
  const std::vector<double>& v = col->numbers();
  const std::vector<uint32_t>& rows = col->dense().rows[static_cast<size_t>(Kind::kNumber)];
  std::vector<uint32_t> by_value(v.size());
  for (uint32_t i = 0; i < by_value.size(); ++i) by_value[i] = i;
  std::sort(by_value.begin(), by_value.end(), [&](uint32_t a, uint32_t c) { return v[a] < v[c]; });
  size_t per = (v.size() + kBins - 1) / kBins;
  for (size_t begin = 0; begin < by_value.size(); begin += per) {
    size_t end = std::min(by_value.size(), begin + per);
    std::vector<uint32_t> idx(by_value.begin() + static_cast<ptrdiff_t>(begin),
                              by_value.begin() + static_cast<ptrdiff_t>(end));
    b->min.push_back(v[idx.front()]);
    b->max.push_back(v[idx.back()]);
    std::sort(idx.begin(), idx.end());  // number index order = row order
    std::vector<uint32_t> r;
    std::vector<std::pair<uint32_t, double>> e;
    r.reserve(idx.size());
    e.reserve(idx.size());
    for (uint32_t i : idx) {
      r.push_back(rows[i]);
      e.emplace_back(rows[i], v[i]);
    }
    b->rows.push_back(Bitmap::Of(r));
    b->rows.back().Optimize();
    b->entries.push_back(std::move(e));
  }
  return b;
}

std::shared_ptr<const NumberBins> BinsOf(const std::shared_ptr<const Column>& col) {
  static std::mutex mu;
  static std::vector<std::shared_ptr<const NumberBins>> cache;
  std::lock_guard<std::mutex> lock(mu);
  for (const auto& b : cache) {
    std::shared_ptr<const Column> alive = b->column.lock();
    if (alive != nullptr && alive.get() == col.get()) return b;
  }
  cache.erase(
      std::remove_if(cache.begin(), cache.end(), [](const auto& b) { return b->column.expired(); }),
      cache.end());
  if (cache.size() >= 32) cache.erase(cache.begin());
  cache.push_back(BuildBins(col));
  return cache.back();
}

template <class Above, class Below>
Bitmap BinnedInterval(const NumberBins& b, Above above, Below below) {
  std::vector<const Bitmap*> whole;
  std::vector<uint32_t> hit;
  std::vector<Bitmap> cut;
  for (size_t k = 0; k < b.rows.size(); ++k) {
    bool min_in = above(b.min[k]) && below(b.min[k]);
    bool max_in = above(b.max[k]) && below(b.max[k]);
    if (min_in && max_in) {  // an interval holds every value between two it holds
      whole.push_back(&b.rows[k]);
      continue;
    }
    if (!above(b.max[k]) || !below(b.min[k])) continue;  // entirely below or above
    hit.clear();
    for (const auto& [row, x] : b.entries[k]) {
      if (above(x) && below(x)) hit.push_back(row);
    }
    cut.push_back(Bitmap::Of(hit));
  }
  for (const Bitmap& c : cut) whole.push_back(&c);
  return Bitmap::Union(whole);
}

// Rows of a column whose number lies in the interval (lo, hi): from the postings when the
// interval spans few distinct values (or all but a few), otherwise by a scan of numbers(), which
// yields the rows in ascending order.
Bitmap NumberInterval(const Column& col, Bound lo, Bound hi,
                      const std::shared_ptr<const Column>& owner = nullptr) {
  const std::vector<double>& distinct = col.distinct_numbers();
  if (!col.number_postings().empty()) {
    size_t n = distinct.size();
    size_t begin = 0, end = n;
    if (lo.present) {
      begin = (lo.inclusive ? std::lower_bound(distinct.begin(), distinct.end(), lo.value)
                            : std::upper_bound(distinct.begin(), distinct.end(), lo.value)) -
              distinct.begin();
    }
    if (hi.present) {
      end = (hi.inclusive ? std::upper_bound(distinct.begin(), distinct.end(), hi.value)
                          : std::lower_bound(distinct.begin(), distinct.end(), hi.value)) -
            distinct.begin();
    }
    if (end <= begin) return Bitmap();
    if (end - begin <= kMaxPostingsInUnion) return UnionPostings(col.number_postings(), begin, end);
    if (n - (end - begin) <= kMaxPostingsInUnion) {
      return col.rows(Kind::kNumber) - (UnionPostings(col.number_postings(), 0, begin) |
                                        UnionPostings(col.number_postings(), end, n));
    }
  }
  const std::vector<double>& v = col.numbers();
  double a = lo.value, b = hi.value;
  auto any = [](double) { return true; };
  auto gt = [a](double x) { return x > a; };
  auto ge = [a](double x) { return x >= a; };
  auto lt = [b](double x) { return x < b; };
  auto le = [b](double x) { return x <= b; };
  if (owner != nullptr && owner.get() == &col && v.size() >= kMinNumbersForBins) {
    std::shared_ptr<const NumberBins> bins = BinsOf(owner);
    auto binned = [&](auto above, auto below) { return BinnedInterval(*bins, above, below); };
    if (!lo.present) {
      if (!hi.present) return col.rows(Kind::kNumber);
      return hi.inclusive ? binned(any, le) : binned(any, lt);
    }
    if (lo.inclusive) {
      if (!hi.present) return binned(ge, any);
      return hi.inclusive ? binned(ge, le) : binned(ge, lt);
    }
    if (!hi.present) return binned(gt, any);
    return hi.inclusive ? binned(gt, le) : binned(gt, lt);
  }
  const index::DenseView& d = col.dense();
  const std::vector<uint32_t>& rows = d.rows[static_cast<size_t>(Kind::kNumber)];
  std::vector<uint32_t> hit(v.size());
  size_t hits = 0;
  auto scan = [&](auto above, auto below) {  // branch-free: every row is written, kept or not
    uint32_t* out = hit.data();
    const double* x = v.data();
    const uint32_t* r = rows.data();
    size_t k = 0;
    for (size_t i = 0; i < v.size(); ++i) {
      out[k] = r[i];
      k += static_cast<size_t>(above(x[i])) & static_cast<size_t>(below(x[i]));
    }
    hits = k;
  };
  if (!lo.present) {
    if (!hi.present) {
      scan(any, any);
    } else if (hi.inclusive) {
      scan(any, le);
    } else {
      scan(any, lt);
    }
  } else if (lo.inclusive) {
    if (!hi.present) {
      scan(ge, any);
    } else if (hi.inclusive) {
      scan(ge, le);
    } else {
      scan(ge, lt);
    }
  } else {
    if (!hi.present) {
      scan(gt, any);
    } else if (hi.inclusive) {
      scan(gt, le);
    } else {
      scan(gt, lt);
    }
  }
  hit.resize(hits);
  return Bitmap::Of(hit);
}

// Rows of a column whose number satisfies `op c`.
Bitmap NumberMatch(const Column& col, ast::Op op, double c,
                   const std::shared_ptr<const Column>& owner) {
  Bound at{true, c, true}, below{true, c, false}, none;
  switch (op) {
    case ast::Op::kEq:
      return NumberInterval(col, at, at, owner);
    case ast::Op::kNe:
      return col.rows(Kind::kNumber) - NumberInterval(col, at, at, owner);
    case ast::Op::kLt:
      return NumberInterval(col, none, below, owner);
    case ast::Op::kLe:
      return NumberInterval(col, none, at, owner);
    case ast::Op::kGt:
      return NumberInterval(col, below, none, owner);
    case ast::Op::kGe:
      return NumberInterval(col, at, none, owner);
    default:
      return Bitmap();
  }
}

// Rows of one column (all its rows: the caller restricts to the candidate's rows) where
// `value op c` is true, and the rows of c's JSON type (where the comparison is defined).
void CompareColumn(const Column& col, ast::Op op, const Value& c, Bitmap* t, Bitmap* same_type,
                   const std::shared_ptr<const Column>& owner = nullptr) {
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
      *t = NumberMatch(col, op, c.as_number(), owner);
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

// `need_f`: whether a later instruction reads the false rows (see NeedsFalse); when not, they
// are left empty.
TruthSet ComparePath(const ResolvedPath& p, ast::Op op, const Value& c, bool need_f) {
  TruthSet out;
  for (const Candidate& cand : p.candidates) {
    Bitmap t, same;
    CompareColumn(*cand.column, op, c, &t, &same, cand.owner);
    if (!cand.whole) {
      t &= cand.rows;
      same &= cand.rows;
    }
    if (need_f) out.f |= same - t;
    out.t |= t;
  }
  return out;
}

// lo <(=) path <(=) hi for numbers lo and hi: the AND of two comparisons of one path, which are
// both defined exactly on the path's numbers, so F is the numbers outside the interval.
TruthSet RangePath(const ResolvedPath& p, Bound lo, Bound hi, bool need_f) {
  TruthSet out;
  for (const Candidate& cand : p.candidates) {
    Bitmap t = NumberInterval(*cand.column, lo, hi, cand.owner);
    if (!cand.whole) t &= cand.rows;
    if (need_f) {
      Bitmap same = cand.column->rows(Kind::kNumber);
      if (!cand.whole) same &= cand.rows;
      out.f |= same - t;
    }
    out.t |= t;
  }
  return out;
}

// The rows where the column equals the primitive `e` (one posting or kind bitmap where possible),
// stored in *tmp when computed; nullptr when there are none.
const Bitmap* EqualRows(const Column& col, const Value& e, Bitmap* tmp) {
  if (e.is_string() && col.has_string_postings()) {
    int64_t code = col.dictionary().Find(e.as_string());
    return code < 0 ? nullptr : &col.string_posting(static_cast<uint32_t>(code));
  }
  if (e.is_number() && !col.number_postings().empty()) {
    const std::vector<double>& d = col.distinct_numbers();
    auto it = std::lower_bound(d.begin(), d.end(), e.as_number());
    if (it == d.end() || *it != e.as_number()) return nullptr;
    return &col.number_postings()[static_cast<size_t>(it - d.begin())];
  }
  Bitmap same;
  CompareColumn(col, ast::Op::kEq, e, tmp, &same);
  return tmp->Empty() ? nullptr : tmp;
}

TruthSet InPath(const ResolvedPath& p, const Value& list, bool need_f) {
  TruthSet out;
  uint32_t types = 0;
  bool never_false = false;  // an element whose comparison is never false (null, array, ...)
  for (const Value& e : list.as_array()) {
    uint32_t m = TypeMask(e);
    if (m == 0 || m == KindBit(Kind::kNull)) never_false = true;
    types |= m;
  }
  // T: per candidate column, the union of the equal rows of every element, in one pass.
  std::vector<Bitmap> tmp(list.as_array().size());
  for (const Candidate& cand : p.candidates) {
    std::vector<const Bitmap*> parts;
    for (size_t i = 0; i < list.as_array().size(); ++i) {
      if (const Bitmap* b = EqualRows(*cand.column, list.as_array()[i], &tmp[i]))
        parts.push_back(b);
    }
    Bitmap t = Bitmap::Union(parts);
    if (!cand.whole) t &= cand.rows;
    out.t |= t;
    for (Bitmap& b : tmp) b = Bitmap();
  }
  // x IN [c1..cn] is false only where every x = ci is false: impossible when the elements have
  // several JSON types (a value has one type) or one of them is never false.
  if (need_f && !never_false &&
      (types == kBool || types == KindBit(Kind::kNumber) || types == KindBit(Kind::kString))) {
    for (size_t c = 0; c < p.candidates.size(); ++c) out.f |= p.RowsOfKinds(c, types);
    out.f -= out.t;
  }
  return out;
}

TruthSet IdLookup(const index::Table& table, ast::Op op, const Value& constant, bool need_f) {
  TruthSet out;
  const Value* ids = &constant;
  size_t count = 1;
  if (op == ast::Op::kIn) {
    ids = constant.as_array().data();
    count = constant.as_array().size();
  }
  bool all_strings = true;
  std::vector<uint32_t> hit;
  for (size_t i = 0; i < count; ++i) {
    const Value& id = ids[i];
    if (!id.is_string()) {
      all_strings = false;
      continue;
    }
    // The device's row (module twins: all of the device's modules), through the id hash.
    table.RowsOfDevice(id.as_string(), &hit);
  }
  std::sort(hit.begin(), hit.end());
  hit.erase(std::unique(hit.begin(), hit.end()), hit.end());
  out.t = Bitmap::Of(hit);
  if (all_strings && need_f) out.f = table.live() - out.t;  // deviceId is a string in every twin
  return out;
}

// STARTSWITH(deviceId, prefix) on the table's own ids: the twins of a prefix are a contiguous
// run of order(). Only when deviceId resolves to the one exact column (the compiler checked;
// checked again here) does that column hold exactly device_id(row) in every live row.
bool IdPrefix(const index::Table& table, const ResolvedPath& p, const std::string& prefix,
              TruthSet* out, bool need_f) {
  if (p.candidates.size() != 1 || !p.candidates[0].whole) return false;
  const index::ColumnPath& cp = p.candidates[0].column->path();
  if (cp.size() != 1 || cp[0].is_index || cp[0].name != "deviceId") return false;
  const std::vector<uint32_t>& order = table.order();
  auto lo = std::lower_bound(
      order.begin(), order.end(), prefix,
      [&](uint32_t row, const std::string& s) { return table.device_id(row) < s; });
  auto hi = std::partition_point(
      lo, order.end(), [&](uint32_t row) { return table.device_id(row).starts_with(prefix); });
  std::vector<uint32_t> rows(lo, hi);
  if (!std::is_sorted(rows.begin(), rows.end())) std::sort(rows.begin(), rows.end());
  out->t = Bitmap::Of(rows);
  out->f = Bitmap();
  if (need_f) out->f = table.live() - out->t;
  return true;
}

// Which registers' false rows some instruction reads (flow-insensitive, so conservative): only
// those need computing. The result and jumps read true rows only.
std::vector<bool> NeedsFalse(const Program& program) {
  std::vector<bool> need(program.registers, false);
  bool changed = true;
  auto mark = [&](uint32_t r) {
    if (r < need.size() && !need[r]) {
      need[r] = true;
      changed = true;
    }
  };
  while (changed) {
    changed = false;
    for (const Instruction& in : program.code) {
      switch (in.op) {
        case Op::kNot:  // T(D) = F(A)
          mark(in.a);
          break;
        case Op::kAnd:
        case Op::kOr:  // F(D) from F(A), F(B)
          if (in.d < need.size() && need[in.d]) {
            mark(in.a);
            mark(in.b);
          }
          break;
        case Op::kMove:
          if (in.d < need.size() && need[in.d]) mark(in.a);
          break;
        case Op::kCandidates:  // M=0: live - F(A)
          if (in.b == 0) mark(in.a);
          break;
        default:
          break;
      }
    }
  }
  return need;
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
  const std::vector<bool> need_f = NeedsFalse(program);
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
        r[in.d] = ComparePath(path(in.a), in.cmp, program.constants[in.b], need_f[in.d]);
        break;
      // NumberRange: both ends of an interval of numbers at once (the compiler merged
      // `p >(=) C AND p <(=) E`).
      case Op::kNumberRange: {
        const Value& lo = program.constants[in.b];
        const Value& hi = program.constants[in.c];
        r[in.d] = RangePath(path(in.a), Bound{true, lo.as_number(), in.cmp == ast::Op::kGe},
                            Bound{true, hi.as_number(), in.cmp2 == ast::Op::kLe}, need_f[in.d]);
        break;
      }
      case Op::kIn:
        r[in.d] = InPath(path(in.a), program.constants[in.b], need_f[in.d]);
        break;
      // IsKind: IS_DEFINED and the IS_* tests are always true or false, never undefined.
      case Op::kIsKind: {
        const ResolvedPath& p = path(in.a);
        TruthSet s;
        for (size_t c = 0; c < p.candidates.size(); ++c) s.t |= p.RowsOfKinds(c, KindMaskOf(in.b));
        if (need_f[in.d]) s.f = live - s.t;
        r[in.d] = std::move(s);
        break;
      }
      // StartsWith: a prefix is a contiguous range of dictionary codes.
      case Op::kStartsWith: {
        const ResolvedPath& p = path(in.a);
        const Value& prefix = program.constants[in.b];
        TruthSet s;
        if (prefix.is_string() && in.c == 1 &&
            IdPrefix(table, p, prefix.as_string(), &s, need_f[in.d])) {
          r[in.d] = std::move(s);
          break;
        }
        if (prefix.is_string()) {
          for (size_t c = 0; c < p.candidates.size(); ++c) {
            const Column& col = *p.candidates[c].column;
            auto [lo, hi] = col.dictionary().PrefixRange(prefix.as_string());
            Bitmap t = StringCodeRange(col, lo, hi);
            if (!p.candidates[c].whole) t &= p.candidates[c].rows;
            if (need_f[in.d]) s.f |= p.RowsOfKinds(c, KindBit(Kind::kString)) - t;
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
            const index::Dictionary& strings = col.dictionary();
            std::vector<bool> marked(strings.size());
            strings.ForEach([&](uint32_t i, std::string_view v) {
              marked[i] = in.c == 0 ? v.ends_with(n) : v.find(n) != std::string_view::npos;
            });
            Bitmap t = StringCodeSet(col, marked);
            if (!p.candidates[c].whole) t &= p.candidates[c].rows;
            if (need_f[in.d]) s.f |= p.RowsOfKinds(c, KindBit(Kind::kString)) - t;
            s.t |= t;
          }
        }
        r[in.d] = std::move(s);
        break;
      }
      case Op::kIdLookup:
        r[in.d] = IdLookup(table, in.cmp, program.constants[in.b], need_f[in.d]);
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
        r[in.d] =
            EvaluateResidual(*program.residuals[in.a], table, r[in.b].t, in.c == 1, need_f[in.d]);
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

// Evaluates `expr` row by row (vector at a time, in chunks) over `rows`.
TruthSet EvaluateRows(const check::BoundExpr& expr, const index::Table& table, const Bitmap& rows) {
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

// The value of `expr` when its one path holds `x` (ResidualEvaluator::Eval for a single row).
Value EvalScalar(const check::BoundExpr& e, const Value& x) {
  switch (e.kind) {
    case check::BoundKind::kConst:
      return e.value;
    case check::BoundKind::kPath:
      return x;
    case check::BoundKind::kCall: {
      std::vector<Value> args;
      args.reserve(e.children.size());
      for (const auto& c : e.children) args.push_back(EvalScalar(*c, x));
      return check::CallFunction(e.function->id, args);
    }
    case check::BoundKind::kUnary:
      return sem::Unary(e.op, EvalScalar(*e.children[0], x));
    case check::BoundKind::kArith:
      return sem::Arithmetic(e.op, EvalScalar(*e.children[0], x), EvalScalar(*e.children[1], x));
    case check::BoundKind::kCompare:
      return sem::Compare(e.op, EvalScalar(*e.children[0], x), EvalScalar(*e.children[1], x));
    case check::BoundKind::kIn: {
      Value v = sem::In(EvalScalar(*e.children[0], x), e.value);
      return e.op == ast::Op::kNin ? sem::Not(v) : v;
    }
    case check::BoundKind::kNot:
      return sem::Not(EvalScalar(*e.children[0], x));
    case check::BoundKind::kAnd:
    case check::BoundKind::kOr: {
      bool is_and = e.kind == check::BoundKind::kAnd;
      Value out = Value::Bool(is_and);
      for (const auto& c : e.children) {
        Value v = EvalScalar(*c, x);
        out = is_and ? sem::And(out, v) : sem::Or(out, v);
      }
      return out;
    }
  }
  return Value();
}

// Whether `expr` reads at most one path (by exact spelling); *path: that path, or nullptr.
bool SinglePath(const check::BoundExpr& e, const std::vector<check::PathStep>** path) {
  if (e.kind == check::BoundKind::kPath) {
    if (*path == nullptr) {
      *path = &e.path;
      return true;
    }
    return **path == e.path;
  }
  for (const auto& c : e.children) {
    if (!SinglePath(*c, path)) return false;
  }
  return true;
}

// An expression of one path is a function of the path's value: it is evaluated once per
// distinct value of the path's columns (dictionary strings, distinct numbers, null, false, true,
// undefined) and the postings of the values where it is true (false) are OR-ed. Arrays and
// objects (whose values live in the documents), and the rows of a posting shared by 0 and -0
// when the two evaluate differently, are evaluated row by row. False when it does not pay or
// a column lacks postings: the caller evaluates row by row.
bool EvaluateByValue(const check::BoundExpr& expr, const index::Table& table, const Bitmap& rows,
                     bool need_f, TruthSet* out) {
  const std::vector<check::PathStep>* steps = nullptr;
  if (!SinglePath(expr, &steps)) return false;
  auto add = [&](const Value& truth, const Bitmap* b, std::vector<const Bitmap*>* t,
                 std::vector<const Bitmap*>* f) {
    if (sem::IsTrue(truth)) t->push_back(b);
    if (need_f && sem::IsFalse(truth)) f->push_back(b);
  };
  if (steps == nullptr) {  // no path at all: one value for every row
    Value v = EvalScalar(expr, Value());
    out->t = sem::IsTrue(v) ? rows : Bitmap();
    out->f = need_f && sem::IsFalse(v) ? rows : Bitmap();
    return true;
  }
  ResolvedPath p = Resolve(table, *steps);
  uint64_t n = rows.Cardinality();
  uint64_t distinct = 0;
  for (const Candidate& c : p.candidates) {
    const Column& col = *c.column;
    if (!col.rows(Kind::kString).Empty() && !col.has_string_postings()) return false;
    if (!col.rows(Kind::kNumber).Empty() && col.number_postings().empty()) return false;
    distinct += col.dictionary().size() + col.distinct_numbers().size();
  }
  if (distinct > n) return false;
  Bitmap t, f, served, slow;
  for (const Candidate& c : p.candidates) {
    const Column& col = *c.column;
    std::vector<const Bitmap*> tp, fp;
    col.dictionary().ForEach([&](uint32_t code, std::string_view s) {
      add(EvalScalar(expr, Value::String(std::string(s))), &col.string_posting(code), &tp, &fp);
    });
    const std::vector<double>& numbers = col.distinct_numbers();
    for (size_t i = 0; i < numbers.size(); ++i) {
      Value v = EvalScalar(expr, Value::Number(numbers[i]));
      if (numbers[i] == 0) {  // the posting may hold both 0 and -0
        Value w = EvalScalar(expr, Value::Number(-numbers[i]));
        if (sem::IsTrue(v) != sem::IsTrue(w) || sem::IsFalse(v) != sem::IsFalse(w)) {
          slow |= col.number_postings()[i] & (c.whole ? col.present() : c.rows);
          continue;
        }
      }
      add(v, &col.number_postings()[i], &tp, &fp);
    }
    add(EvalScalar(expr, Value::Null()), &col.rows(Kind::kNull), &tp, &fp);
    add(EvalScalar(expr, Value::Bool(false)), &col.rows(Kind::kFalse), &tp, &fp);
    add(EvalScalar(expr, Value::Bool(true)), &col.rows(Kind::kTrue), &tp, &fp);
    Bitmap containers = col.rows(Kind::kArray) | col.rows(Kind::kObject);
    Bitmap ct = Bitmap::Union(tp), cf = Bitmap::Union(fp);
    if (!c.whole) {
      ct &= c.rows;
      cf &= c.rows;
      containers &= c.rows;
      served |= c.rows;
    } else {
      served |= col.present();
    }
    t |= ct;
    f |= cf;
    slow |= containers;
  }
  Value u = EvalScalar(expr, Value());  // rows where the path is missing
  if (sem::IsTrue(u)) t |= rows - served;
  if (need_f && sem::IsFalse(u)) f |= rows - served;
  slow &= rows;
  t -= slow;
  f -= slow;
  out->t = t & rows;
  out->f = need_f ? f & rows : Bitmap();
  if (!slow.Empty()) {
    TruthSet s = EvaluateRows(expr, table, slow);
    out->t |= s.t;
    if (need_f) out->f |= s.f;
  }
  return true;
}

}  // namespace

TruthSet EvaluateResidual(const check::BoundExpr& expr, const index::Table& table,
                          const Bitmap& rows) {
  return EvaluateResidual(expr, table, rows, true, true);
}

TruthSet EvaluateResidual(const check::BoundExpr& expr, const index::Table& table,
                          const Bitmap& rows, bool by_value, bool need_f) {
  TruthSet out;
  if (by_value && EvaluateByValue(expr, table, rows, need_f, &out)) return out;
  out = EvaluateRows(expr, table, rows);
  if (!need_f) out.f = Bitmap();
  return out;
}

}  // namespace twinq::vm
