#include "index/table.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <unordered_set>

#include "engine/common/json_reader.h"
#include "index/column_codec.h"

namespace twinq::index {

namespace {

// The column tree used while ingesting: one node per distinct path.
struct Node {
  uint32_t builder = 0;
  std::unordered_map<std::string, uint32_t> names;
  std::vector<uint32_t> indexes;  // child node per array position (0 = none yet)
};

class TableBuilder {
 public:
  TableBuilder() { nodes_.emplace_back(); }  // the root: not a column

  void AddDocument(const Value& doc, uint32_t row) { Walk(doc, 0, row); }

  std::vector<std::shared_ptr<const Column>> Finish() && {
    std::vector<std::shared_ptr<const Column>> out;
    out.reserve(builders_.size());
    for (ColumnBuilder& b : builders_) out.push_back(std::move(b).Build());
    return out;
  }

 private:
  uint32_t Child(uint32_t node, Step step) {
    uint32_t* slot;
    if (step.is_index) {
      auto& v = nodes_[node].indexes;
      if (v.size() <= step.index) v.resize(step.index + 1, 0);
      slot = &v[step.index];
    } else {
      auto [it, inserted] = nodes_[node].names.emplace(step.name, 0);
      slot = &it->second;
    }
    if (*slot == 0) {
      // A new column (rare): copy the parent's path before builders_ may reallocate.
      ColumnPath path = node == 0 ? ColumnPath() : builders_[nodes_[node].builder].path();
      path.push_back(std::move(step));
      uint32_t id = static_cast<uint32_t>(nodes_.size());
      nodes_.emplace_back();
      nodes_.back().builder = static_cast<uint32_t>(builders_.size());
      builders_.emplace_back(std::move(path));
      // `slot` may dangle after the emplace_back above: look it up again.
      if (step.is_index) {
        nodes_[node].indexes[builders_.back().path().back().index] = id;
      } else {
        nodes_[node].names[builders_.back().path().back().name] = id;
      }
      return id;
    }
    return *slot;
  }

  void Walk(const Value& v, uint32_t node, uint32_t row) {
    auto visit = [&](uint32_t child, const Value& value) {
      ColumnBuilder& b = builders_[nodes_[child].builder];
      switch (value.kind()) {
        case ValueKind::kUndefined:
          return;
        case ValueKind::kNull:
          b.AddNull(row);
          return;
        case ValueKind::kBool:
          b.AddBool(row, value.as_bool());
          return;
        case ValueKind::kNumber:
          b.AddNumber(row, value.as_number());
          return;
        case ValueKind::kString:
          b.AddString(row, value.as_string());
          return;
        case ValueKind::kArray:
          b.AddArray(row, static_cast<uint32_t>(value.as_array().size()));
          Walk(value, child, row);
          return;
        case ValueKind::kObject:
          b.AddObject(row);
          Walk(value, child, row);
          return;
      }
    };
    if (v.is_object()) {
      for (const Member& m : v.as_object()) {
        Step s;
        s.name = m.first;
        visit(Child(node, std::move(s)), m.second);
      }
    } else if (v.is_array()) {
      const Array& a = v.as_array();
      for (uint32_t i = 0; i < a.size(); ++i) {
        Step s;
        s.is_index = true;
        s.index = i;
        visit(Child(node, std::move(s)), a[i]);
      }
    }
  }

