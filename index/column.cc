#include "index/column.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <new>
#include <span>

#include "index/column_codec.h"
#include "index/hash.h"
#include "index/prefetch.h"

namespace twinq::index {

namespace {

bool PlainName(const std::string& n) {
  if (n.empty()) return false;
  for (size_t k = 0; k < n.size(); ++k) {
    unsigned char c = static_cast<unsigned char>(n[k]);
    bool ok = c >= 0x80 || c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (k > 0 && c >= '0' && c <= '9') || (k == 0 && c == '$');
    if (!ok) return false;
  }
  return true;
}

}  // namespace

std::string PathDisplay(const ColumnPath& path) {
  std::string out;
  for (size_t i = 0; i < path.size(); ++i) {
    if (path[i].is_index) {
      out += fmt::format("[{}]", path[i].index);
      continue;
    }
    if (i > 0) out.push_back('.');
    out += PlainName(path[i].name) ? path[i].name : "[[" + path[i].name + "]]";
  }
  return out;
}

namespace {

// A catalog key: "\x1e" + index for an index step, "\x1f" + length + ":" + name for a name step.
// The length prefix keeps keys unambiguous whatever a name holds (JSON keys may contain \x1e,
// \x1f, digits, ...: {"a\u001fb": 1} and {"a": {"b": 1}} are different paths). Case variants
// have equal lengths step by step, so their keys still sort by spelling, step by step.
std::string CatalogKey(const ColumnPath& path, bool fold) {
  std::string out;
  for (const Step& s : path) {
    if (s.is_index) {
      out += fmt::format("\x1e{}", s.index);
    } else {
      out += fmt::format("\x1f{}:", s.name.size());
      out += fold ? ToLowerAscii(s.name) : s.name;
    }
  }
  return out;
}

}  // namespace

std::string FoldedKey(const ColumnPath& path) { return CatalogKey(path, true); }

std::string ExactKey(const ColumnPath& path) { return CatalogKey(path, false); }

const char* KindName(Kind k) {
  switch (k) {
    case Kind::kNull:
      return "null";
    case Kind::kFalse:
      return "false";
    case Kind::kTrue:
      return "true";
    case Kind::kNumber:
      return "number";
    case Kind::kString:
      return "string";
    case Kind::kArray:
      return "array";
    case Kind::kObject:
      return "object";
  }
  return "?";
}

namespace {

// Writes v at `out` (at most 10 bytes); returns the end.
char* PutVarint(char* out, uint64_t v) {
  while (v >= 0x80) {
    *out++ = static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  *out++ = static_cast<char>(v);
  return out;
}

size_t VarintBytes(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

// Eight bytes at a time: a sorted column's neighbours share long prefixes (timestamps, ids).
size_t SharedPrefix(std::string_view a, std::string_view b) {
  // (The first differing byte is the lowest set byte of the XOR.)
  static_assert(std::endian::native == std::endian::little, "a little-endian machine");
  const size_t n = std::min(a.size(), b.size());
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t x, y;
    std::memcpy(&x, a.data() + i, 8);
    std::memcpy(&y, b.data() + i, 8);
    if (x != y) return i + static_cast<size_t>(std::countr_zero(x ^ y) / 8);
  }
  while (i < n && a[i] == b[i]) ++i;
  return i;
}

}  // namespace

void Dictionary::Sizer::Add(std::string_view s) {
  if (size_ % kBlock == 0) {
    head_ = s;
    bytes_ += VarintBytes(s.size()) + s.size();
  } else {
    size_t shared = SharedPrefix(head_, s);
    bytes_ += VarintBytes(shared) + VarintBytes(s.size() - shared) + (s.size() - shared);
  }
  ++size_;
}

void Dictionary::Builder::Grow(size_t need) {
  const size_t capacity = std::max(need, 2 * capacity_);
  char* p = static_cast<char*>(std::realloc(bytes_.get(), capacity));
  if (p == nullptr) throw std::bad_alloc();  // as a std::string would
  static_cast<void>(bytes_.release());       // (realloc freed or kept it)
  bytes_.reset(p);
  capacity_ = capacity;
}

void Dictionary::Builder::Reserve(size_t strings, size_t bytes) {
  if (bytes + kMaxLengthBytes > capacity_) Grow(bytes + kMaxLengthBytes);
  blocks_.reserve((strings + kBlock - 1) / kBlock);
}

void Dictionary::Builder::Add(std::string_view s) {
  const bool head = size_ % kBlock == 0;
  const size_t shared =
      head ? 0 : SharedPrefix(std::string_view(bytes_.get() + head_offset_, head_size_), s);
  const size_t rest = s.size() - shared;
  if (capacity_ - used_ < rest + kMaxLengthBytes) Grow(used_ + rest + kMaxLengthBytes);
  char* out = bytes_.get() + used_;
  if (head) {
    blocks_.push_back(used_);
    out = PutVarint(out, s.size());
    head_offset_ = static_cast<uint64_t>(out - bytes_.get());
    head_size_ = static_cast<uint32_t>(s.size());
  } else {
    out = PutVarint(out, shared);
    out = PutVarint(out, rest);
  }
  std::memcpy(out, s.data() + shared, rest);
  used_ = static_cast<size_t>(out - bytes_.get()) + rest;
  ++size_;
}

Dictionary Dictionary::Builder::Finish() && {
  // The room left (the length bytes' margin, or an estimate's surplus) is given back.
  if (capacity_ != std::max<size_t>(used_, 1)) {
    capacity_ = 0;
    Grow(std::max<size_t>(used_, 1));
  }
  blocks_.shrink_to_fit();
  Dictionary d;
  d.bytes_ = std::shared_ptr<const char>(bytes_.release(),
                                         [](const char* p) { std::free(const_cast<char*>(p)); });
  d.size_bytes_ = used_;
  d.capacity_bytes_ = capacity_;
  d.blocks_ = std::move(blocks_);
  d.size_ = size_;
  return d;
}

bool Dictionary::FromEncoded(std::string_view encoded, uint32_t size,
                             const std::shared_ptr<const void>& owner, Dictionary* out) {
  const char* p = encoded.data();
  const char* const end = p + encoded.size();
  // A varint of at most 10 bytes (as ReadVarint decodes it) whose value fits in what is left
  // (`limit` for a shared prefix, which must not exceed its head).
  auto varint = [&](uint64_t limit, uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p == end) return false;
      uint8_t b = static_cast<uint8_t>(*p++);
      *v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return *v <= limit;
    }
    return false;
  };
  std::vector<uint64_t> blocks;
  blocks.reserve((static_cast<size_t>(size) + kBlock - 1) / kBlock);
  std::string prev, cur;  // the previous and the current string, to check the order
  std::string_view head;
  for (uint32_t i = 0; i < size; ++i) {
    uint64_t shared = 0, n;
    if (i % kBlock == 0) {
      blocks.push_back(static_cast<uint64_t>(p - encoded.data()));
      if (!varint(static_cast<uint64_t>(end - p), &n) || n > static_cast<uint64_t>(end - p)) {
        return false;
      }
      head = std::string_view(p, n);
    } else if (!varint(head.size(), &shared) || !varint(static_cast<uint64_t>(end - p), &n) ||
               n > static_cast<uint64_t>(end - p)) {
      return false;
    }
    cur.assign(head.data(), shared);
    cur.append(p, n);
    p += n;
    if (i > 0 && !(prev < cur)) return false;
    prev.swap(cur);
  }
  if (p != end) return false;
  Dictionary d;
  if (owner) {
    d.bytes_ = std::shared_ptr<const char>(owner, encoded.data());
    d.capacity_bytes_ = encoded.size();
  } else {
    auto owned = std::make_shared<const std::string>(encoded);
    d.bytes_ = std::shared_ptr<const char>(owned, owned->data());
    d.capacity_bytes_ = owned->capacity();
  }
  d.size_bytes_ = encoded.size();
  d.blocks_ = std::move(blocks);
  d.size_ = size;
  *out = std::move(d);
  return true;
}

