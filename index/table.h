// A table: one collection of twins (device twins or module twins) as an immutable version:
// the stored documents, the row ids, and one Column per node path. Writers derive new versions
// with WithChanges(); a version shares everything it did not change with its parent, so a
// reader holding an old version is never disturbed (snapshots, DESIGN.md "The fast path").
#ifndef TWINQ_INDEX_TABLE_H_
#define TWINQ_INDEX_TABLE_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/common/json_reader.h"
#include "engine/common/result.h"
#include "engine/common/value.h"
#include "index/bitmap.h"
#include "index/column.h"
#include "index/prefetch.h"

namespace twinq::index {

// Documents are stored as compact JSON (ToJson of the ingested value: keys, order and values
// exactly as ingested) in chunks of 16 rows, the leaves of a persistent radix tree of fanout 16.
// Versions share every node and chunk they did not change: a change to one row copies the path
// to its chunk (a few nodes of 16 pointers) and that chunk, whatever the size of the fleet.
// A stored document's text, shared by every version (and every chunk copy) that holds it. The
// bytes belong to `owner`: a string of its own (Adopt, Copy), or the mapped index file a fleet
// was opened from (Fleet::Open maps the file and its documents are views into the mapping, so
// loading copies no document; the mapping lives while any document still points into it).
class DocText {
 public:
  DocText() = default;
  DocText(std::shared_ptr<const void> owner, std::string_view text)
      : data_(std::move(owner), text.data()), size_(text.size()) {}
  // Keeps `text` itself (no copy of its bytes unless it has more than kKeptSlack bytes of spare
  // capacity: a printed document grew by doubling, and the slack would be a quarter of the
  // stored documents' memory). Up to kKeptSlack is kept: a spliced document is written into
  // storage taken before its size was known (fleet.cc, SpliceInTable), and copying it into an
  // exact block would be another write to memory no cache holds.
  static constexpr size_t kKeptSlack = 64;
  static DocText Adopt(std::string text) {
    if (text.capacity() > text.size() + kKeptSlack) text.shrink_to_fit();
    auto s = std::make_shared<const std::string>(std::move(text));
    std::string_view v(*s);
    return DocText(std::move(s), v);
  }
  static DocText Copy(std::string_view text) { return Adopt(std::string(text)); }

  std::string_view view() const { return std::string_view(data_.get(), size_); }
  size_t size() const { return size_; }
  explicit operator bool() const { return data_ != nullptr; }
  void reset() {
    data_.reset();
    size_ = 0;
  }
  // Whether both texts are kept alive by the same owner (one string of a chunk's documents, one
  // mapped file), for memory accounting.
  bool SameOwner(const DocText& o) const {
    return !data_.owner_before(o.data_) && !o.data_.owner_before(data_);
  }

 private:
  std::shared_ptr<const char> data_;  // aliasing: points at the text, owns what holds it
  size_t size_ = 0;
};

inline constexpr uint32_t kDocChunkRows = 16;
inline constexpr uint32_t kDocFanoutBits = 4;
inline constexpr uint32_t kDocFanout = 1u << kDocFanoutBits;
// The ids of a chunk's rows. A row keeps its ids for as long as it exists, so the versions of a
// chunk share one DocIds, and a patch (which changes documents only) copies none of them; it is
// copied only when a row is added to its chunk.
struct DocIds {
  std::array<std::string, kDocChunkRows> device_id;
  std::array<std::string, kDocChunkRows> module_id;  // empty for device twins
};
struct DocChunk {
  // Each document is shared, not copied, by the versions of its chunk: a change to one row
  // copies 16 handles and one pointer to the ids (one allocation), not 16 documents (a chunk of
  // generated twins holds about 27 KB). The documents an ingest wrote are the slices of one
  // string per chunk (TableStream), so the 16 handles of such a chunk share one reference count,
  // and a copy touches one count instead of 16 scattered ones.
  std::array<DocText, kDocChunkRows> json;  // empty DocText: no document (deleted row)
  std::shared_ptr<const DocIds> ids;        // never null
};
// An inner node: children of the level below, DocNodes above the lowest level and DocChunks at
// it (the table's height says which). One array for both kinds: a patch copies the nodes on its
// path, and a node is then 256 bytes (4 lines) to copy, not 512 with half of them empty.
struct DocNode {
  std::array<std::shared_ptr<const void>, kDocFanout> children;
  const DocNode* node(uint32_t k) const { return static_cast<const DocNode*>(children[k].get()); }
  const DocChunk* chunk(uint32_t k) const {
    return static_cast<const DocChunk*>(children[k].get());
  }
};

// A table's columns by id, kept in groups of kGroup handles. A new version copies the handles of
// the groups and, of the groups, only those holding a column it changes: a patch touching three
// of 89 columns copies at most 12 + 3 * 8 handles, not 89. Each handle copied is a reference count
// incremented (and decremented when the version goes), and in a program that has started a
// thread libstdc++ makes these atomic: about 16 cycles each on the benchmark machine
// (bench/BENCHLOG.md, "2026-11-28 (fifteenth session)").
class ColumnList {
 public:
  using Handle = std::shared_ptr<const Column>;
  static constexpr uint32_t kGroupBits = 3;
  static constexpr uint32_t kGroup = 1u << kGroupBits;