  std::vector<Node> nodes_;
  std::vector<ColumnBuilder> builders_;
};

std::string IdOf(const Value& doc, const char* key) {
  const Value* v = doc.Find(key);
  return v != nullptr && v->is_string() ? v->as_string() : std::string();
}

void FlattenInto(const Value& v, ColumnPath* path, std::vector<FlatEntry>* out) {
  auto visit = [&](const Value& value) {
    FlatEntry e;
    e.path = *path;
    switch (value.kind()) {
      case ValueKind::kUndefined:
        return;
      case ValueKind::kNull:
        e.kind = Kind::kNull;
        break;
      case ValueKind::kBool:
        e.kind = value.as_bool() ? Kind::kTrue : Kind::kFalse;
        break;
      case ValueKind::kNumber:
        e.kind = Kind::kNumber;
        e.number = value.as_number();
        break;
      case ValueKind::kString:
        e.kind = Kind::kString;
        e.string = value.as_string();
        break;
      case ValueKind::kArray:
        e.kind = Kind::kArray;
        e.length = static_cast<uint32_t>(value.as_array().size());
        break;
      case ValueKind::kObject:
        e.kind = Kind::kObject;
        break;
    }
    out->push_back(std::move(e));
    if (value.is_array() || value.is_object()) FlattenInto(value, path, out);
  };
  if (v.is_object()) {
    for (const Member& m : v.as_object()) {
      Step s;
      s.name = m.first;
      path->push_back(std::move(s));
      visit(m.second);
      path->pop_back();
    }
  } else if (v.is_array()) {
    const Array& a = v.as_array();
    for (uint32_t i = 0; i < a.size(); ++i) {
      Step s;
      s.is_index = true;
      s.index = i;
      path->push_back(std::move(s));
      visit(a[i]);
      path->pop_back();
    }
  }
}

bool SameEntry(const FlatEntry& a, const FlatEntry& b) {
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Kind::kNumber:
      return a.number == b.number && std::signbit(a.number) == std::signbit(b.number);
    case Kind::kString:
      return a.string == b.string;
    case Kind::kArray:
      return a.length == b.length;
    default:
      return true;
  }
}

int CompareIds(std::string_view d1, std::string_view m1, std::string_view d2, std::string_view m2) {
  int c = d1.compare(d2);
  if (c != 0) return c;
  return m1.compare(m2);
}

}  // namespace

void Flatten(const Value& doc, std::vector<FlatEntry>* out) {
  ColumnPath path;
  FlattenInto(doc, &path, out);
}

struct TableStream::State {
  std::shared_ptr<Table> table;
  TableBuilder builder;
  std::shared_ptr<DocChunk> chunk;
};

TableStream::TableStream(bool modules) : state_(std::make_unique<State>()) {
  state_->table = std::shared_ptr<Table>(new Table());
  state_->table->modules_ = modules;
}

TableStream::~TableStream() = default;

void TableStream::Add(const Value& doc) {
  Table& t = *state_->table;
  uint32_t row = t.row_count_++;
  if (row % kDocChunkRows == 0) {
    if (state_->chunk) t.docs_.push_back(std::move(state_->chunk));
    state_->chunk = std::make_shared<DocChunk>();
    state_->chunk->json.reserve(kDocChunkRows);
  }
  DocChunk& chunk = *state_->chunk;
  chunk.json.push_back(ToJson(doc));
  chunk.device_id.push_back(IdOf(doc, "deviceId"));
  chunk.module_id.push_back(t.modules_ ? IdOf(doc, "moduleId") : std::string());
  state_->builder.AddDocument(doc, row);
}

std::shared_ptr<const Table> TableStream::Finish() {
  std::shared_ptr<Table> t = std::move(state_->table);
  if (state_->chunk) t->docs_.push_back(std::move(state_->chunk));
  t->live_ = Bitmap::Range(0, t->row_count_);
  t->live_.Optimize();
  auto order = std::make_shared<std::vector<uint32_t>>(t->row_count_);
  for (uint32_t i = 0; i < t->row_count_; ++i) (*order)[i] = i;
  auto less = [&](uint32_t a, uint32_t b) {
    return CompareIds(t->device_id(a), t->module_id(a), t->device_id(b), t->module_id(b)) < 0;
  };
  if (!std::is_sorted(order->begin(), order->end(), less)) {
    std::sort(order->begin(), order->end(), less);
  }
  t->order_ = std::move(order);
  t->columns_ = std::move(state_->builder).Finish();
  t->BuildCatalog();
  state_ = std::make_unique<State>();
  state_->table = std::shared_ptr<Table>(new Table());
  return t;
}

std::shared_ptr<const Table> Table::Build(const std::vector<Value>& docs, bool modules) {
  TableStream stream(modules);
  for (const Value& doc : docs) stream.Add(doc);
  return stream.Finish();
}

void Table::BuildCatalog() {
  auto exact = std::make_shared<std::unordered_map<std::string, uint32_t>>();
  auto folded = std::make_shared<std::unordered_map<std::string, std::vector<uint32_t>>>();
  for (uint32_t id = 0; id < columns_.size(); ++id) {
    exact->emplace(ExactKey(columns_[id]->path()), id);
    (*folded)[FoldedKey(columns_[id]->path())].push_back(id);
  }
  for (auto& [key, ids] : *folded) {
    std::sort(ids.begin(), ids.end(), [&](uint32_t a, uint32_t b) {
      return ExactKey(columns_[a]->path()) < ExactKey(columns_[b]->path());
    });
  }
  exact_ = std::move(exact);
  folded_ = std::move(folded);
}

std::string_view Table::device_id(uint32_t row) const {
  return docs_[row / kDocChunkRows]->device_id[row % kDocChunkRows];
}

