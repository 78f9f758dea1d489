#include "index/table.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cmath>
#include <deque>
#include <type_traits>
#include <unordered_set>

#include "engine/common/json_reader.h"
#include "index/column_codec.h"
#include "index/hash.h"
#include "index/parallel.h"

namespace twinq::index {

namespace {

// The column tree used while ingesting: one node per distinct path.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return HashBytes(s); }
};
struct Node {
  uint32_t builder = 0;
  std::string name;  // the member name this node is reached by (empty for array elements)
  // Looked up by string_view: no key string is built for names already known.
  std::unordered_map<std::string, uint32_t, StringHash, std::equal_to<>> names;
  std::vector<uint32_t> indexes;  // child node per array position (0 = none yet)
  // The child found for each member position the last time (kNoChild: none yet). The twins of a
  // fleet mostly list the same members in the same order, so a member is mostly found here with
  // one comparison of its name, without hashing it.
  static constexpr uint32_t kNoChild = UINT32_MAX;
  std::vector<uint32_t> last_members;
};

// The two forms an ingested document comes in: a Value, or the tokens of the ingest's fast path
// (json_reader.h: VisitTwinsFile with a TwinTokenSink builds no Value). TableStream and
// TableBuilder read both through these, so a table built either way is the same.
ValueKind KindOf(const Value& v) { return v.kind(); }
ValueKind KindOf(const JsonToken& t) { return t.kind; }
bool BoolOf(const Value& v) { return v.as_bool(); }
bool BoolOf(const JsonToken& t) { return t.boolean; }
double NumberOf(const Value& v) { return v.as_number(); }
double NumberOf(const JsonToken& t) { return t.number; }
std::string_view StringOf(const Value& v) { return v.as_string(); }
std::string_view StringOf(const JsonToken& t) { return t.string; }
uint32_t ArraySizeOf(const Value& v) { return static_cast<uint32_t>(v.as_array().size()); }
uint32_t ArraySizeOf(const JsonToken& t) { return t.size; }
void PrintJson(const Value& v, std::string* out) { AppendJson(v, out); }
void PrintJson(const JsonToken& t, std::string* out) { AppendJson(&t, out); }

// Calls f(is_index, name, index, child) for each member (is_index false, index its position)
// or element (name empty) of `v`, in order; nothing for a scalar.
template <class F>
void ForEachChild(const Value& v, F&& f) {
  if (v.is_object()) {
    const Object& o = v.as_object();
    for (uint32_t i = 0; i < o.size(); ++i) f(false, std::string_view(o[i].first), i, o[i].second);
  } else if (v.is_array()) {
    const Array& a = v.as_array();
    for (uint32_t i = 0; i < a.size(); ++i) f(true, std::string_view(), i, a[i]);
  }
}
template <class F>
void ForEachChild(const JsonToken& t, F&& f) {
  if (t.kind != ValueKind::kObject && t.kind != ValueKind::kArray) return;
  const bool object = t.kind == ValueKind::kObject;
  const JsonToken* c = &t + 1;
  for (uint32_t i = 0; i < t.size; ++i, c += c->span) {
    f(!object, object ? c->key : std::string_view(), i, *c);
  }
}

// The string member `key` of a twin (empty if none).
template <class Doc>
std::string IdOf(const Doc& doc, std::string_view key) {
  std::string id;
  ForEachChild(doc, [&](bool, std::string_view name, uint32_t, const Doc& v) {
    if (name == key && KindOf(v) == ValueKind::kString) id = std::string(StringOf(v));
  });
  return id;
}

class TableBuilder {
 public:
  TableBuilder() { nodes_.emplace_back(); }  // the root: not a column

  template <class Doc>
  void AddDocument(const Doc& doc, uint32_t row) {
    Walk(doc, 0, row);
  }

  std::vector<std::shared_ptr<const Column>> Finish() && {
    std::vector<std::shared_ptr<const Column>> out;
    out.reserve(builders_.size());
    for (ColumnBuilder& b : builders_) out.push_back(std::move(b).Build());
    return out;
  }

 private:
  // The child node of `node` for a member name or an array index (created on first sight).
  // `index`: the element's index, or the member's position in its object.
  uint32_t Child(uint32_t node, bool is_index, std::string_view name, uint32_t index) {
    if (is_index) {
      const auto& v = nodes_[node].indexes;
      if (index < v.size() && v[index] != 0) return v[index];
      return NewChild(node, true, name, index);
    }
    std::vector<uint32_t>& last = nodes_[node].last_members;
    if (index < last.size() && last[index] != Node::kNoChild &&
        EqualBytes(nodes_[last[index]].name, name)) {
      return last[index];
    }
    const auto& names = nodes_[node].names;
    auto it = names.find(name);
    const uint32_t child = it != names.end() ? it->second : NewChild(node, false, name, index);
    std::vector<uint32_t>& seen = nodes_[node].last_members;  // (nodes_ may have grown)
    if (seen.size() <= index) seen.resize(index + 1, Node::kNoChild);
    seen[index] = child;
    return child;
  }