std::string_view Dictionary::View(uint32_t code, std::string* scratch) const {
  const char* p = data() + blocks_[code / kBlock];
  std::string_view head = ReadHead(&p);
  uint32_t i = code % kBlock;
  if (i == 0) return head;
  Entry e;
  for (uint32_t k = 0; k < i; ++k) e = ReadEntry(&p);
  scratch->assign(head.data(), e.shared);
  scratch->append(e.suffix);
  return *scratch;
}

uint32_t Dictionary::BoundInBlock(uint32_t b, std::string_view s, bool strict) const {
  const char* p = data() + blocks_[b];
  std::string_view head = ReadHead(&p);
  uint32_t first = b * kBlock;
  int c = head.compare(s);
  if (strict ? c > 0 : c >= 0) return first;
  uint32_t end = std::min<uint32_t>(first + kBlock, size_);
  for (uint32_t code = first + 1; code < end; ++code) {
    Entry e = ReadEntry(&p);
    // Compare head[0, shared) + suffix with s, without building the string.
    size_t k = std::min<size_t>(e.shared, s.size());
    c = head.substr(0, k).compare(s.substr(0, k));
    if (c == 0) c = s.size() < e.shared ? 1 : e.suffix.compare(s.substr(e.shared));
    if (strict ? c > 0 : c >= 0) return code;
  }
  return end;
}

uint32_t Dictionary::Bound(std::string_view s, bool strict) const {
  // The first block whose head satisfies the bound; the answer is in the block before it (or is
  // that head).
  uint32_t lo = 0, hi = static_cast<uint32_t>(blocks_.size());
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    int c = Head(mid).compare(s);
    if (strict ? c > 0 : c >= 0) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  if (lo == 0) return 0;
  return BoundInBlock(lo - 1, s, strict);
}

int64_t Dictionary::Find(std::string_view s) const {
  uint32_t lb = LowerBound(s);
  if (lb >= size()) return -1;
  std::string scratch;
  return View(lb, &scratch) == s ? int64_t{lb} : int64_t{-1};
}

uint32_t Dictionary::LowerBound(std::string_view s) const { return Bound(s, false); }

uint32_t Dictionary::UpperBound(std::string_view s) const { return Bound(s, true); }