  ColumnList() = default;
  explicit ColumnList(std::vector<Handle> columns);

  size_t size() const { return size_; }
  const Handle& operator[](size_t id) const {
    return (*groups_[id >> kGroupBits])[id & (kGroup - 1)];
  }
  void reserve(size_t n) { groups_.reserve((n + kGroup - 1) / kGroup); }
  void push_back(Handle column);
  // Replaces column `id`. A group that another list shares is copied first; one only this list
  // references is written in place (the list must belong to a table not yet published).
  void Set(size_t id, Handle column);
  // The list's own bytes (its group handles and groups with their control blocks; not the
  // columns). Shared groups are counted in full, as IndexMemoryBytes counts shared columns.
  size_t MemoryBytes() const {
    return sizeof(ColumnList) + groups_.capacity() * sizeof(groups_[0]) +
           groups_.size() * (sizeof(Group) + 16);
  }

  class const_iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = Handle;
    using difference_type = std::ptrdiff_t;
    using pointer = const Handle*;
    using reference = const Handle&;
    const_iterator() = default;
    const_iterator(const ColumnList* list, size_t id) : list_(list), id_(id) {}
    reference operator*() const { return (*list_)[id_]; }
    pointer operator->() const { return &(*list_)[id_]; }
    const_iterator& operator++() {
      ++id_;
      return *this;
    }
    const_iterator operator++(int) {
      const_iterator old = *this;
      ++id_;
      return old;
    }
    bool operator==(const const_iterator& o) const { return id_ == o.id_; }

   private:
    const ColumnList* list_ = nullptr;
    size_t id_ = 0;
  };
  const_iterator begin() const { return const_iterator(this, 0); }
  const_iterator end() const { return const_iterator(this, size_); }

 private:
  using Group = std::array<Handle, kGroup>;
  Group& WritableGroup(size_t g);
  std::vector<std::shared_ptr<const Group>> groups_;
  size_t size_ = 0;
};

// A change to a table: an upsert of a whole document (the key is taken from its deviceId and
// moduleId) or a deletion by key.
struct Change {
  enum class Kind : uint8_t { kUpsert, kDelete };
  Kind kind = Kind::kUpsert;
  std::string device_id;
  std::string module_id;
  Value doc;  // kUpsert
  // Optional: the document the row holds in the table the change is applied to, when the caller
  // has it parsed already (it is then not parsed again). Must be exactly that document.
  const Value* before = nullptr;
  // Optional, kUpsert: the document's JSON text, exactly ToJson(doc) of the whole new twin, so
  // it is not printed again (the table keeps this very text).
  DocText json;
  // The patch fast path (fleet.cc, twin_splice.h): `doc` and `partial_before` are the same
  // members (etag, version, tags, ...) of the new and of the stored twin, every other member
  // being equal in both; the index diffs those, and stores `json` (required) as the document.
  // Only for a key the table holds (live).
  bool partial = false;
  Value partial_before;
  // Optional: the row the key has in the table the change is applied to, when the caller has
  // looked it up already (it is checked: a row that does not hold the key is looked up again).
  static constexpr uint32_t kNoRow = UINT32_MAX;
  uint32_t row = kNoRow;
};