  uint32_t NewChild(uint32_t node, bool is_index, std::string_view name, uint32_t index) {
    // A new column (rare).
    ColumnPath path = node == 0 ? ColumnPath() : builders_[nodes_[node].builder].path();
    Step step;
    step.is_index = is_index;
    step.name = std::string(name);
    step.index = is_index ? index : 0;
    path.push_back(std::move(step));
    uint32_t id = static_cast<uint32_t>(nodes_.size());
    nodes_.emplace_back();
    nodes_.back().builder = static_cast<uint32_t>(builders_.size());
    if (!is_index) nodes_.back().name = std::string(name);
    builders_.emplace_back(std::move(path));
    if (is_index) {
      auto& v = nodes_[node].indexes;
      if (v.size() <= index) v.resize(index + 1, 0);
      v[index] = id;
    } else {
      nodes_[node].names.emplace(std::string(name), id);
    }
    return id;
  }

  template <class Doc>
  void Walk(const Doc& v, uint32_t node, uint32_t row) {
    ForEachChild(v, [&](bool is_index, std::string_view name, uint32_t index, const Doc& value) {
      const uint32_t child = Child(node, is_index, name, index);
      ColumnBuilder& b = builders_[nodes_[child].builder];
      switch (KindOf(value)) {
        case ValueKind::kUndefined:
          return;
        case ValueKind::kNull:
          b.AddNull(row);
          return;
        case ValueKind::kBool:
          b.AddBool(row, BoolOf(value));
          return;
        case ValueKind::kNumber:
          b.AddNumber(row, NumberOf(value));
          return;
        case ValueKind::kString:
          b.AddString(row, StringOf(value));
          return;
        case ValueKind::kArray:
          b.AddArray(row, ArraySizeOf(value));
          Walk(value, child, row);
          return;
        case ValueKind::kObject:
          b.AddObject(row);
          Walk(value, child, row);
          return;
      }
    });
  }

