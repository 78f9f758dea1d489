// A thin wrapper over CRoaring (Debian's libroaring-dev), so the bitmap backend can change.
// Row sets of the index and the VM are Bitmaps. Copies are deep: CRoaring's copy-on-write is
// off, because it is not thread-safe. A copy-on-write copy converts the SOURCE's containers into
// shared containers in place, and the shared containers' reference counts are plain integers
// (libroaring 0.2.66), so a reader copying a column bitmap of its snapshot (any `a & b`) while the
// writer copies the same bitmap into a new version corrupts the counts and the containers.
// Immutable bitmaps are shared between versions through their owners (shared Columns) instead.
#ifndef TWINQ_INDEX_BITMAP_H_
#define TWINQ_INDEX_BITMAP_H_

#include <cstdint>
#include <cstring>
#include <numeric>
#include <roaring/roaring.hh>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace twinq::index {

class Bitmap {
 public:
  Bitmap() { r_.setCopyOnWrite(false); }  // see above: copies must never touch the source
  Bitmap(const Bitmap&) = default;
  Bitmap(Bitmap&&) noexcept = default;
  // CRoaring's assignments clear the target first, so self-assignment would empty a bitmap.
  Bitmap& operator=(const Bitmap& o) {
    if (this != &o) r_ = o.r_;
    return *this;
  }
  Bitmap& operator=(Bitmap&& o) noexcept {
    if (this != &o) r_ = std::move(o.r_);
    return *this;
  }
  static Bitmap Range(uint32_t begin, uint32_t end) {  // [begin, end)
    Bitmap b;
    if (end > begin) b.r_.addRange(begin, end);
    return b;
  }
  // The same, from rows in increasing order: runs of consecutive rows go in as ranges (CRoaring
  // adds a range at once, where add_many handles row by row), the rest as by Of. The containers
  // may differ from Of's until Optimize, which a caller then runs.
  static Bitmap OfIncreasing(std::span<const uint32_t> rows) {
    Bitmap b;
    const size_t n = rows.size();
    size_t pending = 0;  // rows[pending, i) are not in b yet
    for (size_t i = 0; i < n;) {
      size_t j = i + 1;
      while (j < n && rows[j] == rows[j - 1] + 1) ++j;
      if (j - i >= kMinRangeRun) {
        if (i > pending) b.r_.addMany(i - pending, rows.data() + pending);
        b.r_.addRange(rows[i], uint64_t{rows[j - 1]} + 1);
        pending = j;
      }
      i = j;
    }
    if (pending == 0 && n > 0) {
      b.r_ = FromIncreasing(rows);  // no run: every row is in the list
    } else if (n > pending) {
      b.r_.addMany(n - pending, rows.data() + pending);
    }
    return b;
  }
  // OfIncreasing of the rows 0, 1, ..., n - 1, without a list of them.
  static Bitmap OfFirstRows(uint32_t n) {
    if (n >= kMinRangeRun) return Range(0, n);
    std::vector<uint32_t> rows(n);
    std::iota(rows.begin(), rows.end(), 0u);
    return OfIncreasing(rows);
  }
  static Bitmap Of(const std::vector<uint32_t>& sorted_rows) {
    Bitmap b;
    if (!sorted_rows.empty()) b.r_.addMany(sorted_rows.size(), sorted_rows.data());
    return b;
  }

  // The union of many bitmaps in one pass (CRoaring's or_many): far cheaper than OR-ing them
  // into an accumulator one at a time, which re-merges the accumulator for every input.
  static Bitmap Union(const std::vector<const Bitmap*>& bitmaps) {
    Bitmap b;
    if (bitmaps.empty()) return b;
    if (bitmaps.size() == 1) return *bitmaps[0];
    std::vector<const ::Roaring*> in;
    in.reserve(bitmaps.size());
    for (const Bitmap* x : bitmaps) in.push_back(&x->r_);
    b.r_ = ::Roaring::fastunion(in.size(), in.data());
    b.r_.setCopyOnWrite(false);
    return b;
  }

  void Add(uint32_t row) { r_.add(row); }
  void Remove(uint32_t row) { r_.remove(row); }
  bool Contains(uint32_t row) const { return r_.contains(row); }
  uint64_t Cardinality() const { return r_.cardinality(); }
  bool Empty() const { return r_.isEmpty(); }
  // The largest row (the bitmap must not be empty).
  uint32_t Maximum() const { return r_.maximum(); }
  // Number of set rows smaller than or equal to `row`.
  uint64_t Rank(uint32_t row) const { return r_.rank(row); }
  // Rows in [begin, end).
  uint64_t RangeCardinality(uint64_t begin, uint64_t end) const {
    return roaring_bitmap_range_cardinality(&r_.roaring, begin, end);
  }
  void Optimize() {
    r_.runOptimize();
    r_.shrinkToFit();
  }
  size_t SizeInBytes() const { return r_.getSizeInBytes(true); }

