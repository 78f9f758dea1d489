// A column of the index: every value at one node path of the twins (exact spelling), with a
// presence bitmap, one bitmap per JSON kind, native numbers, dictionary-coded strings and, where
// they pay, postings (value -> rows). Columns are immutable once built; a new table version
// shares the columns it did not change.
#ifndef TWINQ_INDEX_COLUMN_H_
#define TWINQ_INDEX_COLUMN_H_

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "engine/common/value.h"
#include "index/bitmap.h"

namespace twinq::index {

// One step of a column path: a property name (exact spelling) or an array index.
struct Step {
  bool is_index = false;
  std::string name;
  uint32_t index = 0;
  bool operator==(const Step&) const = default;
};
using ColumnPath = std::vector<Step>;

// `tags.roles[0]`, `properties.reported.$metadata`; odd names as [[name]].
std::string PathDisplay(const ColumnPath& path);
// The catalog key: names ASCII-lower-cased. Two paths differing only in the case of their
// names share a key (DESIGN.md decision 2 chooses among them per document).
std::string FoldedKey(const ColumnPath& path);
// The exact key (spelling kept).
std::string ExactKey(const ColumnPath& path);

// JSON kinds as stored; booleans are split so that `x = true` is one bitmap.
enum class Kind : uint8_t { kNull, kFalse, kTrue, kNumber, kString, kArray, kObject };
inline constexpr size_t kKindCount = 7;
const char* KindName(Kind k);

// A sorted set of distinct strings; a string's code is its rank, so ranges and prefixes of
// strings are ranges of codes.
// The strings are front-coded in blocks of kBlock (most of the index's strings are near-unique
// timestamps and etags, where a header or an allocation per string would dominate, and sorted
// timestamps share long prefixes): a block starts with its head string, whole; every other
// string of the block is stored as the length of the prefix it shares with the head plus the
// rest. Random access is therefore O(1) (skip at most kBlock - 1 lengths, copy two pieces), and
// a head is a view into the buffer itself. Lengths are LEB128 varints.
class Dictionary {
 public:
  static constexpr uint32_t kBlock = 16;

  // The exact encoded size of strings given in order (a first pass before a Builder, so the
  // buffer is allocated once, at its final size). Keeps a view of the current block's head: the
  // strings must outlive the Sizer.
  class Sizer {
   public:
    void Add(std::string_view s);
    size_t strings() const { return size_; }
    size_t bytes() const { return bytes_; }

   private:
    std::string_view head_;
    size_t bytes_ = 0;
    uint32_t size_ = 0;
  };

  // Appends strings in strictly ascending order, then Finish()es into a Dictionary.
  class Builder {
   public:
    // `bytes`: the encoded size (Sizer::bytes()), or an estimate.
    void Reserve(size_t strings, size_t bytes);
    void Add(std::string_view s);
    uint32_t size() const { return size_; }  // the strings added so far
    Dictionary Finish() &&;

   private:
    // Room an entry's two lengths may take beyond its bytes (two varints of at most 10 bytes).
    static constexpr size_t kMaxLengthBytes = 20;
    struct Free {
      void operator()(char* p) const { std::free(p); }
    };
    // Makes room for `need` bytes in all (realloc: an estimate too small grows by doubling).
    void Grow(size_t need);
    // The encoded strings are bytes_[0, used_); an entry is written in place. The buffer comes
    // from malloc so that Finish can give back the room left over with realloc, which shrinks a
    // large block where it lies (a reserve larger than the result costs no copy, and pages never
    // written were never touched).
    std::unique_ptr<char, Free> bytes_;
    size_t capacity_ = 0;
    size_t used_ = 0;
    std::vector<uint64_t> blocks_;
    uint32_t size_ = 0;
    uint64_t head_offset_ = 0;  // the current block's head in bytes_
    uint32_t head_size_ = 0;
  };

  Dictionary() = default;
  // `sorted_unique` must be strictly ascending.
  template <class Strings>
  explicit Dictionary(const Strings& sorted_unique) {
    Sizer sizer;
    for (const auto& s : sorted_unique) sizer.Add(std::string_view(s));
    Builder b;
    b.Reserve(sizer.strings(), sizer.bytes());
    for (const auto& s : sorted_unique) b.Add(std::string_view(s));
    *this = std::move(b).Finish();
  }