std::pair<uint32_t, uint32_t> Dictionary::PrefixRange(std::string_view prefix) const {
  // Strings with the prefix are [LowerBound(prefix), LowerBound(the least string above them)):
  // the prefix with trailing 0xff bytes dropped and its last byte incremented (strings compare
  // as unsigned bytes).
  uint32_t begin = LowerBound(prefix);
  std::string next(prefix);
  while (!next.empty() && static_cast<unsigned char>(next.back()) == 0xff) next.pop_back();
  if (next.empty()) return {begin, static_cast<uint32_t>(size())};
  next.back() = static_cast<char>(static_cast<unsigned char>(next.back()) + 1);
  return {begin, LowerBound(next)};
}

size_t Dictionary::MemoryBytes() const {
  return capacity_bytes_ + blocks_.capacity() * sizeof(uint64_t);
}

Kind Column::KindAt(uint32_t row, bool* present) const {
  Ensure();
  *present = d_->present_.Contains(row);
  if (!*present) return Kind::kNull;
  for (size_t k = 0; k < kKindCount; ++k) {
    if (d_->by_kind_[k].Contains(row)) return static_cast<Kind>(k);
  }
  return Kind::kNull;
}

Value Column::ValueAt(uint32_t row) const {
  bool present = false;
  Kind k = KindAt(row, &present);
  if (!present) return Value();
  switch (k) {
    case Kind::kNull:
      return Value::Null();
    case Kind::kFalse:
      return Value::Bool(false);
    case Kind::kTrue:
      return Value::Bool(true);
    case Kind::kNumber:
      return Value::Number(d_->numbers_[rows(Kind::kNumber).Rank(row) - 1]);
    case Kind::kString:
      return Value::String(d_->dict_.String(d_->codes_[rows(Kind::kString).Rank(row) - 1]));
    case Kind::kArray:
      return Value::MakeArray({});
    case Kind::kObject:
      return Value::MakeObject({});
  }
  return Value();
}

const DenseView& Column::dense() const {
  Ensure();
  std::call_once(dense_once_, [this] {
    auto d = std::make_unique<DenseView>();
    size_t n = d_->present_.Empty() ? 0 : d_->present_.Maximum() + 1;
    d->kind.assign(n, kAbsent);
    d->slot.assign(n, 0);
    for (size_t k = 0; k < kKindCount; ++k) {
      d->rows[k] = d_->by_kind_[k].ToVector();
      uint32_t i = 0;
      for (uint32_t row : d->rows[k]) {
        d->kind[row] = static_cast<uint8_t>(k);
        d->slot[row] = i++;
      }
    }
    dense_ = std::move(d);
  });
  return *dense_;
}

size_t Column::MemoryBytes() const {
  Ensure();
  size_t n = sizeof(Column) + sizeof(Data) + d_->present_.SizeInBytes();
  for (const Bitmap& b : d_->by_kind_) n += b.SizeInBytes();
  n += d_->numbers_.capacity() * sizeof(double) + d_->codes_.capacity() * sizeof(uint32_t) +
       d_->array_lengths_.capacity() * sizeof(uint32_t) + d_->dict_.MemoryBytes();
  for (const Bitmap& b : d_->string_postings_) n += b.SizeInBytes() + sizeof(Bitmap);
  for (const Bitmap& b : d_->number_postings_) n += b.SizeInBytes() + sizeof(Bitmap);
  n += d_->distinct_numbers_.capacity() * sizeof(double);
  return n;
}

size_t MaxPendingRows(uint32_t table_rows) { return std::max<size_t>(1024, table_rows / 32); }

namespace {

// One change of a chain being merged: `row` as the version `age` (0: the newest) left it. (The
// merge also lists the versions themselves this way, by their first rows.)
struct ChainStep {
  uint32_t row;
  uint32_t age;
  const FlatEntry* entry;  // nullptr: the row holds no value here any more
};

void SortByKey(std::vector<std::pair<uint64_t, uint32_t>>* v);  // (below: the ingest's sort)

// Sorts `steps` by row and then by age, through SortByKey (a radix sort from 4,096 elements) on
// the two as one key. A chain of single-twin patches is tens of thousands of one-row versions at
// scattered rows, and there a radix sort is several times faster than std::sort with a lambda
// (some 15 rounds of comparisons). The keys are distinct (a version's rows are), so the order is
// the one std::sort by (row, age) gives.
void SortSteps(std::vector<ChainStep>* steps) {
  std::vector<std::pair<uint64_t, uint32_t>> keyed;
  keyed.reserve(steps->size());
  for (uint32_t i = 0; i < steps->size(); ++i) {
    keyed.emplace_back(uint64_t{(*steps)[i].row} << 32 | (*steps)[i].age, i);
  }
  SortByKey(&keyed);
  std::vector<ChainStep> sorted;
  sorted.reserve(steps->size());
  for (const auto& [key, i] : keyed) sorted.push_back((*steps)[i]);
  steps->swap(sorted);
}

}  // namespace