std::string_view Table::module_id(uint32_t row) const {
  return docs_[row / kDocChunkRows]->module_id[row % kDocChunkRows];
}

const std::string& Table::doc_json(uint32_t row) const {
  return docs_[row / kDocChunkRows]->json[row % kDocChunkRows];
}

Value Table::Document(uint32_t row) const {
  const std::string& json = doc_json(row);
  if (json.empty()) return Value();
  Expected<Value> v = ParseJson(json, "stored twin");
  return v.ok() ? std::move(v.value()) : Value();
}

std::optional<uint32_t> Table::FindRow(std::string_view device_id,
                                       std::string_view module_id) const {
  const std::vector<uint32_t>& o = *order_;
  auto it = std::lower_bound(o.begin(), o.end(), 0, [&](uint32_t row, int) {
    return CompareIds(this->device_id(row), this->module_id(row), device_id, module_id) < 0;
  });
  if (it == o.end() || this->device_id(*it) != device_id || this->module_id(*it) != module_id) {
    return std::nullopt;
  }
  return *it;
}

std::vector<uint32_t> Table::InIdOrder(const Bitmap& rows) const {
  std::vector<uint32_t> out = rows.ToVector();
  std::sort(out.begin(), out.end(), [&](uint32_t a, uint32_t b) {
    return CompareIds(device_id(a), module_id(a), device_id(b), module_id(b)) < 0;
  });
  return out;
}

const Column* Table::FindExact(const ColumnPath& path) const {
  auto it = exact_->find(ExactKey(path));
  return it == exact_->end() ? nullptr : columns_[it->second].get();
}

const std::vector<uint32_t>* Table::FindFolded(const ColumnPath& path) const {
  auto it = folded_->find(FoldedKey(path));
  return it == folded_->end() ? nullptr : &it->second;
}

