#include "engine/vm/access.h"

#include <algorithm>

namespace twinq::vm {

using index::Bitmap;
using index::Column;
using index::ColumnPath;
using index::Kind;

index::Bitmap ResolvedPath::RowsOfKinds(size_t c, uint32_t kinds) const {
  const Candidate& cand = candidates[c];
  Bitmap out;
  if (kinds == kAllKinds) {
    out = cand.column->present();
  } else {
    for (size_t k = 0; k < index::kKindCount; ++k) {
      if (kinds & (1u << k)) out |= cand.column->rows(static_cast<Kind>(k));
    }
  }
  if (!cand.whole) out &= cand.rows;
  return out;
}

ResolvedPath Resolve(const index::Table& table, const std::vector<check::PathStep>& path) {
  ResolvedPath out;
  ColumnPath query;
  for (const check::PathStep& s : path) {
    index::Step st;
    st.is_index = s.is_index;
    st.name = s.name;
    st.index = static_cast<uint32_t>(std::min<uint64_t>(s.index, UINT32_MAX));
    if (s.is_index && s.index > UINT32_MAX) return out;  // no array is that long
    query.push_back(std::move(st));
  }
  if (query.empty()) return out;
  const std::vector<uint32_t>* ids = table.FindFolded(query);
  if (ids == nullptr) return out;
  for (uint32_t id : *ids) {
    Candidate c;
    c.column = table.column(id);
    c.owner = table.columns()[id];
    out.candidates.push_back(std::move(c));
  }
  // A candidate serves the rows where, at every level, no preceding sibling spelling is present
  // (exact spelling of the query first, then byte order). This holds for a single candidate too:
  // a sibling blocks even when it has no column for the rest of the path (`tags.list[0]` when
  // "list": true stands beside "List": [...]: the exact `list` is chosen, and has no [0]).
  for (Candidate& c : out.candidates) {
    const ColumnPath& mine = c.column->path();
    Bitmap blocked;
    for (size_t level = 0; level < mine.size(); ++level) {
      if (mine[level].is_index) continue;
      ColumnPath prefix(mine.begin(), mine.begin() + static_cast<ptrdiff_t>(level + 1));
      const std::vector<uint32_t>* siblings = table.FindFolded(prefix);
      if (siblings == nullptr) continue;
      const std::string& wanted = query[level].name;
      auto precedes = [&](const std::string& a, const std::string& b) {
        bool ea = a == wanted, eb = b == wanted;
        if (ea != eb) return ea;
        return a < b;
      };
      for (uint32_t sid : *siblings) {
        const ColumnPath& other = table.column(sid)->path();
        if (!std::equal(other.begin(), other.begin() + static_cast<ptrdiff_t>(level), mine.begin()))
          continue;
        if (other[level].name == mine[level].name) continue;
        if (precedes(other[level].name, mine[level].name)) blocked |= table.column(sid)->present();
      }
    }
    if (blocked.Empty()) continue;  // never blocked: every row where the column is present
    c.whole = false;
    c.rows = c.column->present() - blocked;
  }
  return out;
}

Value ValueAt(const index::Table& table, const ResolvedPath& path,
              const std::vector<check::PathStep>& steps, uint32_t row, Value* doc_cache,
              std::string_view* spelling) {
  for (const Candidate& c : path.candidates) {
    if (c.whole ? !c.column->present().Contains(row) : !c.rows.Contains(row)) continue;
    const index::DenseView& d = c.column->dense();
    if (row >= d.kind.size() || d.kind[row] == index::kAbsent) continue;
    if (spelling != nullptr) {
      const index::Step& last = c.column->path().back();
      *spelling = last.is_index ? std::string_view() : std::string_view(last.name);
    }
    uint32_t slot = d.slot[row];
    switch (static_cast<Kind>(d.kind[row])) {
      case Kind::kNull:
        return Value::Null();
      case Kind::kFalse:
        return Value::Bool(false);
      case Kind::kTrue:
        return Value::Bool(true);
      case Kind::kNumber:
        return Value::Number(c.column->numbers()[slot]);
      case Kind::kString:
        return Value::String(c.column->dictionary().String(c.column->codes()[slot]));
      case Kind::kArray:
      case Kind::kObject: {
        if (doc_cache->is_undefined()) *doc_cache = table.Document(row);
        // Walk the exact spelling of this candidate through the document.
        const Value* cur = doc_cache;
        for (const index::Step& s : c.column->path()) {
          if (s.is_index) {
            if (!cur->is_array() || s.index >= cur->as_array().size()) return Value();
            cur = &cur->as_array()[s.index];
          } else {
            cur = cur->Find(s.name);
            if (cur == nullptr) return Value();
          }
        }
        return *cur;
      }
    }
  }
  (void)steps;
  return Value();
}

}  // namespace twinq::vm