std::shared_ptr<const Column> Column::Deferred(
    std::shared_ptr<const Column> base, std::vector<uint32_t> changed,
    std::vector<std::pair<uint32_t, FlatEntry>> entries) {
  auto c = std::make_shared<Column>(DeferredKey{});
  c->path_ = base->path_;
  c->deferred_ = true;
  c->pending_rows_ = changed.size() + base->pending_rows();
  auto delta = std::make_shared<ColumnDelta>();
  delta->base = std::move(base);
  delta->changed = std::move(changed);
  delta->entries = std::move(entries);
  for (auto& [row, e] : delta->entries) ColumnPath().swap(e.path);  // not needed by the merge
  c->pending_ = std::move(delta);
  return c;
}

const ColumnPath Column::kNoPath;

Column::~Column() {
  // Each deferred version holds the version before it through its delta, so the default
  // destructor would recurse once per version of an unmerged chain, and MaxPendingRows lets a
  // chain grow past what a thread's stack holds (some 100k versions on 8 MiB: a table of 3.2M
  // rows patched one twin at a time). The chain is unlinked here in a loop instead, as far as
  // this column is its only owner. A version that has been merged holds no delta, and only
  // merged columns are ever cached by weak pointer (the VM's number bins read numbers(), which
  // merges), so an unmerged base whose use count is 1 cannot gain an owner meanwhile.
  std::shared_ptr<const ColumnDelta> delta = std::move(pending_);
  while (delta != nullptr && delta.use_count() == 1) {
    std::shared_ptr<const Column> base = std::move(const_cast<ColumnDelta&>(*delta).base);
    delta.reset();
    if (base == nullptr || base.use_count() != 1 || !base->deferred_ ||
        base->merged_.load(std::memory_order_acquire)) {
      break;
    }
    delta = std::move(base->pending_);
    base.reset();  // its delta was taken above: nothing below it is destroyed here
  }
}

size_t Column::pending_rows() const {
  return deferred_ && !merged_.load(std::memory_order_acquire) ? pending_rows_ : 0;
}

void Column::Merge() const {
  std::lock_guard<std::mutex> lock(merge_mu_);
  if (merged_.load(std::memory_order_acquire)) return;
  // The chain of unmerged versions, newest first, down to a merged (or plain) column. Locks are
  // taken newest to oldest, the only order any thread takes them in.
  std::vector<std::shared_ptr<const ColumnDelta>> chain{pending_};
  std::shared_ptr<const Column> bottom = pending_->base;
  while (bottom->deferred_) {
    std::unique_lock<std::mutex> l(bottom->merge_mu_);
    if (bottom->merged_.load(std::memory_order_acquire)) break;
    chain.push_back(bottom->pending_);
    std::shared_ptr<const Column> next = bottom->pending_->base;
    l.unlock();
    bottom = std::move(next);
  }
  // The newest change of each row wins.
  std::vector<uint32_t> changed;
  std::vector<std::pair<uint32_t, const FlatEntry*>> entries;
  if (chain.size() == 1) {
    changed = chain[0]->changed;
    entries.reserve(chain[0]->entries.size());
    for (const auto& [row, e] : chain[0]->entries) entries.emplace_back(row, &e);
  } else {
    // Every (row, version) change, sorted by row and then newest first: the first of each row's
    // run is the one that counts. (Each delta's rows are ascending and distinct.)
    std::vector<ChainStep> steps;
    size_t total = 0;
    for (const auto& d : chain) total += d->changed.size();
    steps.reserve(total);
    // Each delta is a sorted run. Laid out by their first rows (ties: newest first), runs whose
    // rows do not interleave (a job's batches, a writer's distinct twins) are already in order,
    // and only interleaving runs need the sort. (Versions without rows add nothing.)
    auto before = [](const ChainStep& a, const ChainStep& b) {
      return a.row != b.row ? a.row < b.row : a.age < b.age;
    };
    std::vector<ChainStep> by_first;
    by_first.reserve(chain.size());
    for (size_t age = 0; age < chain.size(); ++age) {
      const std::vector<uint32_t>& rows = chain[age]->changed;
      if (!rows.empty()) by_first.push_back({rows.front(), static_cast<uint32_t>(age), nullptr});
    }
    if (!std::is_sorted(by_first.begin(), by_first.end(), before)) SortSteps(&by_first);
    for (const ChainStep& version : by_first) {
      const ColumnDelta& d = *chain[version.age];
      size_t e = 0;
      for (uint32_t row : d.changed) {
        while (e < d.entries.size() && d.entries[e].first < row) ++e;
        bool has = e < d.entries.size() && d.entries[e].first == row;
        steps.push_back({row, version.age, has ? &d.entries[e].second : nullptr});
      }
    }
    if (!std::is_sorted(steps.begin(), steps.end(), before)) SortSteps(&steps);
    changed.reserve(steps.size());
    entries.reserve(steps.size());
    for (size_t i = 0; i < steps.size(); ++i) {
      if (i > 0 && steps[i].row == steps[i - 1].row) continue;
      changed.push_back(steps[i].row);
      if (steps[i].entry != nullptr) entries.emplace_back(steps[i].row, steps[i].entry);
    }
  }
  std::shared_ptr<const Column> merged = ColumnCodec::Merge(*bottom, changed, entries);
  const_cast<Column*>(this)->AdoptData(std::move(*const_cast<Column*>(merged.get())));
  pending_.reset();
  merged_.store(true, std::memory_order_release);
}