class Table;

// Id structures of a table version that the VM builds on first use (index/table_ids.cc): a hash
// deviceId -> rows and the rank of every row in order(). A new version (WithChanges copies its
// parent) starts with what its parent had built: the hash stays usable for every later version,
// because rows keep their number and their ids (lookups verify each hit and scan the rows added
// since the hash was built); the ranks only while order() is the same vector.
struct IdHash;
struct IdRanks;
class IdCache {
 public:
  IdCache() = default;
  IdCache(const IdCache& o);
  IdCache& operator=(const IdCache& o);

 private:
  friend class Table;
  mutable std::mutex mu_;
  mutable std::shared_ptr<const IdHash> hash_;
  mutable std::shared_ptr<const IdRanks> ranks_;
  // hash_, once it is valid for this version: it is then never replaced (validity depends only
  // on the version's row count), so a lookup reads it without the lock. Not copied: a copy
  // belongs to another version.
  mutable std::atomic<const IdHash*> valid_hash_{nullptr};
};

// Builds a table from documents given one at a time (in any order; rows are numbered in arrival
// order and order() sorts them by id), so a large fleet never needs all its documents as Values
// at once. The documents must be valid twins with unique ids (as ReadTwins / VisitTwins give).
class TableStream {
 public:
  explicit TableStream(bool modules);
  ~TableStream();
  void Add(const Value& doc);
  // The same for a document whose input text is `spelled`, kept alive by `input`: where that
  // text is exactly what the table would store (the document printed compactly), the table
  // keeps a view of it, sharing `input`, instead of a copy of its own.
  void Add(const Value& doc, std::string_view spelled, const std::shared_ptr<const void>& input);
  // Both for a document as tokens (json_reader.h, `doc[0]` its root object): the same table as
  // for TokensToValue(doc), built without the Value. `spelled` must be the text the tokens were
  // read from (as VisitTwinsFile gives it); `printed`, that the reader found it spelled as the
  // print (VisitTwinsFile's `printed`; false: this checks).
  void Add(const JsonToken* doc);
  void Add(const JsonToken* doc, std::string_view spelled, const std::shared_ptr<const void>& input,
           bool printed = false);
  std::shared_ptr<const Table> Finish();

 private:
  template <class Doc>
  void AddDoc(const Doc& doc, bool print = true);
  template <class Doc>
  void AddSpelled(const Doc& doc, std::string_view spelled,
                  const std::shared_ptr<const void>& input, bool printed);
  struct State;
  std::unique_ptr<State> state_;
};

class Table {
 public:
  // Builds a table from documents already validated and sorted by (deviceId, moduleId) (as
  // ReadTwins returns them). `modules`: the documents are module twins.
  static std::shared_ptr<const Table> Build(const std::vector<Value>& docs, bool modules);

  bool modules() const { return modules_; }
  // Rows ever allocated (deleted rows keep their number until compaction).
  uint32_t row_count() const { return row_count_; }
  // Rows holding a twin.
  const Bitmap& live() const { return *live_; }
  uint64_t live_count() const { return live_->Cardinality(); }

  std::string_view device_id(uint32_t row) const;
  std::string_view module_id(uint32_t row) const;
  // The stored document's JSON text (empty for a deleted row). Valid while this version lives.
  std::string_view doc_json(uint32_t row) const;
  // The stored document parsed back into a Value.
  Value Document(uint32_t row) const;
  // Row of a twin by id; nullopt when absent or deleted.
  std::optional<uint32_t> FindRow(std::string_view device_id,
                                  std::string_view module_id = {}) const;
  // The same by binary search of order() (the oracle of FindRow's hash lookup).
  std::optional<uint32_t> FindRowByOrder(std::string_view device_id,
                                         std::string_view module_id = {}) const;
  // Live rows ordered by (deviceId, moduleId).
  const std::vector<uint32_t>& order() const { return *order_; }
  // The rows of `rows` ordered by (deviceId, moduleId).
  std::vector<uint32_t> InIdOrder(const Bitmap& rows) const;