  size_t size() const { return size_; }
  // The string of `code`: a view into the dictionary for a block head, else into *scratch
  // (which it overwrites). Valid until the dictionary or *scratch changes.
  std::string_view View(uint32_t code, std::string* scratch) const;
  // The string of `code`, as a copy.
  std::string String(uint32_t code) const {
    std::string scratch;
    return std::string(View(code, &scratch));
  }
  // Calls f(code, view) for every string in code order (the view lives until the next call).
  template <class F>
  void ForEach(F&& f) const {
    std::string scratch;
    for (uint32_t b = 0; b < blocks_.size(); ++b) {
      const char* p = data() + blocks_[b];
      std::string_view head = ReadHead(&p);
      uint32_t first = b * kBlock;
      f(first, head);
      uint32_t end = std::min<uint32_t>(first + kBlock, size_);
      for (uint32_t code = first + 1; code < end; ++code) {
        Entry e = ReadEntry(&p);
        scratch.assign(head.data(), e.shared);
        scratch.append(e.suffix);
        f(code, std::string_view(scratch));
      }
    }
  }
  // Code of `s`, or -1.
  int64_t Find(std::string_view s) const;
  // First code whose string is >= s (size() when none).
  uint32_t LowerBound(std::string_view s) const;
  // First code whose string is > s.
  uint32_t UpperBound(std::string_view s) const;
  // Codes [begin, end) of the strings starting with `prefix`.
  std::pair<uint32_t, uint32_t> PrefixRange(std::string_view prefix) const;
  size_t MemoryBytes() const;

  // The encoded strings, exactly as a Builder wrote them (the index file stores dictionaries in
  // this form, so loading one does not rebuild it).
  std::string_view encoded() const { return std::string_view(data(), size_bytes_); }
  // A dictionary of `size` strings over `encoded` bytes (as encoded() gives them), after checking
  // them: every length within the bytes, the strings strictly ascending, no byte left over.
  // With an `owner` (which keeps the bytes alive), the dictionary views the bytes in place (the
  // mapped index file, Fleet::Open); without one, it copies them. False when the check fails.
  static bool FromEncoded(std::string_view encoded, uint32_t size,
                          const std::shared_ptr<const void>& owner, Dictionary* out);

 private:
  struct Entry {
    uint32_t shared = 0;  // bytes shared with the block's head
    std::string_view suffix;
  };
  static uint64_t ReadVarint(const char** p) {
    uint64_t v = 0;
    for (int shift = 0;; shift += 7) {
      uint8_t b = static_cast<uint8_t>(*(*p)++);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return v;
    }
  }
  static std::string_view ReadHead(const char** p) {
    uint64_t n = ReadVarint(p);
    std::string_view s(*p, n);
    *p += n;
    return s;
  }
  static Entry ReadEntry(const char** p) {
    Entry e;
    e.shared = static_cast<uint32_t>(ReadVarint(p));
    uint64_t n = ReadVarint(p);
    e.suffix = std::string_view(*p, n);
    *p += n;
    return e;
  }
  // The first code of block `b` whose string is >= s (strict: > s); kBlock when none.
  uint32_t BoundInBlock(uint32_t b, std::string_view s, bool strict) const;
  // The first code whose string is >= s (strict: > s).
  uint32_t Bound(std::string_view s, bool strict) const;
  std::string_view Head(uint32_t b) const {
    const char* p = data() + blocks_[b];
    return ReadHead(&p);
  }
  const char* data() const { return bytes_.get(); }

  // The encoded strings: a string of the dictionary's own (Builder, FromEncoded without an
  // owner) or a view into a mapped index file. Shared by copies (it is never modified).
  std::shared_ptr<const char> bytes_;
  size_t size_bytes_ = 0;
  size_t capacity_bytes_ = 0;     // memory held for the bytes (their string's capacity)
  std::vector<uint64_t> blocks_;  // offset of each block in the bytes
  uint32_t size_ = 0;
};

struct ColumnStats {
  std::array<uint64_t, kKindCount> kind_counts{};
  double min_number = 0;
  double max_number = 0;
};

// A row-indexed view of a column for the VM's residual evaluation, projections and aggregates:
// built on first use (thread-safe) and kept for the column's lifetime.
inline constexpr uint8_t kAbsent = 255;
struct DenseView {
  std::vector<uint8_t> kind;   // per row (up to the last present row): a Kind, or kAbsent
  std::vector<uint32_t> slot;  // per row: index into numbers(), codes() or array_lengths()
  std::array<std::vector<uint32_t>, kKindCount> rows;  // the rows of each kind, ascending
};

// One node of a flattened document.
struct FlatEntry {
  ColumnPath path;
  Kind kind = Kind::kNull;
  double number = 0;
  std::string string;
  uint32_t length = 0;  // arrays: element count
};
// Flattens a document into entries for every node below the root, depth first in document
// order: objects and arrays are entries too (their members follow).
void Flatten(const Value& doc, std::vector<FlatEntry>* out);

class Column;

// The changes of a deferred column version (Column::Deferred): the rows replaced in `base`.
struct ColumnDelta {
  std::shared_ptr<const Column> base;
  std::vector<uint32_t> changed;                        // sorted
  std::vector<std::pair<uint32_t, FlatEntry>> entries;  // sorted by row; a subset of changed
};

class Column {
 public:
  Column() : d_(std::make_unique<Data>()) {}
  // Unlinks a chain of deferred versions one version at a time (see column.cc).
  ~Column();
  // A version of `base` whose rows `changed` lose their entries and take those of `entries`
  // (paths are ignored). The merge (linear in the column) is deferred to the first read of any
  // accessor but path(), so a writer that changes a few rows of a large column pays only for
  // the change; consecutive deferred versions form a chain that one merge resolves. Reads are
  // thread-safe: the first reader merges under a lock, later readers see the result.
  static std::shared_ptr<const Column> Deferred(
      std::shared_ptr<const Column> base, std::vector<uint32_t> changed,
      std::vector<std::pair<uint32_t, FlatEntry>> entries);
  // Rows changed since the last merged version of this column (0 when merged).
  size_t pending_rows() const;
  // Runs a deferred merge now (no-op when there is none).
  void Materialize() const { Ensure(); }