void Column::AdoptData(Column&& o) { d_ = std::move(o.d_); }

void Column::Data::SetNumberRange() {
  if (numbers_.empty()) return;
  auto [mn, mx] = std::minmax_element(numbers_.begin(), numbers_.end());
  stats_.min_number = *mn;
  stats_.max_number = *mx;
}

void ColumnBuilder::AddString(uint32_t row, std::string_view s) {
  Add(row, Kind::kString);
  if (interning_ && temp_codes_.size() == kInternProbe &&
      (arena_offsets_.size() - 1) * 8 >= kInternProbe * 7) {
    // At least 7 in 8 of the first strings were distinct (timestamps, ids, etags): stop
    // interning. Hashing such a column costs a cache miss per string in a table of twice its
    // strings' count, which is fresh memory (the slowest part of an ingest on the benchmark VM).
    interning_ = false;
    std::vector<uint64_t>().swap(slots_);
  }
  if (!interning_) {
    // A near-unique column: every string gets a code of its own, and Build merges the equal ones
    // after sorting (they end up side by side). These codes follow the listed ones in order, so
    // they are counted, not listed.
    ++unlisted_codes_;
    arena_.append(s);
    arena_offsets_.push_back(arena_.size());
    return;
  }
  const uint64_t h = HashBytes(s);
  const uint64_t tag = static_cast<uint32_t>(h);  // the low half: the slot's position, and a filter
  if (slots_.empty()) slots_.assign(16, 0);
  size_t mask = slots_.size() - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    const uint64_t slot = slots_[i];
    if (slot == 0) {
      uint32_t code = static_cast<uint32_t>(arena_offsets_.size() - 1);
      arena_.append(s);
      arena_offsets_.push_back(arena_.size());
      slots_[i] = (uint64_t{code + 1} << 32) | tag;
      temp_codes_.push_back(code);
      if ((arena_offsets_.size() - 1) * 2 > slots_.size()) GrowSlots();  // at most half full
      return;
    }
    // Only a slot whose hash bits match costs a look at the string (the arena is a cache miss
    // per probe for near-unique columns such as timestamps).
    if ((slot & 0xFFFFFFFFu) == tag &&
        EqualBytes(Distinct(static_cast<uint32_t>(slot >> 32) - 1), s)) {
      temp_codes_.push_back(static_cast<uint32_t>(slot >> 32) - 1);
      return;
    }
  }
}

void ColumnBuilder::AddListed(uint32_t row, Kind k) {
  if (!all_rows_) {
    rows_.push_back(row);
  } else if (row != entries_) {
    SpillRows(row);
  }
  if (!one_kind_) {
    kinds_.push_back(k);
  } else if (entries_ == 0) {
    kind_ = k;
  } else if (k != kind_) {
    SpillKinds(k);
  }
  ++entries_;
}

void ColumnBuilder::SpillRows(uint32_t row) {
  rows_.reserve(entries_ + entries_ / 2 + 16);
  for (size_t i = 0; i < entries_; ++i) rows_.push_back(static_cast<uint32_t>(i));
  rows_.push_back(row);
  all_rows_ = false;
}

void ColumnBuilder::SpillKinds(Kind k) {
  kinds_.reserve(entries_ + entries_ / 2 + 16);
  kinds_.assign(entries_, kind_);
  kinds_.push_back(k);
  one_kind_ = false;
}

void ColumnBuilder::GrowSlots() {
  // A slot keeps the low 32 bits of its string's hash, which is all a position needs: tables
  // never reach 2^32 slots (codes are 32-bit, and a table is at most half full).
  std::vector<uint64_t> slots(slots_.size() * 2, 0);
  size_t mask = slots.size() - 1;
  for (uint64_t slot : slots_) {
    if (slot == 0) continue;
    size_t i = (slot & 0xFFFFFFFFu) & mask;
    while (slots[i] != 0) i = (i + 1) & mask;
    slots[i] = slot;
  }
  slots_ = std::move(slots);
}

void ColumnBuilder::CopyFrom(const Column& c, uint32_t row, uint32_t new_row) {
  bool present = false;
  Kind k = c.KindAt(row, &present);
  switch (k) {
    case Kind::kNull:
      AddNull(new_row);
      break;
    case Kind::kFalse:
      AddBool(new_row, false);
      break;
    case Kind::kTrue:
      AddBool(new_row, true);
      break;
    case Kind::kNumber:
      AddNumber(new_row, c.numbers()[c.rows(Kind::kNumber).Rank(row) - 1]);
      break;
    case Kind::kString: {
      std::string scratch;
      AddString(new_row,
                c.dictionary().View(c.codes()[c.rows(Kind::kString).Rank(row) - 1], &scratch));
      break;
    }
    case Kind::kArray:
      AddArray(new_row, c.array_lengths()[c.rows(Kind::kArray).Rank(row) - 1]);
      break;
    case Kind::kObject:
      AddObject(new_row);
      break;
  }
}