  const ColumnList& columns() const { return columns_; }
  // Through the id cache (index/table_ids.cc), without string comparisons of the id order:
  // appends the live rows whose deviceId is `device_id` (one row in a device table; the device's
  // modules in a module table), in no particular order;
  void RowsOfDevice(std::string_view device_id, std::vector<uint32_t>* out) const;
  // Asks the caches for the line of the id hash where a lookup of `device_id` starts (a batch
  // does this a few lookups ahead; see Fleet::Apply).
  void PrefetchIdSlot(std::string_view device_id) const;
  // the same as InIdOrder(rows), by rank (rows outside order() fall back to InIdOrder).
  std::vector<uint32_t> InIdOrderByRank(const Bitmap& rows) const;

  const Column* column(uint32_t id) const { return columns_[id].get(); }
  // Column by exact path, or nullptr.
  const Column* FindExact(const ColumnPath& path) const;
  // Ids of the columns whose path equals `path` up to ASCII case (decision 2's candidates).
  const std::vector<uint32_t>* FindFolded(const ColumnPath& path) const;

  // A new version with the changes applied, in order (a later change to the same key wins).
  // Upserting an unknown key adds a row; deleting an unknown key is an Error. Up to `threads`
  // threads (the caller's included) diff the changed rows, when there are at least
  // `parallel_min_rows` of them, and merge the columns whose pending changes this version
  // merges (Column::Deferred); the result is the same for any values.
  Expected<std::shared_ptr<const Table>> WithChanges(const std::vector<Change>& changes,
                                                     unsigned threads = 1,
                                                     size_t parallel_min_rows = 256) const;

  // Memory of the index structures (columns, bitmaps, dictionaries, catalog, order), without
  // the stored documents; and the memory of the stored documents.
  size_t IndexMemoryBytes() const;
  size_t DocumentMemoryBytes() const;

 private:
  friend class TableCodec;
  friend class TableStream;
  Table() = default;
  void BuildCatalog();
  const DocChunk& chunk_of(uint32_t row) const {
    uint32_t c = row / kDocChunkRows;
    const DocNode* n = docs_.get();
    for (uint32_t level = docs_height_; level > 1; --level) {
      n = n->node((c >> (kDocFanoutBits * (level - 1))) & (kDocFanout - 1));
    }
    return *n->chunk(c & (kDocFanout - 1));
  }
  // The chunk holding `row` for writing, and the row's slot in it: groups and chunks shared with
  // other versions are copied first; missing ones are created (the table must not be shared).
  DocChunk& WritableChunk(uint32_t row, size_t* slot);
  // The ids of a chunk WritableChunk returned, for writing (copied first when shared).
  static DocIds& WritableIds(DocChunk& chunk);
  // live_ for writing: copied first when another version shares it (the table must not be
  // shared).
  Bitmap& WritableLive();

  bool modules_ = false;
  uint32_t row_count_ = 0;
  // Shared by the versions whose rows are the same (a patch copies a pointer, not the bitmap).
  std::shared_ptr<const Bitmap> live_ = std::make_shared<const Bitmap>();
  std::shared_ptr<const DocNode> docs_;  // root (nullptr: no rows yet)
  uint32_t docs_height_ = 0;             // levels of nodes; capacity 16^height chunks
  std::shared_ptr<const std::vector<uint32_t>> order_;
  ColumnList columns_;
  // Exact key -> column id; folded key -> column ids (sorted by exact spelling).
  std::shared_ptr<const std::unordered_map<std::string, uint32_t>> exact_;
  std::shared_ptr<const std::unordered_map<std::string, std::vector<uint32_t>>> folded_;
  IdCache id_cache_;  // see IdCache; table_ids.cc
  const IdHash& IdHashForLookup() const;
  // A new version (not yet shared) marks the id hash it inherited as valid when it serves its
  // rows, so that its first lookup need not take the lock.
  void ValidateInheritedIdHash();
  std::shared_ptr<const IdRanks> IdRanksForOrder() const;
};

// Every byte `t` holds: each row's ids and document, then each column's path and encoding (as an
// index file stores it). Tables hold the same exactly when these are equal; for tests.
std::string TableContents(const Table& t);

}  // namespace twinq::index

#endif  // TWINQ_INDEX_TABLE_H_