  const ColumnPath& path() const { return path_ != nullptr ? *path_ : kNoPath; }
  // Rows with any value at this path.
  const Bitmap& present() const {
    Ensure();
    return d_->present_;
  }
  const Bitmap& rows(Kind k) const {
    Ensure();
    return d_->by_kind_[static_cast<size_t>(k)];
  }
  // Numbers of the rows in rows(kNumber), in row order; codes of the rows in rows(kString).
  const std::vector<double>& numbers() const {
    Ensure();
    return d_->numbers_;
  }
  const std::vector<uint32_t>& codes() const {
    Ensure();
    return d_->codes_;
  }
  const Dictionary& dictionary() const {
    Ensure();
    return d_->dict_;
  }
  // Element counts of the rows in rows(kArray), in row order.
  const std::vector<uint32_t>& array_lengths() const {
    Ensure();
    return d_->array_lengths_;
  }
  // Postings per string code (empty when the column has too many distinct strings).
  bool has_string_postings() const {
    Ensure();
    return !d_->string_postings_.empty() || d_->dict_.size() == 0;
  }
  const Bitmap& string_posting(uint32_t code) const {
    Ensure();
    return d_->string_postings_[code];
  }
  const std::vector<Bitmap>& string_postings_list() const {
    Ensure();
    return d_->string_postings_;
  }
  // Distinct numbers (sorted) and their postings (empty when too many distinct numbers).
  const std::vector<double>& distinct_numbers() const {
    Ensure();
    return d_->distinct_numbers_;
  }
  const std::vector<Bitmap>& number_postings() const {
    Ensure();
    return d_->number_postings_;
  }
  const ColumnStats& stats() const {
    Ensure();
    return d_->stats_;
  }

  // The value of one row, rebuilt from the column (objects and arrays come back as empty
  // containers: their members live in child columns). Undefined when absent.
  Value ValueAt(uint32_t row) const;
  Kind KindAt(uint32_t row, bool* present) const;
  size_t MemoryBytes() const;
  // The dense view (built once, on first call; safe from many threads).
  const DenseView& dense() const;

 private:
  friend class ColumnBuilder;
  friend class ColumnCodec;
  struct DeferredKey {};  // Deferred's constructor: no data until the merge
 public:
  explicit Column(DeferredKey) {}

 private:
  void Ensure() const {
    if (deferred_ && !merged_.load(std::memory_order_acquire)) Merge();
  }
  void Merge() const;
  // Takes the data of a freshly built column (not its path or deferral state).
  void AdoptData(Column&& other);

  // Shared by the versions of a column (a patch makes a new version of each column it touches:
  // no path copied per patch).
  static const ColumnPath kNoPath;
  std::shared_ptr<const ColumnPath> path_;
  // The column's data. A deferred version has none until it is merged: it is a path, a delta
  // and a lock (120 bytes), and a chain of them can be tens of thousands of versions long.
  struct Data {
    Bitmap present_;
    std::array<Bitmap, kKindCount> by_kind_;
    std::vector<double> numbers_;
    std::vector<uint32_t> codes_;
    Dictionary dict_;
    std::vector<uint32_t> array_lengths_;
    std::vector<Bitmap> string_postings_;
    std::vector<double> distinct_numbers_;
    std::vector<Bitmap> number_postings_;
    ColumnStats stats_;
    // stats_.min_number / max_number from numbers_ (left alone when there are none).
    void SetNumberRange();
  };
  std::unique_ptr<Data> d_;
  mutable std::once_flag dense_once_;
  mutable std::unique_ptr<DenseView> dense_;
  // Deferred versions: fixed at construction, then pending_ is cleared once merged.
  bool deferred_ = false;
  size_t pending_rows_ = 0;
  mutable std::atomic<bool> merged_{false};
  mutable std::mutex merge_mu_;
  mutable std::shared_ptr<const ColumnDelta> pending_;
};

// A writer merges a deferred column at once when its chain holds more changed rows than this
// (per column, so pending memory stays bounded; readers then never pay for long chains).
size_t MaxPendingRows(uint32_t table_rows);

// Collects (row, value) entries in increasing row order, then builds an immutable Column.
class ColumnBuilder {
 public:
  explicit ColumnBuilder(ColumnPath path) : path_(std::move(path)) {}
  const ColumnPath& path() const { return path_; }