namespace {

// The distinct values of `numbers`, sorted (0 and -0 are one value, kept as 0), when there are at
// most `limit` of them; otherwise false, found as soon as the limit is passed. A hash set of the
// values' bits: a column's numbers are either few distinct values (versions, floors, counts),
// which are then sorted instead of the whole column, or so many that the column takes no
// postings, and then nothing is sorted at all.
bool DistinctNumbers(const std::vector<double>& numbers, size_t limit, std::vector<double>* out) {
  out->clear();
  size_t capacity = 16;
  while (capacity < 2 * (std::min(limit, numbers.size()) + 1)) capacity *= 2;
  constexpr uint64_t kEmpty = ~uint64_t{0};  // the bits of a NaN, which no column holds
  std::vector<uint64_t> slots(capacity, kEmpty);
  // The slot is the top bits of the product (Fibonacci hashing), which depend on every bit of
  // the value. (Its low bits depend only on the value's low bits, which are all zero for small
  // integers: they took bits 32 and up, and most of a column of versions probed one cluster.)
  const int shift = 64 - std::countr_zero(capacity);
  for (double d : numbers) {
    if (d == 0) d = 0;  // -0 is 0
    uint64_t bits;
    std::memcpy(&bits, &d, sizeof bits);
    size_t at = static_cast<size_t>((bits * 0x9E3779B97F4A7C15ULL) >> shift);
    while (slots[at] != kEmpty && slots[at] != bits) at = (at + 1) & (capacity - 1);
    if (slots[at] == bits) continue;
    if (out->size() == limit) return false;
    slots[at] = bits;
    out->push_back(d);
  }
  std::sort(out->begin(), out->end());
  return true;
}

// Sorts (key, code) pairs by key. Small inputs: std::sort of the pairs (equal keys by code).
// Large ones are radix-sorted (least significant byte first, skipping bytes every key shares:
// timestamps and ids differ in few of their bytes), which keeps equal keys in their order: for
// pairs in code order, the same result.
void SortByKey(std::vector<std::pair<uint64_t, uint32_t>>* v) {
  const size_t n = v->size();
  if (n < 4096) {
    std::sort(v->begin(), v->end());
    return;
  }
  std::array<std::array<size_t, 256>, 8> counts{};
  for (const auto& [key, code] : *v) {
    for (size_t b = 0; b < 8; ++b) ++counts[b][(key >> (8 * b)) & 0xff];
  }
  std::vector<std::pair<uint64_t, uint32_t>> other(n);
  auto* from = v->data();
  auto* to = other.data();
  for (size_t b = 0; b < 8; ++b) {
    std::array<size_t, 256>& count = counts[b];
    if (count[(from[0].first >> (8 * b)) & 0xff] == n) continue;  // one value: nothing to do
    size_t at = 0;
    for (size_t& c : count) {
      size_t k = c;
      c = at;
      at += k;
    }
    for (size_t i = 0; i < n; ++i) to[count[(from[i].first >> (8 * b)) & 0xff]++] = from[i];
    std::swap(from, to);
  }
  if (from != v->data()) std::copy(from, from + n, v->data());
}

// The postings of codes 0 .. codes - 1, where entry i (of `entries`, in increasing row order) has
// code code_of(i) and row row_of(i): a bitmap of each code's rows. The rows are grouped by code
// in one array (a counting sort), not pushed onto a list per code: with thousands of codes those
// lists are thousands of scattered, growing vectors.
template <class CodeOf, class RowOf>
std::vector<Bitmap> PostingsByCode(size_t codes, size_t entries, const CodeOf& code_of,
                                   const RowOf& row_of) {
  std::vector<uint32_t> begin(codes + 1, 0);
  for (size_t i = 0; i < entries; ++i) ++begin[code_of(i) + 1];
  for (size_t c = 0; c < codes; ++c) begin[c + 1] += begin[c];
  std::vector<uint32_t> rows(entries);
  std::vector<uint32_t> next(begin.begin(), begin.end() - 1);
  for (size_t i = 0; i < entries; ++i) rows[next[code_of(i)]++] = row_of(i);
  std::vector<Bitmap> postings;
  postings.reserve(codes);
  for (size_t c = 0; c < codes; ++c) {
    postings.push_back(Bitmap::OfIncreasing(
        std::span<const uint32_t>(rows.data() + begin[c], begin[c + 1] - begin[c])));
    postings.back().Optimize();
  }
  return postings;
}

// The index of each of `numbers` in `distinct` (sorted, holding every one of them; 0 for -0).
// Integers in a range not much wider than their count (versions, counters, floors) are looked up
// in a table by value; others by a binary search without branches (in a list of thousands of
// values, a branching search mispredicts about half of its steps).
std::vector<uint32_t> NumberCodes(const std::vector<double>& numbers,
                                  const std::vector<double>& distinct) {
  std::vector<uint32_t> codes(numbers.size());
  if (distinct.empty()) return codes;
  const double lo = distinct.front(), hi = distinct.back();
  constexpr double kExact = 9007199254740992.0;  // 2^53
  bool integers = lo > -kExact && hi < kExact && hi - lo <= 4.0 * distinct.size() + 1024;
  for (size_t i = 0; integers && i < distinct.size(); ++i) {
    integers = distinct[i] == static_cast<double>(static_cast<int64_t>(distinct[i]));
  }
  if (integers) {
    const int64_t base = static_cast<int64_t>(lo);
    std::vector<uint32_t> rank(static_cast<size_t>(static_cast<int64_t>(hi) - base) + 1);
    for (size_t i = 0; i < distinct.size(); ++i) {
      rank[static_cast<size_t>(static_cast<int64_t>(distinct[i]) - base)] =
          static_cast<uint32_t>(i);
    }
    for (size_t i = 0; i < numbers.size(); ++i) {
      codes[i] = rank[static_cast<size_t>(static_cast<int64_t>(numbers[i]) - base)];
    }
    return codes;
  }
  const double* const first = distinct.data();
  for (size_t i = 0; i < numbers.size(); ++i) {
    const double v = numbers[i];
    const double* at = first;
    for (size_t n = distinct.size(); n > 1;) {
      const size_t half = n / 2;
      at = at[half] < v ? at + half : at;
      n -= half;
    }
    codes[i] = static_cast<uint32_t>(at - first) + (*at < v ? 1 : 0);
  }
  return codes;
}

// The passes over a builder's strings in sorted order, where the strings are scattered over its
// arena, ask for the string this many codes ahead (and for its offset twice as far ahead).
constexpr uint32_t kPrefetchAhead = 16;

}  // namespace