Expected<std::shared_ptr<const Table>> Table::WithChanges(
    const std::vector<Change>& changes) const {
  auto t = std::shared_ptr<Table>(new Table(*this));
  // 1. Resolve every change to a row; the last change of a row wins.
  std::map<uint32_t, const Change*> final;          // row -> change
  std::unordered_map<std::string, uint32_t> added;  // keys of rows added in this batch
  for (const Change& c : changes) {
    std::string key = c.device_id + '\0' + c.module_id;
    std::optional<uint32_t> row;
    if (auto it = added.find(key); it != added.end()) {
      row = it->second;
    } else {
      row = FindRow(c.device_id, c.module_id);  // live rows of this version only
    }
    if (!row) {
      if (c.kind == Change::Kind::kDelete) {
        return Error{fmt::format("no twin {}{}{}", c.device_id, c.module_id.empty() ? "" : "/",
                                 c.module_id)};
      }
      row = t->row_count_++;
      added.emplace(key, *row);
    }
    final[*row] = &c;
  }
  // 2. The entries that differ between the old and the new document of each changed row.
  std::vector<uint32_t> changed_rows;
  std::unordered_map<std::string, std::vector<uint32_t>> touched_rows;  // exact key -> rows
  std::unordered_map<std::string, std::vector<std::pair<uint32_t, const FlatEntry*>>>
      touched_entries;
  std::unordered_map<std::string, ColumnPath> touched_paths;
  std::vector<std::vector<FlatEntry>> fresh(final.size());
  size_t n = 0;
  for (const auto& [row, change] : final) {
    changed_rows.push_back(row);
    std::vector<FlatEntry> before;
    if (row < row_count_ && live_.Contains(row)) Flatten(Document(row), &before);
    std::vector<FlatEntry>& after = fresh[n++];
    if (change->kind == Change::Kind::kUpsert) Flatten(change->doc, &after);
    std::unordered_map<std::string, const FlatEntry*> old_by_key;
    for (const FlatEntry& e : before) old_by_key.emplace(ExactKey(e.path), &e);
    for (const FlatEntry& e : after) {
      std::string key = ExactKey(e.path);
      auto it = old_by_key.find(key);
      if (it != old_by_key.end()) {
        bool same = SameEntry(*it->second, e);
        old_by_key.erase(it);
        if (same) continue;
      }
      touched_rows[key].push_back(row);
      touched_entries[key].emplace_back(row, &e);
      touched_paths.emplace(key, e.path);
    }
    for (const auto& [key, e] : old_by_key) {  // entries that disappear
      touched_rows[key].push_back(row);
      touched_paths.emplace(key, e->path);
    }
  }
  // 3. New versions of the touched columns; new columns for new paths.
  bool new_columns = false;
  for (auto& [key, rows] : touched_rows) {
    auto& entries = touched_entries[key];
    auto it = exact_->find(key);
    if (it == exact_->end()) {
      ColumnBuilder b(touched_paths[key]);
      for (const auto& [row, e] : entries) {
        switch (e->kind) {
          case Kind::kNull:
            b.AddNull(row);
            break;
          case Kind::kFalse:
            b.AddBool(row, false);
            break;
          case Kind::kTrue:
            b.AddBool(row, true);
            break;
          case Kind::kNumber:
            b.AddNumber(row, e->number);
            break;
          case Kind::kString:
            b.AddString(row, e->string);
            break;
          case Kind::kArray:
            b.AddArray(row, e->length);
            break;
          case Kind::kObject:
            b.AddObject(row);
            break;
        }
      }
      if (b.empty()) continue;
      t->columns_.push_back(std::move(b).Build());
      new_columns = true;
    } else {
      t->columns_[it->second] = ColumnCodec::Merge(*columns_[it->second], rows, entries);
    }
  }
  if (new_columns) t->BuildCatalog();
  // 4. Documents (copy-on-write per chunk), liveness and id order.
  std::unordered_set<size_t> copied;
  bool order_changed = false;
  n = 0;
  for (const auto& [row, change] : final) {
    size_t ci = row / kDocChunkRows;
    while (t->docs_.size() <= ci) {
      t->docs_.push_back(std::make_shared<DocChunk>());
      copied.insert(t->docs_.size() - 1);
    }
    if (!copied.count(ci)) {
      t->docs_[ci] = std::make_shared<DocChunk>(*t->docs_[ci]);
      copied.insert(ci);
    }
    auto* chunk = const_cast<DocChunk*>(t->docs_[ci].get());
    size_t slot = row % kDocChunkRows;
    if (chunk->json.size() <= slot) {
      chunk->json.resize(slot + 1);
      chunk->device_id.resize(slot + 1);
      chunk->module_id.resize(slot + 1);
    }
    bool was_live = row < row_count_ && live_.Contains(row);
    if (change->kind == Change::Kind::kUpsert) {
      chunk->json[slot] = ToJson(change->doc);
      chunk->device_id[slot] = change->device_id;
      chunk->module_id[slot] = change->module_id;
      if (!was_live) {
        t->live_.Add(row);
        order_changed = true;
      }
    } else {
      chunk->json[slot].clear();
      if (was_live) {
        t->live_.Remove(row);
        order_changed = true;
      }
    }
    ++n;
  }
  if (order_changed) {
    std::vector<uint32_t> kept;
    kept.reserve(order_->size());
    for (uint32_t row : *order_) {
      if (t->live_.Contains(row)) kept.push_back(row);
    }
    std::vector<uint32_t> fresh_rows;
    for (const auto& [key, row] : added) {
      if (t->live_.Contains(row)) fresh_rows.push_back(row);
    }
    auto less = [&](uint32_t a, uint32_t b) {
      return CompareIds(t->device_id(a), t->module_id(a), t->device_id(b), t->module_id(b)) < 0;
    };
    std::sort(fresh_rows.begin(), fresh_rows.end(), less);
    auto merged = std::make_shared<std::vector<uint32_t>>();
    merged->reserve(kept.size() + fresh_rows.size());
    std::merge(kept.begin(), kept.end(), fresh_rows.begin(), fresh_rows.end(),
               std::back_inserter(*merged), less);
    t->order_ = std::move(merged);
  }
  return std::shared_ptr<const Table>(std::move(t));
}

size_t Table::IndexMemoryBytes() const {
  size_t n = sizeof(Table) + live_.SizeInBytes() + order_->capacity() * sizeof(uint32_t);
  for (const auto& c : columns_) n += c->MemoryBytes();
  for (const auto& [k, v] : *exact_) n += k.capacity() + sizeof(v) + 32;
  for (const auto& [k, v] : *folded_) n += k.capacity() + v.capacity() * 4 + 48;
  return n;
}

size_t Table::DocumentMemoryBytes() const {
  size_t n = 0;
  for (const auto& chunk : docs_) {
    for (size_t i = 0; i < chunk->json.size(); ++i) {
      n += chunk->json[i].capacity() + chunk->device_id[i].capacity() +
           chunk->module_id[i].capacity() + 3 * sizeof(std::string);
    }
  }
  return n;
}

}  // namespace twinq::index