  std::vector<Node> nodes_;
  std::vector<ColumnBuilder> builders_;
};

// The entry of one value (its kind and payload; members are entries of their own).
FlatEntry EntryOf(const Value& value) {
  FlatEntry e;
  switch (value.kind()) {
    case ValueKind::kUndefined:
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
  return e;
}

void FlattenInto(const Value& v, ColumnPath* path, std::vector<FlatEntry>* out) {
  auto visit = [&](const Value& value) {
    if (value.is_undefined()) return;
    FlatEntry e = EntryOf(value);
    e.path = *path;
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

void AppendKeyStep(std::string* key, bool is_index, std::string_view name, uint32_t index) {
  char buf[24];
  if (is_index) {
    key->push_back('\x1e');
    auto r = std::to_chars(buf, buf + sizeof buf, index);
    key->append(buf, r.ptr);
  } else {
    key->push_back('\x1f');
    auto r = std::to_chars(buf, buf + sizeof buf, name.size());
    key->append(buf, r.ptr);
    key->push_back(':');
    key->append(name);
  }
}

// The rows of one column that a batch changes, and their new entries (rows ascending).
struct Touch {
  std::vector<uint32_t> rows;
  std::vector<std::pair<uint32_t, FlatEntry>> entries;
};

// The Touch of each changed column, by exact catalog key. The rows of a batch mostly change the
// same columns in the same order (a job's patch: etag, version, its members), so each row's
// lookups first try the key that came next in the row before, which costs a comparison instead
// of a hash. A single patch changes a handful of columns: up to kLinear keys are found by
// comparing them in turn (no hash, no node per key); past that, through a hash index.
class TouchMap {
 public:
  using Entry = std::pair<const std::string, Touch>;

  void BeginRow() { at_ = 0; }
  Touch* Get(const std::string& key) {
    if (at_ < recent_.size() && recent_[at_]->first == key) return &recent_[at_++]->second;
    Entry* e = Find(key);
    if (e == nullptr) e = Insert(key);
    if (at_ < recent_.size()) {
      recent_[at_] = e;
    } else if (recent_.size() < kRecent) {
      recent_.push_back(e);
    }
    ++at_;
    return &e->second;
  }
  // Every key and its Touch, in the order the keys were first asked for.
  std::deque<Entry>& entries() { return entries_; }

 private:
  static constexpr size_t kRecent = 64;
  static constexpr size_t kLinear = 16;

  Entry* Find(const std::string& key) {
    if (index_.empty()) {
      for (Entry& e : entries_) {
        if (e.first == key) return &e;
      }
      return nullptr;
    }
    auto it = index_.find(key);
    return it == index_.end() ? nullptr : it->second;
  }
  Entry* Insert(const std::string& key) {
    Entry* e = &entries_.emplace_back(key, Touch());
    if (!index_.empty()) {
      index_.emplace(e->first, e);
    } else if (entries_.size() > kLinear) {
      for (Entry& each : entries_) index_.emplace(each.first, &each);
    }
    return e;
  }

  std::deque<Entry> entries_;  // a deque's elements stay where they are as it grows
  std::unordered_map<std::string_view, Entry*, StringHash> index_;  // empty up to kLinear keys
  std::vector<Entry*> recent_;  // the previous row's keys, in its order
  size_t at_ = 0;
};

// Walks the old and the new document of one row side by side and records, per exact catalog key,
// the entries that differ (new or changed: the new entry; gone: the row alone). Subtrees that
// are equal cost a comparison, not a flattening; keys are built only for what changed.
class RowDiff {
 public:
  RowDiff(uint32_t row, TouchMap* touched) : row_(row), touched_(touched) { touched_->BeginRow(); }

  void Documents(const Value* before, const Value* after) {
    if (before != nullptr && after != nullptr && before->is_object() && after->is_object() &&
        &before->as_object() == &after->as_object()) {
      return;
    }
    if (before != nullptr || after != nullptr) Children(before, after);
  }

 private:
  static bool Absent(const Value* v) { return v == nullptr || v->is_undefined(); }

  // Whether two present values give the same entry (SameEntry without building entries).
  static bool SameNode(const Value& b, const Value& a) {
    if (b.kind() != a.kind()) return false;
    switch (a.kind()) {
      case ValueKind::kBool:
        return a.as_bool() == b.as_bool();
      case ValueKind::kNumber:
        return a.as_number() == b.as_number() &&
               std::signbit(a.as_number()) == std::signbit(b.as_number());
      case ValueKind::kString:
        return a.as_string() == b.as_string();
      case ValueKind::kArray:
        return a.as_array().size() == b.as_array().size();
      default:
        return true;  // null, object (members are entries of their own)
    }
  }

  // The values at key_ in the old and the new document (nullptr or undefined: absent).
  void Node(const Value* b, const Value* a) {
    if (Absent(b)) b = nullptr;
    if (Absent(a)) a = nullptr;
    if (b == nullptr && a == nullptr) return;
    if (a == nullptr) {
      touched()->rows.push_back(row_);
    } else if (b == nullptr || !SameNode(*b, *a)) {
      Touch* t = touched();
      t->rows.push_back(row_);
      t->entries.emplace_back(row_, EntryOf(*a));
    }
    bool same_shape = b != nullptr && a != nullptr &&
                      ((b->is_object() && a->is_object()) || (b->is_array() && a->is_array()));
    // A patched twin shares every unchanged subtree with the twin it came from (twin_patch.h):
    // the same storage holds the same members, so there is nothing below to compare.
    if (same_shape &&
        (b->is_object() ? &b->as_object() == &a->as_object() : &b->as_array() == &a->as_array())) {
      return;
    }
    // (A scalar has no children: no call for it.)
    auto container = [](const Value* v) {
      return v != nullptr && (v->is_object() || v->is_array());
    };
    if (same_shape) {
      Children(b, a);
    } else {
      if (container(b)) Children(b, nullptr);
      if (container(a)) Children(nullptr, a);
    }
  }

  // The members or elements of two values of the same shape (either may be nullptr).
  void Children(const Value* b, const Value* a) {
    const Value* shape = a != nullptr ? a : b;
    size_t at = key_.size();
    if (shape->is_object()) {
      static const Object kNone;
      const Object& bo = b != nullptr && b->is_object() ? b->as_object() : kNone;
      const Object& ao = a != nullptr && a->is_object() ? a->as_object() : kNone;
      matched_.resize(matched_.size() + bo.size(), false);  // this level's flags at the end
      size_t base = matched_.size() - bo.size();
      size_t hint = 0;
      for (const Member& m : ao) {
        const Value* old = nullptr;
        for (size_t k = 0; k < bo.size(); ++k) {  // members mostly keep their order
          size_t j = (hint + k) % bo.size();
          if (bo[j].first == m.first) {
            old = &bo[j].second;
            matched_[base + j] = true;
            hint = j + 1;
            break;
          }
        }
        AppendKeyStep(&key_, false, m.first, 0);
        Node(old, &m.second);
        key_.resize(at);
      }
      for (size_t j = 0; j < bo.size(); ++j) {
        if (matched_[base + j]) continue;
        AppendKeyStep(&key_, false, bo[j].first, 0);
        Node(&bo[j].second, nullptr);
        key_.resize(at);
      }
      matched_.resize(base);
    } else if (shape->is_array()) {
      static const Array kNone;
      const Array& ba = b != nullptr && b->is_array() ? b->as_array() : kNone;
      const Array& aa = a != nullptr && a->is_array() ? a->as_array() : kNone;
      size_t n = std::max(ba.size(), aa.size());
      for (size_t i = 0; i < n; ++i) {
        AppendKeyStep(&key_, true, {}, static_cast<uint32_t>(i));
        Node(i < ba.size() ? &ba[i] : nullptr, i < aa.size() ? &aa[i] : nullptr);
        key_.resize(at);
      }
    }
  }

  Touch* touched() { return touched_->Get(key_); }

  uint32_t row_;
  TouchMap* touched_;
  std::string key_;
  std::vector<bool> matched_;
};

// Merges the pending changes of `columns` (Column::Materialize) on up to `threads` threads, the
// caller's included. The merges of different columns share nothing but read-only bases.
void MaterializeAll(const std::vector<const Column*>& columns, unsigned threads) {
  std::atomic<size_t> next{0};
  RunInParts(std::min<size_t>(std::max(1u, threads), columns.size()), [&](size_t) {
    for (size_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < columns.size();) {
      columns[i]->Materialize();
    }
  });
}

// The path of an exact catalog key (the inverse of ExactKey).
ColumnPath PathOfKey(std::string_view key) {
  ColumnPath path;
  size_t i = 0;
  auto number = [&](size_t* n) {
    size_t v = 0;
    while (i < key.size() && key[i] >= '0' && key[i] <= '9') v = v * 10 + (key[i++] - '0');
    *n = v;
  };
  while (i < key.size()) {
    Step s;
    char tag = key[i++];
    size_t n = 0;
    number(&n);
    if (tag == '\x1e') {
      s.is_index = true;
      s.index = static_cast<uint32_t>(n);
    } else {
      ++i;  // ':'
      s.name = std::string(key.substr(i, n));
      i += n;
    }
    path.push_back(std::move(s));
  }
  return path;
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
  // The documents of the chunk being filled, back to back, and where each starts (the chunk's
  // rows from its first); FlushChunk stores them as slices of one string. A document kept as a
  // view of the input (Add with its text) takes no room there: its row's `chunk_view` is set.
  std::string chunk_text;
  std::array<size_t, kDocChunkRows + 1> chunk_at = {};
  std::array<std::string_view, kDocChunkRows> chunk_view = {};
  std::shared_ptr<const void> input;  // what keeps the views alive (the first input given)
  uint32_t chunk_first = 0;
  uint32_t chunk_rows = 0;

  void FlushChunk() {
    if (chunk_rows == 0) return;
    std::shared_ptr<const std::string> owner;
    if (!chunk_text.empty()) owner = std::make_shared<const std::string>(chunk_text);  // exact
    size_t slot;
    DocChunk& chunk = table->WritableChunk(chunk_first, &slot);
    for (uint32_t k = 0; k < chunk_rows; ++k) {
      if (chunk_view[k].data() != nullptr) {
        chunk.json[k] = DocText(input, chunk_view[k]);
        chunk_view[k] = {};
      } else {
        chunk.json[k] = DocText(
            owner, std::string_view(*owner).substr(chunk_at[k], chunk_at[k + 1] - chunk_at[k]));
      }
    }
    chunk_text.clear();
    chunk_rows = 0;
  }
};

DocChunk& Table::WritableChunk(uint32_t row, size_t* slot) {
  // A node or chunk only this table references (use_count 1) is written in place; one shared
  // with another version is copied first. Nobody else can start sharing it meanwhile: that
  // would need a reference, and this table is not published yet.
  uint32_t c = row / kDocChunkRows;
  auto capacity = [&] { return uint64_t{1} << (kDocFanoutBits * docs_height_); };
  if (!docs_) {
    docs_ = std::make_shared<DocNode>();
    docs_height_ = 1;
  }
  while (c >= capacity()) {  // grow: the old root becomes the first child of a new one
    auto root = std::make_shared<DocNode>();
    root->children[0] = std::move(docs_);
    docs_ = std::move(root);
    ++docs_height_;
  }
  // Copying a node takes a reference to each of its children, and the children's counts are
  // spread over the heap (a leaf node's 16 chunks, 28 MB of them in a table of a million rows),
  // so most are not cached. An atomic increment on x86 lets nothing after it run until its line
  // is in: copied as they come, the 16 misses of a node would follow one another. So on the
  // first write of a version (the root still shared: a single patch's only write), the lines of
  // every child of every node on the path are asked for first, and their misses overlap. Later
  // writes of a batch copy less of their paths (the upper nodes are copied already). (make_shared
  // puts the count right before its object: in the object's first line when the block is 64-byte
  // aligned, as jemalloc's size classes for nodes and chunks are.)
  if (docs_ && docs_.use_count() != 1) {
    const DocNode* n = docs_.get();
    for (uint32_t level = docs_height_; n != nullptr; --level) {
      for (const auto& p : n->children) {
        if (p) Prefetch(p.get());
      }
      if (level <= 1) break;
      n = n->node((c >> (kDocFanoutBits * (level - 1))) & (kDocFanout - 1));
    }
  }
  // `n` (a node's handle, or the root's) for writing.
  auto writable = [](auto& n) {
    if (!n) {
      n = std::make_shared<DocNode>();
    } else if (n.use_count() != 1) {
      n = std::make_shared<DocNode>(*static_cast<const DocNode*>(n.get()));
    }
    return const_cast<DocNode*>(static_cast<const DocNode*>(n.get()));
  };
  DocNode* node = writable(docs_);
  for (uint32_t level = docs_height_; level > 1; --level) {
    node = writable(node->children[(c >> (kDocFanoutBits * (level - 1))) & (kDocFanout - 1)]);
  }
  std::shared_ptr<const void>& chunk_ptr = node->children[c & (kDocFanout - 1)];
  if (!chunk_ptr) {
    auto fresh = std::make_shared<DocChunk>();
    fresh->ids = std::make_shared<const DocIds>();
    chunk_ptr = std::move(fresh);
  } else if (chunk_ptr.use_count() != 1) {
    chunk_ptr = std::make_shared<DocChunk>(*static_cast<const DocChunk*>(chunk_ptr.get()));
  }
  *slot = row % kDocChunkRows;
  return *const_cast<DocChunk*>(static_cast<const DocChunk*>(chunk_ptr.get()));
}

ColumnList::ColumnList(std::vector<Handle> columns) {
  reserve(columns.size());
  for (Handle& c : columns) push_back(std::move(c));
}

void ColumnList::push_back(Handle column) {
  if (size_ % kGroup == 0) groups_.push_back(std::make_shared<const Group>());
  WritableGroup(size_ >> kGroupBits)[size_ & (kGroup - 1)] = std::move(column);
  ++size_;
}

void ColumnList::Set(size_t id, Handle column) {
  WritableGroup(id >> kGroupBits)[id & (kGroup - 1)] = std::move(column);
}

ColumnList::Group& ColumnList::WritableGroup(size_t g) {
  std::shared_ptr<const Group>& group = groups_[g];
  if (group.use_count() != 1) group = std::make_shared<const Group>(*group);
  return const_cast<Group&>(*group);
}

Bitmap& Table::WritableLive() {
  if (live_.use_count() != 1) live_ = std::make_shared<const Bitmap>(*live_);
  return const_cast<Bitmap&>(*live_);
}

DocIds& Table::WritableIds(DocChunk& chunk) {
  // As in WritableChunk: ids only this chunk references are written in place.
  if (chunk.ids.use_count() != 1) chunk.ids = std::make_shared<const DocIds>(*chunk.ids);
  return const_cast<DocIds&>(*chunk.ids);
}

TableStream::TableStream(bool modules) : state_(std::make_unique<State>()) {
  state_->table = std::shared_ptr<Table>(new Table());
  state_->table->modules_ = modules;
}

TableStream::~TableStream() = default;

void TableStream::Add(const Value& doc) { AddDoc(doc); }

void TableStream::Add(const JsonToken* doc) { AddDoc(*doc); }

void TableStream::Add(const Value& doc, std::string_view spelled,
                      const std::shared_ptr<const void>& input) {
  AddSpelled(doc, spelled, input, /*printed=*/false);
}

void TableStream::Add(const JsonToken* doc, std::string_view spelled,
                      const std::shared_ptr<const void>& input, bool printed) {
  AddSpelled(*doc, spelled, input, printed);
}

template <class Doc>
void TableStream::AddDoc(const Doc& doc, bool print) {
  Table& t = *state_->table;
  State& st = *state_;
  uint32_t row = t.row_count_++;
  size_t slot;
  DocChunk& chunk = t.WritableChunk(row, &slot);
  DocIds& ids = Table::WritableIds(chunk);
  ids.device_id[slot] = IdOf(doc, "deviceId");
  if (t.modules_) ids.module_id[slot] = IdOf(doc, "moduleId");
  if (slot == 0) {
    st.FlushChunk();
    st.chunk_first = row;
  }
  if (print) PrintJson(doc, &st.chunk_text);  // else the caller sets the row's chunk_view
  st.chunk_at[++st.chunk_rows] = st.chunk_text.size();
  st.builder.AddDocument(doc, row);
}

template <class Doc>
void TableStream::AddSpelled(const Doc& doc, std::string_view spelled,
                             const std::shared_ptr<const void>& input, bool printed) {
  State& st = *state_;
  // Views of one input only (a stream reads one file); another's documents are copied.
  if (st.input == nullptr) st.input = input;
  if (spelled.empty() || input == nullptr || input != st.input) return AddDoc(doc);
  if constexpr (std::is_same_v<Doc, JsonToken>) {
    // Tokens are matched against the input they were read from without printing them
    // (SourceSpellsAsJson), unless the reader found the input spelled as the print already. The
    // print and comparison below, which Values take, are their oracle in the tests
    // (JsonReaderTest.SpellsAsJsonAgreesWithPrintingAndComparing and
    // OnDemandTakesALineOnlyAsTheDomReadsIt, fuzz_patch).
    const bool spelled_as_printed = printed || SourceSpellsAsJson(&doc, spelled);
    AddDoc(doc, /*print=*/!spelled_as_printed);
    if (spelled_as_printed) st.chunk_view[st.chunk_rows - 1] = spelled;
    return;
  }
  AddDoc(doc);
  // The document as the table prints it is the last slice of chunk_text. Where the input spells
  // it the same, the table keeps the input's bytes instead: the copy would be fresh memory, which
  // costs more than the print and the comparison (bench/BENCHLOG.md, "What fresh memory costs").
  const uint32_t k = st.chunk_rows - 1;
  const size_t at = st.chunk_at[k];
  if (std::string_view(st.chunk_text).substr(at) == spelled) {
    st.chunk_text.resize(at);
    st.chunk_at[k + 1] = at;
    st.chunk_view[k] = spelled;
  }
}

std::shared_ptr<const Table> TableStream::Finish() {
  state_->FlushChunk();
  std::shared_ptr<Table> t = std::move(state_->table);
  Bitmap& live = t->WritableLive();
  live = Bitmap::Range(0, t->row_count_);
  live.Optimize();
  auto order = std::make_shared<std::vector<uint32_t>>(t->row_count_);
  for (uint32_t i = 0; i < t->row_count_; ++i) (*order)[i] = i;
  auto less = [&](uint32_t a, uint32_t b) {
    return CompareIds(t->device_id(a), t->module_id(a), t->device_id(b), t->module_id(b)) < 0;
  };
  if (!std::is_sorted(order->begin(), order->end(), less)) {
    std::sort(order->begin(), order->end(), less);
  }
  t->order_ = std::move(order);
  t->columns_ = ColumnList(std::move(state_->builder).Finish());
  t->BuildCatalog();
  state_ = std::make_unique<State>();
  state_->table = std::shared_ptr<Table>(new Table());
  return t;
}

std::string TableContents(const Table& t) {
  std::string out;
  for (uint32_t row = 0; row < t.row_count(); ++row) {
    PutBytes(&out, t.device_id(row));
    PutBytes(&out, t.module_id(row));
    PutBytes(&out, t.doc_json(row));
  }
  for (const auto& c : t.columns()) {
    PutBytes(&out, ExactKey(c->path()));
    ColumnCodec::Write(*c, &out);
  }
  return out;
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
  return chunk_of(row).ids->device_id[row % kDocChunkRows];
}

std::string_view Table::module_id(uint32_t row) const {
  return chunk_of(row).ids->module_id[row % kDocChunkRows];
}

std::string_view Table::doc_json(uint32_t row) const {
  return chunk_of(row).json[row % kDocChunkRows].view();
}

Value Table::Document(uint32_t row) const {
  std::string_view json = doc_json(row);
  if (json.empty()) return Value();
  Expected<Value> v = ParseJson(json, "stored twin");
  return v.ok() ? std::move(v.value()) : Value();
}

std::optional<uint32_t> Table::FindRow(std::string_view device_id,
                                       std::string_view module_id) const {
  // Through the id hash (table_ids.cc): a few probes instead of ~log2(n) id comparisons, each a
  // cache miss into the documents. FindRowByOrder is the oracle.
  thread_local std::vector<uint32_t> rows;
  rows.clear();
  RowsOfDevice(device_id, &rows);
  for (uint32_t row : rows) {
    if (this->module_id(row) == module_id) return row;
  }
  return std::nullopt;
}

std::optional<uint32_t> Table::FindRowByOrder(std::string_view device_id,
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

Expected<std::shared_ptr<const Table>> Table::WithChanges(const std::vector<Change>& changes,
                                                          unsigned threads,
                                                          size_t parallel_min_rows) const {
  auto t = std::shared_ptr<Table>(new Table(*this));
  // 1. Resolve every change to a row; the last change of a row wins.
  std::vector<std::pair<uint32_t, const Change*>> final;  // (row, change), rows ascending
  final.reserve(changes.size());
  std::unordered_map<std::string, uint32_t> added;  // keys of rows added in this batch
  for (const Change& c : changes) {
    std::optional<uint32_t> row;
    if (c.row != Change::kNoRow && c.row < row_count_ && live_->Contains(c.row) &&
        device_id(c.row) == c.device_id && module_id(c.row) == c.module_id) {
      row = c.row;  // the caller's lookup, checked
    } else {
      std::string key = c.device_id + '\0' + c.module_id;
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
        added.emplace(std::move(key), *row);
      }
    }
    final.emplace_back(*row, &c);
  }
  // By row; of several changes to one row, the last one (stable sort keeps their order).
  std::stable_sort(final.begin(), final.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  size_t kept = 0;
  for (size_t i = 0; i < final.size(); ++i) {
    if (i + 1 < final.size() && final[i + 1].first == final[i].first) continue;
    final[kept++] = final[i];
  }
  final.resize(kept);
  // 2. The entries that differ between the old and the new document of each changed row, per
  // column (rows ascending, as `final` is ordered by row). Large batches are diffed in
  // contiguous parts on up to `threads` threads (the diff only reads this version and the
  // changes); each part's entries are then appended to the first's in part order, which keeps
  // every column's rows ascending.
  auto diff = [&](size_t begin, size_t end, TouchMap* touched) {
    for (size_t i = begin; i < end; ++i) {
      const auto& [row, change] = final[i];
      if (change->partial) {
        RowDiff(row, touched).Documents(&change->partial_before, &change->doc);
        continue;
      }
      Value parsed;
      const Value* before = nullptr;
      if (row < row_count_ && live_->Contains(row)) {
        if (change->before == nullptr) parsed = Document(row);
        before = change->before != nullptr ? change->before : &parsed;
      }
      const Value* after = change->kind == Change::Kind::kUpsert ? &change->doc : nullptr;
      RowDiff(row, touched).Documents(before, after);
    }
  };
  size_t diff_parts =
      final.size() >= std::max<size_t>(1, parallel_min_rows) ? std::max(1u, threads) : 1;
  std::vector<TouchMap> parts(std::max<size_t>(1, std::min(diff_parts, final.size())));
  RunInParts(parts.size(), [&](size_t p) {
    diff(final.size() * p / parts.size(), final.size() * (p + 1) / parts.size(), &parts[p]);
  });
  TouchMap& touched = parts[0];
  for (size_t p = 1; p < parts.size(); ++p) {
    touched.BeginRow();
    for (auto& [key, part] : parts[p].entries()) {
      Touch& into = *touched.Get(key);
      into.rows.insert(into.rows.end(), part.rows.begin(), part.rows.end());
      into.entries.insert(into.entries.end(), std::make_move_iterator(part.entries.begin()),
                          std::make_move_iterator(part.entries.end()));
    }
  }
  // 3. New versions of the touched columns (deferred merges; see Column::Deferred); new columns
  // for new paths.
  // In key order, not the hash map's: new columns get their ids in this loop, and the ids (so
  // the saved file) must not depend on the order the diff happened to visit the paths in (the
  // splice path diffs partial twins, the whole-document path whole ones: fuzz_patch found two
  // batches that added the same columns in different orders).
  std::vector<std::pair<const std::string*, Touch*>> in_order;
  in_order.reserve(touched.entries().size());
  for (auto& [k, touch] : touched.entries()) in_order.emplace_back(&k, &touch);
  std::sort(in_order.begin(), in_order.end(),
            [](const auto& a, const auto& b) { return *a.first < *b.first; });
  bool new_columns = false;
  size_t max_pending = MaxPendingRows(t->row_count_);
  std::vector<const Column*> to_merge;  // versions whose pending rows are over the limit
  for (auto [key, touch_ptr] : in_order) {
    const std::string& k = *key;
    Touch& touch = *touch_ptr;
    auto it = exact_->find(k);
    if (it == exact_->end()) {
      ColumnBuilder b(PathOfKey(k));
      for (const auto& [row, e] : touch.entries) {
        switch (e.kind) {
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
            b.AddNumber(row, e.number);
            break;
          case Kind::kString:
            b.AddString(row, e.string);
            break;
          case Kind::kArray:
            b.AddArray(row, e.length);
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
      std::shared_ptr<const Column> c =
          Column::Deferred(columns_[it->second], std::move(touch.rows), std::move(touch.entries));
      if (c->pending_rows() > max_pending) to_merge.push_back(c.get());
      t->columns_.Set(it->second, std::move(c));
    }
  }
  MaterializeAll(to_merge, threads);
  if (new_columns) t->BuildCatalog();
  // 4. Documents (copy-on-write per group and chunk), liveness and id order.
  bool order_changed = false;
  for (const auto& [row, change] : final) {
    size_t slot;
    DocChunk* chunk = &t->WritableChunk(row, &slot);
    bool was_live = row < row_count_ && live_->Contains(row);
    if (change->kind == Change::Kind::kUpsert) {
      chunk->json[slot] = change->json ? change->json : DocText::Adopt(ToJson(change->doc));
      if (row >= row_count_) {  // a new row; an existing one keeps its ids
        DocIds& ids = WritableIds(*chunk);
        ids.device_id[slot] = change->device_id;
        ids.module_id[slot] = change->module_id;
      }
      if (!was_live) {
        t->WritableLive().Add(row);
        order_changed = true;
      }
    } else {
      chunk->json[slot].reset();
      if (was_live) {
        t->WritableLive().Remove(row);
        order_changed = true;
      }
    }
  }
  if (order_changed) {
    std::vector<uint32_t> kept;
    kept.reserve(order_->size());
    for (uint32_t row : *order_) {
      if (t->live_->Contains(row)) kept.push_back(row);
    }
    std::vector<uint32_t> fresh_rows;
    for (const auto& [key, row] : added) {
      if (t->live_->Contains(row)) fresh_rows.push_back(row);
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
  t->ValidateInheritedIdHash();
  return std::shared_ptr<const Table>(std::move(t));
}

size_t Table::IndexMemoryBytes() const {
  size_t n = sizeof(Table) - sizeof(ColumnList) + columns_.MemoryBytes() + live_->SizeInBytes() +
             order_->capacity() * sizeof(uint32_t);
  for (const auto& c : columns_) n += c->MemoryBytes();
  for (const auto& [k, v] : *exact_) n += k.capacity() + sizeof(v) + 32;
  for (const auto& [k, v] : *folded_) n += k.capacity() + v.capacity() * 4 + 48;
  return n;
}

size_t Table::DocumentMemoryBytes() const {
  size_t n = 0;
  // Every node and chunk reachable from the root (each once: this version owns or shares them).
  std::vector<std::pair<const DocNode*, uint32_t>> stack;
  if (docs_) stack.emplace_back(docs_.get(), docs_height_);
  while (!stack.empty()) {
    auto [node, level] = stack.back();
    stack.pop_back();
    n += sizeof(DocNode);
    for (uint32_t k = 0; k < kDocFanout; ++k) {
      if (level > 1) {
        if (node->children[k]) stack.emplace_back(node->node(k), level - 1);
        continue;
      }
      const DocChunk* chunk = node->chunk(k);
      if (chunk == nullptr) continue;
      n += sizeof(DocChunk) + sizeof(DocIds) + 16;  // with their control blocks
      for (size_t i = 0; i < kDocChunkRows; ++i) {
        // Ids longer than the inline buffer of a std::string have bytes of their own.
        for (const std::string* id : {&chunk->ids->device_id[i], &chunk->ids->module_id[i]}) {
          if (id->capacity() > 15) n += id->capacity() + 1;
        }
        const DocText& doc = chunk->json[i];
        if (!doc) continue;
        // A document: its bytes; and once per owner in the chunk (its own string, the string of
        // the chunk's ingested documents, a mapped file) the owner's control block and string.
        n += doc.size();
        bool first = true;
        for (size_t j = 0; j < i && first; ++j)
          first = !(chunk->json[j] && doc.SameOwner(chunk->json[j]));
        if (first) n += 16 + sizeof(std::string);
      }
    }
  }
  return n;
}

}  // namespace twinq::index