std::vector<uint32_t> ColumnBuilder::SortedCodes() const {
  // Sorting codes with a comparison of the strings they stand for reads two strings scattered
  // over the arena for every comparison, and most columns are near-unique timestamps and ids
  // that share long prefixes. So each string gets a key: the 8 bytes after the prefix that all
  // the column's strings share, big-endian (unsigned, as string comparison orders bytes), zero
  // past its end. Codes are sorted by key in a flat array. A run of equal keys is sorted again
  // by the next 8 bytes, and so on; only a run none of whose strings goes on past its key is
  // ordered by comparing the strings (they can differ only in trailing NUL bytes, or be equal).
  const uint32_t n = static_cast<uint32_t>(arena_offsets_.size() - 1);
  std::vector<uint32_t> order(n);
  if (n == 0) return order;
  size_t shared = Distinct(0).size();
  for (uint32_t c = 1; c < n && shared > 0; ++c) {
    shared = SharedPrefix(Distinct(0).substr(0, shared), Distinct(c));
  }
  // Runs of ties are refined in sorted order, where the strings are scattered over the arena:
  // their keys' bytes are asked for kPrefetchAhead codes ahead.
  auto prefetch = [&](uint32_t code, size_t offset) {
    const size_t begin = arena_offsets_[code], size = arena_offsets_[code + 1] - begin;
    Prefetch(arena_.data() + begin + std::min(offset, size));
  };
  auto key_at = [&](uint32_t code, size_t offset) {
    std::string_view s = Distinct(code);
    uint64_t key = 0;
    if (offset + 8 <= s.size()) {  // (little-endian, as SharedPrefix checks)
      std::memcpy(&key, s.data() + offset, 8);
      return __builtin_bswap64(key);
    }
    for (size_t i = 0; i < 8; ++i) {
      size_t at = offset + i;
      key = (key << 8) | (at < s.size() ? static_cast<unsigned char>(s[at]) : 0u);
    }
    return key;
  };
  std::vector<std::pair<uint64_t, uint32_t>> keyed(n);
  for (uint32_t c = 0; c < n; ++c) keyed[c] = {key_at(c, shared), c};
  SortByKey(&keyed);
  struct Run {
    uint32_t begin, end;
    size_t offset;  // where the run's (equal) keys were taken
  };
  std::vector<Run> runs;
  auto push_runs = [&](uint32_t from, uint32_t to, size_t offset) {
    for (uint32_t begin = from; begin < to;) {
      uint32_t end = begin + 1;
      while (end < to && keyed[end].first == keyed[begin].first) ++end;
      if (end - begin > 1) runs.push_back({begin, end, offset});
      begin = end;
    }
  };
  push_runs(0, n, shared);
  std::vector<std::pair<uint64_t, uint32_t>> part;
  while (!runs.empty()) {
    Run r = runs.back();
    runs.pop_back();
    const size_t next = r.offset + 8;
    auto first = keyed.begin() + r.begin, last = keyed.begin() + r.end;
    if (std::none_of(first, last,
                     [&](const auto& k) { return Distinct(k.second).size() > next; })) {
      std::sort(first, last, [&](const auto& a, const auto& b) {
        return Distinct(a.second) < Distinct(b.second);  // some may end before r.offset
      });
      continue;
    }
    part.clear();
    for (auto it = first; it != last; ++it) {
      if (last - it > std::ptrdiff_t{2 * kPrefetchAhead}) {
        Prefetch(&arena_offsets_[(it + 2 * kPrefetchAhead)->second]);
      }
      if (last - it > std::ptrdiff_t{kPrefetchAhead}) prefetch((it + kPrefetchAhead)->second, next);
      part.emplace_back(key_at(it->second, next), it->second);
    }
    SortByKey(&part);
    std::copy(part.begin(), part.end(), first);
    push_runs(r.begin, r.end, next);
  }
  for (uint32_t i = 0; i < n; ++i) order[i] = keyed[i].second;
  return order;
}

