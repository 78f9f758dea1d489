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

// JSON text that is equal for JSON-equal values: object members sorted by key, so that
// {"x":1,"y":2} and {"y":2,"x":1} are one group key (as sem::SameJson compares them).
void AppendCanonicalJson(const Value& v, std::string* out) {
  if (v.is_array()) {
    out->push_back('[');
    bool first = true;
    for (const Value& e : v.as_array()) {
      if (!first) out->push_back(',');
      first = false;
      AppendCanonicalJson(e, out);
    }
    out->push_back(']');
  } else if (v.is_object()) {
    std::vector<const Member*> members;
    for (const Member& m : v.as_object()) members.push_back(&m);
    std::sort(members.begin(), members.end(),
              [](const Member* a, const Member* b) { return a->first < b->first; });
    out->push_back('{');
    bool first = true;
    for (const Member* m : members) {
      if (!first) out->push_back(',');
      first = false;
      AppendJsonString(m->first, out);
      out->push_back(':');
      AppendCanonicalJson(m->second, out);
    }
    out->push_back('}');
  } else {
    AppendJson(v, out);
  }
}

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
        // A projected path shows its group's value: resolve the GROUP BY path it names. The two
        // may differ in letter case, which selects different keys in a twin holding keys that
        // differ only by case (tags.Floor and tags.floor).
        const std::vector<check::PathStep>* path = &p.path;
        for (const auto& g : q.group_by) {
          if (check::PathKey(g) == check::PathKey(p.path)) {
            path = &g;
            break;
          }
        }
        std::string_view spelling;
        Value v = ResolvePath(*path, docs[members.front()], &spelling);
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

constexpr char kBase64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string Base64Url(std::string_view in) {
  std::string out;
  uint32_t buf = 0;
  int bits = 0;
  for (unsigned char c : in) {
    buf = (buf << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kBase64Url[(buf >> bits) & 0x3F]);
    }
  }
  if (bits > 0) out.push_back(kBase64Url[(buf << (6 - bits)) & 0x3F]);
  return out;
}

bool UnBase64Url(std::string_view in, std::string* out) {
  uint32_t buf = 0;
  int bits = 0;
  for (char c : in) {
    const char* p = std::strchr(kBase64Url, c);
    if (c == '\0' || p == nullptr) return false;
    buf = (buf << 6) | static_cast<uint32_t>(p - kBase64Url);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((buf >> bits) & 0xFF));
    }
  }
  return true;
}

}  // namespace

uint64_t Fingerprint(std::string_view text) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

std::string MakeContinuation(uint64_t fingerprint, size_t offset) {
  return Base64Url(fmt::format("tq1:{}:{:016x}", offset, fingerprint));
}

Expected<size_t> ReadContinuation(std::string_view token, uint64_t fingerprint) {
  std::string raw;
  size_t offset = 0;
  unsigned long long fp = 0;
  char tail = 0;
  if (token.size() > 128 || !UnBase64Url(token, &raw) ||
      std::sscanf(raw.c_str(), "tq1:%zu:%16llx%c", &offset, &fp, &tail) != 2) {
    return Error{"invalid continuation token"};
  }
  if (fp != fingerprint) return Error{"continuation token belongs to another query"};
  return offset;
}

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
  size_t offset = 0;
  if (!page.continuation.empty()) {
    Expected<size_t> o = ReadContinuation(page.continuation, fp);
    if (!o.ok()) return o.error();
    offset = *o;
  }
  std::vector<Value> all = AllRows(q, docs);
  QueryResult result;
  if (offset > all.size()) return Error{"continuation token is past the end of the result"};
  size_t end = page.page_size == 0 ? all.size() : std::min(all.size(), offset + page.page_size);
  result.rows.assign(std::make_move_iterator(all.begin() + static_cast<ptrdiff_t>(offset)),
                     std::make_move_iterator(all.begin() + static_cast<ptrdiff_t>(end)));
  if (end < all.size()) result.continuation = MakeContinuation(fp, end);
  return result;
}

}  // namespace twinq::ref