  void AddNull(uint32_t row) { Add(row, Kind::kNull); }
  void AddBool(uint32_t row, bool b) { Add(row, b ? Kind::kTrue : Kind::kFalse); }
  void AddNumber(uint32_t row, double d) {
    Add(row, Kind::kNumber);
    numbers_.push_back(d);
  }
  void AddString(uint32_t row, std::string_view s);
  void AddArray(uint32_t row, uint32_t length) {
    Add(row, Kind::kArray);
    array_lengths_.push_back(length);
  }
  void AddObject(uint32_t row) { Add(row, Kind::kObject); }
  // Copies the entry of `row` from an existing column (row must be present there).
  void CopyFrom(const Column& c, uint32_t row, uint32_t new_row);
  bool empty() const { return entries_ == 0; }

  std::shared_ptr<const Column> Build() &&;

 private:
  // Most entries of a twin fleet lie in columns that every row has, with one kind of value (two
  // thirds and 97 % of them in a generated fleet). Such a column stores neither its rows nor its
  // kinds: they are listed only from the first entry that breaks the pattern (SpillRows,
  // SpillKinds). This saves the builder's memory, which is fresh memory, the slowest part of an
  // ingest on the benchmark VM.
  void Add(uint32_t row, Kind k) {
    if (all_rows_ && one_kind_ && row == entries_ && (entries_ == 0 || k == kind_)) {
      kind_ = k;
      ++entries_;
      return;
    }
    AddListed(row, k);
  }
  // Add for a builder that lists its rows or kinds, or must start to.
  void AddListed(uint32_t row, Kind k);
  void SpillRows(uint32_t row);
  void SpillKinds(Kind k);
  uint32_t EntryRow(size_t entry) const {
    return all_rows_ ? static_cast<uint32_t>(entry) : rows_[entry];
  }

  ColumnPath path_;
  size_t entries_ = 0;
  bool all_rows_ = true;  // the entries' rows are 0, 1, ..., entries_ - 1; rows_ is empty
  bool one_kind_ = true;  // every entry is of kind_; kinds_ is empty
  Kind kind_ = Kind::kNull;
  std::vector<uint32_t> rows_;
  std::vector<Kind> kinds_;
  std::vector<double> numbers_;
  std::vector<uint32_t> array_lengths_;
  // Strings are interned while building: temporary codes in first-seen order. The distinct
  // strings lie back to back in `arena_` and are found through an open-addressing table of
  // temporary codes (most strings of a twin fleet are near-unique timestamps and etags: a node
  // and a string allocation per distinct value, as a std::unordered_map<std::string> takes,
  // were most of an ingest).
  std::string_view Distinct(uint32_t code) const {
    return std::string_view(arena_.data() + arena_offsets_[code],
                            arena_offsets_[code + 1] - arena_offsets_[code]);
  }
  void GrowSlots();
  // The temporary codes in the order of their strings.
  std::vector<uint32_t> SortedCodes() const;
  // The temporary code of each string entry, in order, up to where interning stopped; each
  // entry after that is a new code (temporary codes temps - unlisted_codes_ to temps - 1).
  std::vector<uint32_t> temp_codes_;
  size_t unlisted_codes_ = 0;
  std::string arena_;
  std::vector<uint64_t> arena_offsets_ = {0};  // temporary codes + 1
  // (temporary code + 1) << 32 | the low 32 bits of the string's hash; 0: free.
  std::vector<uint64_t> slots_;
  // Interning stops after kInternProbe strings when nearly all were distinct (see AddString);
  // from then on each string is a temporary code of its own, and Build merges equal ones.
  static constexpr size_t kInternProbe = 1024;
  bool interning_ = true;
};

// Postings are built when a column has at most this many distinct values, or few relative to
// its rows (see ColumnBuilder::Build).
inline constexpr size_t kMaxPostingsAbsolute = 1u << 16;

}  // namespace twinq::index

#endif  // TWINQ_INDEX_COLUMN_H_