std::shared_ptr<const Column> ColumnBuilder::Build() && {
  auto c = std::make_shared<Column>();
  Column::Data& data = *c->d_;
  c->path_ = std::make_shared<const ColumnPath>(std::move(path_));
  // Rows arrive in increasing order from the table builder. A column of one kind (most are)
  // has its presence bitmap as that kind's; otherwise the entries are split by kind.
  data.present_ = all_rows_ ? Bitmap::OfFirstRows(static_cast<uint32_t>(entries_))
                            : Bitmap::OfIncreasing(rows_);
  data.present_.Optimize();
  std::array<std::vector<uint32_t>, kKindCount> kind_rows;
  if (one_kind_) {
    if (entries_ > 0) {
      data.by_kind_[static_cast<size_t>(kind_)] = data.present_;
      data.stats_.kind_counts[static_cast<size_t>(kind_)] = entries_;
    }
  } else {
    std::array<size_t, kKindCount> counts{};
    for (Kind k : kinds_) ++counts[static_cast<size_t>(k)];
    for (size_t k = 0; k < kKindCount; ++k) kind_rows[k].reserve(counts[k]);
    for (size_t i = 0; i < entries_; ++i) {
      kind_rows[static_cast<size_t>(kinds_[i])].push_back(EntryRow(i));
    }
    for (size_t k = 0; k < kKindCount; ++k) {
      data.by_kind_[k] = Bitmap::OfIncreasing(kind_rows[k]);
      data.by_kind_[k].Optimize();
      data.stats_.kind_counts[k] = kind_rows[k].size();
    }
  }
  // The row of the i-th entry of kind k.
  auto row_of_kind = [&](Kind k, size_t i) {
    return one_kind_ ? EntryRow(i) : kind_rows[static_cast<size_t>(k)][i];
  };
  // Strings: sort the temporary codes' strings, recode (equal strings, which a column that
  // stopped interning holds more than once, take one code).
  size_t temps = arena_offsets_.size() - 1;
  std::vector<uint32_t> order = SortedCodes();
  std::vector<uint32_t> final_code(temps);
  // In sorted order the strings are scattered over the arena, and a pass over them misses: one
  // pass writes the dictionary, asking for the strings (and their offsets) ahead
  // (kPrefetchAhead). Its buffer is reserved for the worst case, the strings whole with two
  // length bytes each (front coding only saves; a string of 128 bytes or more needs more length
  // bytes, and the buffer then grows), and Finish gives back what front coding saved.
  Dictionary::Builder dict;
  dict.Reserve(temps, arena_.size() + 2 * temps);
  std::string_view last;  // the last string added (a view into arena_)
  for (uint32_t i = 0; i < order.size(); ++i) {
    if (i + 2 * kPrefetchAhead < order.size()) {
      Prefetch(&arena_offsets_[order[i + 2 * kPrefetchAhead]]);
    }
    if (i + kPrefetchAhead < order.size()) {
      Prefetch(arena_.data() + arena_offsets_[order[i + kPrefetchAhead]]);
    }
    std::string_view v = Distinct(order[i]);
    if (interning_ || dict.size() == 0 || last != v) {
      dict.Add(v);
      last = v;
    }
    final_code[order[i]] = dict.size() - 1;
  }
  data.codes_.reserve(temp_codes_.size() + unlisted_codes_);
  for (uint32_t t : temp_codes_) data.codes_.push_back(final_code[t]);
  data.codes_.insert(data.codes_.end(), final_code.end() - unlisted_codes_, final_code.end());
  data.dict_ = std::move(dict).Finish();
  // The builder's vectors grew by doubling: keep only what they hold.
  data.numbers_ = std::move(numbers_);
  data.numbers_.shrink_to_fit();
  data.array_lengths_ = std::move(array_lengths_);
  data.array_lengths_.shrink_to_fit();
  // Postings where they pay: few distinct values relative to the rows that hold them.
  const size_t string_rows = data.stats_.kind_counts[static_cast<size_t>(Kind::kString)];
  if (data.dict_.size() > 0 && data.dict_.size() <= kMaxPostingsAbsolute &&
      data.dict_.size() * 4 <= string_rows + 64) {
    data.string_postings_ = PostingsByCode(
        data.dict_.size(), string_rows, [&](size_t i) { return data.codes_[i]; },
        [&](size_t i) { return row_of_kind(Kind::kString, i); });
  }
  const size_t number_rows = data.stats_.kind_counts[static_cast<size_t>(Kind::kNumber)];
  data.SetNumberRange();
  // Postings when there are at most kMaxPostingsAbsolute distinct numbers, and at most a quarter
  // of the rows (plus 16).
  std::vector<double> distinct;
  if (!data.numbers_.empty() &&
      DistinctNumbers(data.numbers_, std::min(kMaxPostingsAbsolute, (number_rows + 64) / 4),
                      &distinct)) {
    std::vector<uint32_t> codes = NumberCodes(data.numbers_, distinct);
    data.number_postings_ = PostingsByCode(
        distinct.size(), number_rows, [&](size_t i) { return codes[i]; },
        [&](size_t i) { return row_of_kind(Kind::kNumber, i); });
    distinct.shrink_to_fit();  // it grew by doubling
    data.distinct_numbers_ = std::move(distinct);
  }
  return c;
}

}  // namespace twinq::index
