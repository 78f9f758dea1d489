#include "engine/ref/query.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <unordered_map>

#include "engine/ref/evaluator.h"

namespace twinq::ref {

using check::BoundProjection;

std::vector<size_t> SelectRows(const check::BoundCondition& condition, const Documents& docs) {
  std::span<const Value> rows = docs.Of(condition.collection);
  std::vector<size_t> out;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (condition.all || Selects(condition.expr.get(), rows[i])) out.push_back(i);
  }
  return out;
}

std::vector<std::string> TargetIds(const check::BoundCondition& condition, const Documents& docs) {
  std::span<const Value> rows = docs.Of(condition.collection);
  std::vector<std::string> ids;
  for (size_t i : SelectRows(condition, docs)) {
    const Value* device = rows[i].Find("deviceId");
    std::string id = device != nullptr && device->is_string() ? device->as_string() : "";
    if (condition.collection == check::Collection::kModules) {
      const Value* module = rows[i].Find("moduleId");
      id += "/";
      if (module != nullptr && module->is_string()) id += module->as_string();
    }
    ids.push_back(std::move(id));
  }
  return ids;
}

namespace {

// A group key component that keeps the JSON type: '43' and 43 differ, undefined is its own key.
void AppendGroupKey(const Value& v, std::string* out) {
  if (v.is_undefined()) {
    out->append("~");
  } else {
    AppendCanonicalJson(v, out);
  }
  out->push_back('\x1f');
}

struct Accumulator {
  size_t count = 0;    // rows in the group
  size_t numbers = 0;  // numeric values seen
  double sum = 0;
  double min = 0;
  double max = 0;
};

Value ProjectRow(const check::BoundQuery& q, const Value& doc) {
  Object row;
  for (const BoundProjection& p : q.projections) {
    std::string_view spelling;
    Value v = ResolvePath(p.path, doc, &spelling);
    if (v.is_undefined()) continue;
    row.emplace_back(p.key_from_document ? std::string(spelling) : p.key, std::move(v));
  }
  return Value::MakeObject(std::move(row));
}

std::vector<Value> AggregateRows(const check::BoundQuery& q, std::span<const Value> docs,
                                 const std::vector<size_t>& selected) {
  // Groups in order of their first document.
  std::vector<std::vector<size_t>> groups;
  if (q.group_by.empty()) {
    groups.emplace_back(selected);
  } else {
    std::unordered_map<std::string, size_t> index;
    for (size_t i : selected) {
      std::string key;
      for (const auto& g : q.group_by) AppendGroupKey(ResolvePath(g, docs[i]), &key);
      auto [it, inserted] = index.emplace(std::move(key), groups.size());
      if (inserted) groups.emplace_back();
      groups[it->second].push_back(i);
    }
  }
  std::vector<Value> rows;
  for (const std::vector<size_t>& members : groups) {
    Object row;
    for (const BoundProjection& p : q.projections) {
      if (p.kind == BoundProjection::Kind::kPath) {
        if (members.empty()) continue;
        // A grouped path reads the GROUP BY path itself (the binder substituted it).
        std::string_view spelling;
        Value v = ResolvePath(p.path, docs[members.front()], &spelling);
        if (v.is_undefined()) continue;
        row.emplace_back(p.key_from_document ? std::string(spelling) : p.key, std::move(v));
        continue;
      }
      Accumulator acc;
      for (size_t i : members) {
        ++acc.count;
        if (p.kind == BoundProjection::Kind::kCount) continue;
        Value v = ResolvePath(p.path, docs[i]);
        if (!v.is_number()) continue;  // AVG/SUM/MIN/MAX consider numbers only
        double d = v.as_number();
        acc.min = acc.numbers == 0 ? d : std::min(acc.min, d);
        acc.max = acc.numbers == 0 ? d : std::max(acc.max, d);
        acc.sum += d;
        ++acc.numbers;
      }
      Value out;
      switch (p.kind) {
        case BoundProjection::Kind::kCount:
          out = Value::Number(static_cast<double>(acc.count));
          break;
        case BoundProjection::Kind::kSum:
          if (acc.numbers) out = Value::Number(acc.sum);
          break;
        case BoundProjection::Kind::kAvg:
          if (acc.numbers) out = Value::Number(acc.sum / static_cast<double>(acc.numbers));
          break;
        case BoundProjection::Kind::kMin:
          if (acc.numbers) out = Value::Number(acc.min);
          break;
        case BoundProjection::Kind::kMax:
          if (acc.numbers) out = Value::Number(acc.max);
          break;
        case BoundProjection::Kind::kPath:
          break;
      }
      if (out.is_number() && !std::isfinite(out.as_number())) out = Value();  // overflowed sum
      if (!out.is_undefined()) row.emplace_back(p.key, std::move(out));
    }
    rows.push_back(Value::MakeObject(std::move(row)));
  }
  return rows;
}

}  // namespace

std::vector<Value> AllRows(const check::BoundQuery& q, const Documents& docs) {
  std::span<const Value> rows = docs.Of(q.collection);
  std::vector<size_t> selected;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (Selects(q.where.get(), rows[i])) selected.push_back(i);
  }
  std::vector<Value> out;
  if (q.aggregate || !q.group_by.empty()) {
    out = AggregateRows(q, rows, selected);
  } else {
    out.reserve(selected.size());
    for (size_t i : selected) out.push_back(q.select_all ? rows[i] : ProjectRow(q, rows[i]));
  }
  if (q.top && out.size() > *q.top) out.resize(*q.top);
  return out;
}

Expected<QueryResult> RunQuery(const check::BoundQuery& q, const Documents& docs,
                               const PageRequest& page) {
  uint64_t fp = Fingerprint(check::Print(q));
  if (!page.continuation.empty()) {  // refuse a bad token before doing the work
    Expected<size_t> o = ReadContinuation(page.continuation, fp);
    if (!o.ok()) return o.error();
  }
  return CutPage(AllRows(q, docs), fp, page);
}

}  // namespace twinq::ref
