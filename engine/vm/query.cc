#include "engine/vm/query.h"

#include <fmt/format.h>

#include <cmath>
#include <unordered_map>

#include "engine/vm/access.h"
#include "engine/vm/interpreter.h"

namespace twinq::vm {

using check::BoundProjection;

const index::Table& TableOf(const index::Snapshot& snapshot, check::Collection c) {
  // devices.jobs records are not twins: the binder rejects them in conditions, and a job store
  // provides them to queries; over an index they are an empty collection.
  static const std::shared_ptr<const index::Table> empty = index::Table::Build({}, false);
  switch (c) {
    case check::Collection::kDevices:
      return snapshot.devices();
    case check::Collection::kModules:
      return snapshot.modules();
    case check::Collection::kJobs:
      return *empty;
  }
  return *empty;
}

index::Bitmap SelectRows(const check::BoundCondition& condition, const index::Snapshot& snapshot,
                         const CompileOptions& options) {
  const index::Table& table = TableOf(snapshot, condition.collection);
  if (condition.all) return table.live();
  Program p = CompileFilter(condition.expr.get(), table, options);
  return Run(p, table);
}

std::vector<std::string> TargetIds(const check::BoundCondition& condition,
                                   const index::Snapshot& snapshot, const CompileOptions& options) {
  const index::Table& table = TableOf(snapshot, condition.collection);
  std::vector<std::string> ids;
  for (uint32_t row : table.InIdOrderByRank(SelectRows(condition, snapshot, options))) {
    std::string id(table.device_id(row));
    if (table.modules()) {
      id += '/';
      id += table.module_id(row);
    }
    ids.push_back(std::move(id));
  }
  return ids;
}

namespace {

struct PathReader {
  std::vector<check::PathStep> steps;
  ResolvedPath resolved;
};

void AppendGroupKey(const Value& v, std::string* out) {
  if (v.is_undefined()) {
    out->append("~");
  } else {
    AppendCanonicalJson(v, out);
  }
  out->push_back('\x1f');
}

}  // namespace

std::vector<Value> AllRows(const check::BoundQuery& q, const index::Snapshot& snapshot,
                           const CompileOptions& options) {
  const index::Table& table = TableOf(snapshot, q.collection);
  Program p = CompileFilter(q.where.get(), table, options);
  std::vector<uint32_t> rows = table.InIdOrderByRank(Run(p, table));
  std::vector<Value> out;
  if (q.select_all) {
    out.reserve(rows.size());
    for (uint32_t row : rows) {
      if (q.top && out.size() >= *q.top) break;
      out.push_back(table.Document(row));
    }
    return out;
  }
  std::vector<PathReader> readers(q.projections.size());
  for (size_t i = 0; i < q.projections.size(); ++i) {
    readers[i].steps = q.projections[i].path;
    readers[i].resolved = Resolve(table, q.projections[i].path);
  }
  auto read = [&](size_t i, uint32_t row, Value* doc, std::string_view* spelling) {
    return ValueAt(table, readers[i].resolved, readers[i].steps, row, doc, spelling);
  };
  if (!q.aggregate && q.group_by.empty()) {
    for (uint32_t row : rows) {
      if (q.top && out.size() >= *q.top) break;
      Value doc;
      Object o;
      for (size_t i = 0; i < q.projections.size(); ++i) {
        std::string_view spelling;
        Value v = read(i, row, &doc, &spelling);
        if (v.is_undefined()) continue;
        o.emplace_back(
            q.projections[i].key_from_document ? std::string(spelling) : q.projections[i].key,
            std::move(v));
      }
      out.push_back(Value::MakeObject(std::move(o)));
    }
    return out;
  }
  // Groups in order of their first row (id order).
  std::vector<std::vector<uint32_t>> groups;
  if (q.group_by.empty()) {
    groups.push_back(rows);
  } else {
    std::vector<PathReader> keys(q.group_by.size());
    for (size_t g = 0; g < q.group_by.size(); ++g) {
      keys[g].steps = q.group_by[g];
      keys[g].resolved = Resolve(table, q.group_by[g]);
    }
    std::unordered_map<std::string, size_t> index;
    // One GROUP BY path served by one column: strings are grouped by dictionary code (one
    // dictionary, so one code per string), null, false, true and a missing value by kind; only
    // numbers, arrays and objects build the canonical key. Groups keep the order of their first
    // row either way.
    const index::Column* single = nullptr;
    if (keys.size() == 1 && keys[0].resolved.candidates.size() == 1 &&
        keys[0].resolved.candidates[0].whole) {
      single = keys[0].resolved.candidates[0].column;
    }
    if (single != nullptr) {
      const index::DenseView& d = single->dense();
      const std::vector<uint32_t>& codes = single->codes();
      std::vector<int64_t> by_code(single->dictionary().size(), -1);
      int64_t by_kind[4] = {-1, -1, -1, -1};  // missing, null, false, true
      for (uint32_t row : rows) {
        uint8_t kind = row < d.kind.size() ? d.kind[row] : index::kAbsent;
        int64_t* slot = nullptr;
        if (kind == index::kAbsent) {
          slot = &by_kind[0];
        } else if (kind == static_cast<uint8_t>(index::Kind::kNull)) {
          slot = &by_kind[1];
        } else if (kind == static_cast<uint8_t>(index::Kind::kFalse)) {
          slot = &by_kind[2];
        } else if (kind == static_cast<uint8_t>(index::Kind::kTrue)) {
          slot = &by_kind[3];
        } else if (kind == static_cast<uint8_t>(index::Kind::kString)) {
          slot = &by_code[codes[d.slot[row]]];
        }
        if (slot != nullptr) {
          if (*slot < 0) {
            *slot = static_cast<int64_t>(groups.size());
            groups.emplace_back();
          }
          groups[static_cast<size_t>(*slot)].push_back(row);
          continue;
        }
        std::string key;
        Value doc;
        AppendGroupKey(ValueAt(table, keys[0].resolved, keys[0].steps, row, &doc), &key);
        auto [it, inserted] = index.emplace(std::move(key), groups.size());
        if (inserted) groups.emplace_back();
        groups[it->second].push_back(row);
      }
    }
    for (uint32_t row : rows) {
      if (single != nullptr) break;
      std::string key;
      Value doc;
      for (const PathReader& k : keys)
        AppendGroupKey(ValueAt(table, k.resolved, k.steps, row, &doc), &key);
      auto [it, inserted] = index.emplace(std::move(key), groups.size());
      if (inserted) groups.emplace_back();
      groups[it->second].push_back(row);
    }
  }
  for (const std::vector<uint32_t>& members : groups) {
    Object o;
    for (size_t i = 0; i < q.projections.size(); ++i) {
      const BoundProjection& proj = q.projections[i];
      if (proj.kind == BoundProjection::Kind::kPath) {
        if (members.empty()) continue;
        Value doc;
        std::string_view spelling;
        Value v = read(i, members.front(), &doc, &spelling);
        if (v.is_undefined()) continue;
        o.emplace_back(proj.key_from_document ? std::string(spelling) : proj.key, std::move(v));
        continue;
      }
      if (proj.kind == BoundProjection::Kind::kCount) {
        o.emplace_back(proj.key, Value::Number(static_cast<double>(members.size())));
        continue;
      }
      size_t numbers = 0;
      double sum = 0, mn = 0, mx = 0;
      for (uint32_t row : members) {
        Value doc;
        Value v = read(i, row, &doc, nullptr);
        if (!v.is_number()) continue;
        double d = v.as_number();
        mn = numbers == 0 ? d : std::min(mn, d);
        mx = numbers == 0 ? d : std::max(mx, d);
        sum += d;
        ++numbers;
      }
      if (numbers == 0) continue;
      double r = 0;
      switch (proj.kind) {
        case BoundProjection::Kind::kSum:
          r = sum;
          break;
        case BoundProjection::Kind::kAvg:
          r = sum / static_cast<double>(numbers);
          break;
        case BoundProjection::Kind::kMin:
          r = mn;
          break;
        case BoundProjection::Kind::kMax:
          r = mx;
          break;
        default:
          break;
      }
      if (!std::isfinite(r)) continue;
      o.emplace_back(proj.key, Value::Number(r));
    }
    out.push_back(Value::MakeObject(std::move(o)));
    if (q.top && out.size() >= *q.top) break;
  }
  if (q.top && out.size() > *q.top) out.resize(*q.top);
  return out;
}

Expected<QueryResult> RunQuery(const check::BoundQuery& q, const index::Snapshot& snapshot,
                               const PageRequest& page, const CompileOptions& options) {
  uint64_t fp = Fingerprint(check::Print(q));
  if (!page.continuation.empty()) {  // refuse a bad token before doing the work
    Expected<size_t> o = ReadContinuation(page.continuation, fp);
    if (!o.ok()) return o.error();
  }
  return CutPage(AllRows(q, snapshot, options), fp, page);
}

std::string Explain(const Program& program) { return program.Explain(); }

std::string Plan(const Program& program, const index::Table& table) {
  Trace trace;
  Run(program, table, &trace);
  std::string out = fmt::format("{} twins in {}\n", table.live_count(),
                                program.modules ? "devices.modules" : "devices");
  out += "addr  step                                              est rows   actual rows  access\n";
  for (size_t i = 0; i < program.code.size(); ++i) {
    const Instruction& in = program.code[i];
    uint32_t flags = InfoOf(in.op).flags;
    if (!(flags & (kIndex | kResidual)) && in.op != Op::kResult && in.op != Op::kJumpIfEmpty)
      continue;
    std::string what = program.Describe(i).comment;
    if (what.size() > 48) what = what.substr(0, 45) + "...";
    std::string est = in.estimate >= 0 ? fmt::format("{:.0f}", in.estimate) : "-";
    std::string actual = trace.true_rows[i] >= 0 ? fmt::format("{}", trace.true_rows[i])
                                                 : (in.op == Op::kJumpIfEmpty ? "" : "skipped");
    out += fmt::format("{:<5} {:<49} {:>9}  {:>12}  {}\n", i, what, est, actual, in.note);
  }
  return out;
}

}  // namespace twinq::vm