  Bitmap& operator&=(const Bitmap& o) {
    r_ &= o.r_;
    return *this;
  }
  Bitmap& operator|=(const Bitmap& o) {
    r_ |= o.r_;
    return *this;
  }
  Bitmap& operator-=(const Bitmap& o) {
    r_ -= o.r_;
    return *this;
  }
  friend Bitmap operator&(const Bitmap& a, const Bitmap& b) {
    Bitmap r = a;
    r &= b;
    return r;
  }
  friend Bitmap operator|(const Bitmap& a, const Bitmap& b) {
    Bitmap r = a;
    r |= b;
    return r;
  }
  friend Bitmap operator-(const Bitmap& a, const Bitmap& b) {
    Bitmap r = a;
    r -= b;
    return r;
  }
  friend bool operator==(const Bitmap& a, const Bitmap& b) { return a.r_ == b.r_; }

  std::vector<uint32_t> ToVector() const {
    std::vector<uint32_t> out(r_.cardinality());
    if (!out.empty()) r_.toUint32Array(out.data());
    return out;
  }
  // Calls f(row) for every row, ascending. Rows are read from the bitmap 256 at a time (one
  // call per container run instead of one iterator step per row: a merge walks whole columns).
  template <class F>
  void ForEach(F&& f) const {
    roaring_uint32_iterator_t it;
    roaring_init_iterator(&r_.roaring, &it);
    uint32_t buf[256];
    while (uint32_t n = roaring_read_uint32_iterator(&it, buf, 256)) {
      for (uint32_t i = 0; i < n; ++i) f(buf[i]);
    }
  }

  // Portable serialisation (the CRoaring format).
  void AppendTo(std::string* out) const {
    size_t n = r_.getSizeInBytes(true);
    size_t at = out->size();
    out->resize(at + n);
    r_.write(out->data() + at, true);
  }
  // Reads a bitmap written by AppendTo from at most `max_bytes`; false when malformed.
  static bool Read(std::string_view bytes, Bitmap* out, size_t* consumed);

  const ::Roaring& roaring() const { return r_; }

 private:
  // OfIncreasing adds a run of at least this many consecutive rows as one range.
  static constexpr size_t kMinRangeRun = 64;
  // The bitmap of `rows` (strictly increasing, not empty), with the containers addMany would
  // make (an array of up to 4096 values per 65,536 rows, else a bitset), built by writing them
  // in CRoaring's portable format and reading that: a copy per container instead of a lookup
  // and an insertion per row (a 40k ingest puts 1.35 million rows into about 4,100 postings).
  static ::Roaring FromIncreasing(std::span<const uint32_t> rows);
  ::Roaring r_;
};

inline ::Roaring Bitmap::FromIncreasing(std::span<const uint32_t> rows) {
  // CRoaring's names (roaring_array.h, containers/array.h): the format's cookie when no container
  // is a run container, and the largest array container.
  constexpr uint32_t kCookieNoRuns = SERIAL_COOKIE_NO_RUNCONTAINER;  // 12346
  constexpr uint32_t kMaxArray = DEFAULT_MAX_SIZE;                   // 4096
  // The containers: (key, cardinality) of each 65,536 rows that hold any.
  thread_local std::vector<std::pair<uint32_t, uint32_t>> containers;
  containers.clear();
  for (size_t i = 0; i < rows.size();) {
    const uint32_t key = rows[i] >> 16;
    size_t j = i + 1;
    while (j < rows.size() && rows[j] >> 16 == key) ++j;
    containers.emplace_back(key, static_cast<uint32_t>(j - i));
    i = j;
  }
  const size_t k = containers.size();
  size_t size = 8 + 8 * k;  // cookie, count; key and cardinality - 1, and offset, per container
  for (const auto& [key, card] : containers) size += card > kMaxArray ? 8192 : 2 * size_t{card};
  thread_local std::string buffer;
  if (buffer.size() < size) buffer.resize(size);
  char* const out = buffer.data();
  auto put16 = [](char* at, uint32_t v) {
    const uint16_t x = static_cast<uint16_t>(v);
    std::memcpy(at, &x, 2);
  };
  auto put32 = [](char* at, uint32_t v) { std::memcpy(at, &v, 4); };
  put32(out, kCookieNoRuns);
  put32(out + 4, static_cast<uint32_t>(k));
  size_t at = 8 + 8 * k;
  const uint32_t* row = rows.data();
  for (size_t c = 0; c < k; ++c) {
    const auto [key, card] = containers[c];
    put16(out + 8 + 4 * c, key);
    put16(out + 10 + 4 * c, card - 1);
    put32(out + 8 + 4 * k + 4 * c, static_cast<uint32_t>(at));
    if (card > kMaxArray) {
      uint64_t words[1024] = {};
      for (uint32_t i = 0; i < card; ++i) words[(row[i] & 0xFFFF) >> 6] |= 1ULL << (row[i] & 63);
      std::memcpy(out + at, words, sizeof words);
      at += sizeof words;
    } else {
      for (uint32_t i = 0; i < card; ++i) put16(out + at + 2 * i, row[i]);
      at += 2 * size_t{card};
    }
    row += card;
  }
  ::Roaring r = ::Roaring::readSafe(out, size);
  r.setCopyOnWrite(false);  // (see the top of this file)
  return r;
}

}  // namespace twinq::index

#endif  // TWINQ_INDEX_BITMAP_H_
