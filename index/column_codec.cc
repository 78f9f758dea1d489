#include "index/column_codec.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>
#include <vector>

namespace twinq::index {

namespace {

// Checks a bitmap in CRoaring's portable format (github.com/RoaringBitmap/RoaringFormatSpec) and
// returns its size in bytes, or 0 when it is not sound. CRoaring's own safe reader (0.2.66)
// stays within the bytes, but takes the containers as they come: array values or runs out of
// order, or a cardinality that disagrees with the container, give a bitmap whose iteration,
// Maximum() and operations break their invariants (an edited index file made Read write past a
// buffer sized by Maximum()). So every container is checked here first:
//  - keys strictly ascending;
//  - array containers (at most 4096 values) strictly ascending;
//  - bitset containers (more than 4096 values) holding exactly the stated cardinality;
//  - run containers with runs in order, not overlapping, within 16 bits, adding up to the stated
//    cardinality.
size_t SoundPortableBitmapSize(std::string_view bytes) {
  // CRoaring's names for the format's constants (roaring_array.h, containers/array.h).
  constexpr uint32_t kCookieNoRuns = SERIAL_COOKIE_NO_RUNCONTAINER;  // 12346
  constexpr uint32_t kCookieRuns = SERIAL_COOKIE;                    // 12347
  constexpr uint32_t kNoOffsetThreshold = NO_OFFSET_THRESHOLD;       // 4
  constexpr uint32_t kMaxArray = DEFAULT_MAX_SIZE;                   // 4096
  size_t at = 0;
  auto u16 = [&](uint32_t* v) {
    if (bytes.size() - at < 2) return false;
    uint16_t x;
    std::memcpy(&x, bytes.data() + at, 2);
    at += 2;
    *v = x;
    return true;
  };
  auto u32 = [&](uint32_t* v) {
    if (bytes.size() - at < 4) return false;
    std::memcpy(v, bytes.data() + at, 4);
    at += 4;
    return true;
  };
  uint32_t cookie, size;
  if (!u32(&cookie)) return 0;
  bool runs = (cookie & 0xFFFF) == kCookieRuns;
  std::string_view run_flags;
  if (runs) {
    size = (cookie >> 16) + 1;
    size_t n = (size + 7) / 8;
    if (bytes.size() - at < n) return 0;
    run_flags = bytes.substr(at, n);
    at += n;
  } else if (cookie != kCookieNoRuns || !u32(&size)) {
    return 0;
  }
  if (size > 65536) return 0;
  std::vector<uint32_t> keys(size), cards(size);
  for (uint32_t i = 0; i < size; ++i) {
    if (!u16(&keys[i]) || !u16(&cards[i])) return 0;
    cards[i] += 1;
    if (i > 0 && keys[i] <= keys[i - 1]) return 0;
  }
  if (!runs || size >= kNoOffsetThreshold) {  // container offsets: not needed to read
    if ((bytes.size() - at) / 4 < size) return 0;
    at += 4 * static_cast<size_t>(size);
  }
  for (uint32_t i = 0; i < size; ++i) {
    bool run = runs && (static_cast<uint8_t>(run_flags[i / 8]) >> (i % 8)) & 1;
    if (run) {
      uint32_t n, total = 0;
      if (!u16(&n)) return 0;
      int64_t end = -1;  // last value of the previous run
      for (uint32_t r = 0; r < n; ++r) {
        uint32_t start, length;
        if (!u16(&start) || !u16(&length)) return 0;
        if (static_cast<int64_t>(start) <= end || start + length > 0xFFFF) return 0;
        end = start + length;
        total += length + 1;
      }
      if (n == 0 || total != cards[i]) return 0;
    } else if (cards[i] > kMaxArray) {
      if (bytes.size() - at < 8192) return 0;
      uint32_t count = 0;
      for (size_t w = 0; w < 1024; ++w) {
        uint64_t word;
        std::memcpy(&word, bytes.data() + at + 8 * w, 8);
        count += static_cast<uint32_t>(__builtin_popcountll(word));
      }
      at += 8192;
      if (count != cards[i]) return 0;
    } else {
      uint32_t prev = 0;
      for (uint32_t k = 0; k < cards[i]; ++k) {
        uint32_t v;
        if (!u16(&v) || (k > 0 && v <= prev)) return 0;
        prev = v;
      }
    }
  }
  return at;
}

}  // namespace

bool Bitmap::Read(std::string_view bytes, Bitmap* out, size_t* consumed) {
  size_t sound = SoundPortableBitmapSize(bytes);
  if (sound == 0) return false;
  try {
    ::Roaring r = ::Roaring::readSafe(bytes.data(), sound);
    size_t n = r.getSizeInBytes(true);
    if (n != sound) return false;
    out->r_ = std::move(r);
    out->r_.setCopyOnWrite(false);  // bitmap.h: copies must never touch the source
    *consumed = n;
    return true;
  } catch (...) {
    return false;
  }
}

namespace {

// Merges the old (row, value) sequence of one kind, minus the changed rows, with new entries
// (whose rows are among the changed ones). `on_removed` sees each changed row's old value. The
// old values between two changed rows are copied as one run, counted by a range cardinality of
// `old_rows`: a merge that changes a few rows of a large column copies its values instead of
// visiting each of its rows.
template <class T, class OnRemoved>
void MergeValues(const Bitmap& old_rows, const std::vector<T>& old_values,
                 const std::vector<uint32_t>& changed,
                 const std::vector<std::pair<uint32_t, T>>& fresh, std::vector<T>* out,
                 OnRemoved&& on_removed) {
  out->reserve(old_values.size() + fresh.size());
  size_t i = 0;       // old values copied or removed
  uint64_t from = 0;  // the rows below are done
  size_t c = 0, f = 0;
  while (c < changed.size() || f < fresh.size()) {
    const uint32_t row = f == fresh.size()     ? changed[c]
                         : c == changed.size() ? fresh[f].first
                                               : std::min(changed[c], fresh[f].first);
    const size_t run = old_rows.RangeCardinality(from, row);  // kept rows before `row`
    out->insert(out->end(), old_values.begin() + static_cast<std::ptrdiff_t>(i),
                old_values.begin() + static_cast<std::ptrdiff_t>(i + run));
    i += run;
    const bool is_changed = c < changed.size() && changed[c] == row;
    if (is_changed) ++c;
    if (old_rows.Contains(row)) {
      if (is_changed) {
        on_removed(row, old_values[i]);
      } else {
        out->push_back(old_values[i]);  // (not a delta's: its fresh rows are changed rows)
      }
      ++i;
    }
    while (f < fresh.size() && fresh[f].first == row) out->push_back(fresh[f++].second);
    from = uint64_t{row} + 1;
  }
  out->insert(out->end(), old_values.begin() + static_cast<std::ptrdiff_t>(i), old_values.end());
}

}  // namespace

std::shared_ptr<const Column> ColumnCodec::Merge(
    const Column& old, const std::vector<uint32_t>& changed,
    const std::vector<std::pair<uint32_t, const FlatEntry*>>& entries) {
  old.Ensure();
  auto c = std::make_shared<Column>();
  Column::Data& data = *c->d_;
  const Column::Data& prev = *old.d_;
  c->path_ = old.path_;
  Bitmap changed_bm = Bitmap::Of(changed);

  std::array<std::vector<uint32_t>, kKindCount> fresh_rows;
  std::vector<std::pair<uint32_t, double>> fresh_numbers;
  std::vector<std::pair<uint32_t, uint32_t>> fresh_lengths;
  std::vector<std::pair<uint32_t, std::string_view>> fresh_strings;
  for (const auto& [row, e] : entries) {
    fresh_rows[static_cast<size_t>(e->kind)].push_back(row);
    if (e->kind == Kind::kNumber) fresh_numbers.emplace_back(row, e->number);
    if (e->kind == Kind::kArray) fresh_lengths.emplace_back(row, e->length);
    if (e->kind == Kind::kString) fresh_strings.emplace_back(row, e->string);
  }
  data.present_ = Bitmap();
  for (size_t k = 0; k < kKindCount; ++k) {
    const Bitmap& before = prev.by_kind_[k];
    if (fresh_rows[k].empty() && (before & changed_bm).Empty()) {
      data.by_kind_[k] = before;  // shared, untouched
    } else {
      data.by_kind_[k] = (before - changed_bm) | Bitmap::Of(fresh_rows[k]);
      data.by_kind_[k].Optimize();
    }
    data.present_ |= data.by_kind_[k];
    data.stats_.kind_counts[k] = data.by_kind_[k].Cardinality();
  }
  data.present_.Optimize();

  // Numbers (and their postings).
  bool number_postings = !prev.number_postings_.empty() || prev.numbers_.empty();
  std::vector<std::pair<uint32_t, double>> removed_numbers;
  MergeValues<double>(prev.by_kind_[static_cast<size_t>(Kind::kNumber)], prev.numbers_, changed,
                      fresh_numbers, &data.numbers_,
                      [&](uint32_t row, double d) { removed_numbers.emplace_back(row, d); });
  bool range_set = false;  // from the distinct numbers, when they are kept (not a pass over all)
  if (number_postings) {
    std::vector<double> distinct = prev.distinct_numbers_;
    for (const auto& [row, d] : fresh_numbers) distinct.push_back(d);
    std::sort(distinct.begin(), distinct.end());
    distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
    if (distinct.size() <= kMaxPostingsAbsolute) {
      auto code = [&](double d) {
        return static_cast<size_t>(std::lower_bound(distinct.begin(), distinct.end(), d) -
                                   distinct.begin());
      };
      data.number_postings_.resize(distinct.size());
      for (size_t o = 0; o < prev.distinct_numbers_.size(); ++o) {
        data.number_postings_[code(prev.distinct_numbers_[o])] = prev.number_postings_[o];
      }
      for (const auto& [row, d] : removed_numbers) data.number_postings_[code(d)].Remove(row);
      for (const auto& [row, d] : fresh_numbers) data.number_postings_[code(d)].Add(row);
      // A number no row holds any more is dropped, as strings are.
      size_t kept = 0;
      for (size_t k = 0; k < distinct.size(); ++k) {
        if (data.number_postings_[k].Empty()) continue;
        if (kept != k) {
          distinct[kept] = distinct[k];
          data.number_postings_[kept] = std::move(data.number_postings_[k]);
        }
        ++kept;
      }
      distinct.resize(kept);
      data.number_postings_.resize(kept);
      if (!distinct.empty()) {
        data.stats_.min_number = distinct.front();
        data.stats_.max_number = distinct.back();
        range_set = true;
      }
      data.distinct_numbers_ = std::move(distinct);
    }
  }
  if (!range_set) data.SetNumberRange();

  // Array lengths.
  MergeValues<uint32_t>(prev.by_kind_[static_cast<size_t>(Kind::kArray)], prev.array_lengths_,
                        changed, fresh_lengths, &data.array_lengths_, [](uint32_t, uint32_t) {});

  // Strings: merge the dictionaries, remap old codes, keep postings. A string that no row holds
  // any more (every row that held it changed) is dropped: otherwise each desired patch would
  // leave the twin's old $lastUpdated timestamps in the dictionary for good, and a long-running
  // fleet's dictionaries and merges would grow with its history instead of its content.
  // Codes are merged first in a combined space: an old string keeps its old code, a string the
  // old dictionary lacks gets old size + its place among the added strings (sorted, distinct).
  // Counting the merged codes then tells which old strings no row holds any more, and one pass
  // maps the combined codes to the merged dictionary's.
  const Dictionary& before = prev.dict_;
  const uint32_t old_size = static_cast<uint32_t>(before.size());
  constexpr uint32_t kDropped = UINT32_MAX;
  std::vector<int64_t> found(fresh_strings.size());
  std::vector<std::string_view> added;
  for (size_t i = 0; i < fresh_strings.size(); ++i) {
    found[i] = before.Find(fresh_strings[i].second);
    if (found[i] < 0) added.push_back(fresh_strings[i].second);
  }
  std::sort(added.begin(), added.end());
  added.erase(std::unique(added.begin(), added.end()), added.end());
  std::vector<std::pair<uint32_t, uint32_t>> fresh_codes;  // combined codes, then merged ones
  fresh_codes.reserve(fresh_strings.size());
  for (size_t i = 0; i < fresh_strings.size(); ++i) {
    uint32_t code =
        found[i] >= 0
            ? static_cast<uint32_t>(found[i])
            : old_size + static_cast<uint32_t>(
                             std::lower_bound(added.begin(), added.end(), fresh_strings[i].second) -
                             added.begin());
    fresh_codes.emplace_back(fresh_strings[i].first, code);
  }
  std::vector<std::pair<uint32_t, uint32_t>> removed_codes;  // old codes, then merged ones
  MergeValues<uint32_t>(
      prev.by_kind_[static_cast<size_t>(Kind::kString)], prev.codes_, changed, fresh_codes,
      &data.codes_, [&](uint32_t row, uint32_t code) { removed_codes.emplace_back(row, code); });
  std::vector<uint32_t> uses(old_size + added.size(), 0);  // rows holding each combined code
  for (uint32_t code : data.codes_) ++uses[code];
  std::vector<uint32_t> remap(uses.size(), kDropped);
  {
    Dictionary::Builder merged;
    uint32_t code = 0;
    size_t j = 0;
    before.ForEach([&](uint32_t i, std::string_view v) {
      if (uses[i] == 0) return;
      while (j < added.size() && added[j] < v) {
        remap[old_size + j] = code++;
        merged.Add(added[j++]);
      }
      remap[i] = code++;
      merged.Add(v);
    });
    while (j < added.size()) {
      remap[old_size + j] = code++;
      merged.Add(added[j++]);
    }
    data.dict_ = std::move(merged).Finish();
  }
  for (uint32_t& code : data.codes_) code = remap[code];
  for (auto& [row, code] : fresh_codes) code = remap[code];
  for (auto& [row, code] : removed_codes) code = remap[code];
  bool string_postings = !prev.string_postings_.empty() || prev.dict_.size() == 0;
  if (string_postings && data.dict_.size() > 0 && data.dict_.size() <= kMaxPostingsAbsolute) {
    data.string_postings_.resize(data.dict_.size());
    for (size_t o = 0; o < prev.string_postings_.size(); ++o) {
      if (remap[o] != kDropped) data.string_postings_[remap[o]] = prev.string_postings_[o];
    }
    for (const auto& [row, code] : removed_codes) {
      if (code != kDropped) data.string_postings_[code].Remove(row);
    }
    for (const auto& [row, code] : fresh_codes) data.string_postings_[code].Add(row);
  }
  return c;
}

// ---- serialisation ---------------------------------------------------------------------------

namespace {

void PutBitmap(std::string* out, const Bitmap& b) {
  size_t at = out->size();
  PutU32(out, 0);
  b.AppendTo(out);
  uint32_t n = static_cast<uint32_t>(out->size() - at - 4);
  std::memcpy(out->data() + at, &n, 4);
}

bool GetBitmap(std::string_view* in, Bitmap* b) {
  std::string_view bytes;
  size_t consumed = 0;
  if (!GetBytes(in, &bytes) || !Bitmap::Read(bytes, b, &consumed) || consumed != bytes.size()) {
    return false;
  }
  return true;
}

template <class T>
void PutArray(std::string* out, const std::vector<T>& v) {
  PutU64(out, v.size());
  out->append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

// Reads the T at p (any alignment): the input of assign(), so a vector is filled in one pass,
// without first being zeroed by resize().
template <class T>
struct UnalignedIterator {
  using iterator_category = std::random_access_iterator_tag;
  using value_type = T;
  using difference_type = std::ptrdiff_t;
  using pointer = const T*;
  using reference = T;
  const char* p;
  T operator*() const {
    T v;
    std::memcpy(&v, p, sizeof(T));
    return v;
  }
  UnalignedIterator& operator++() {
    p += sizeof(T);
    return *this;
  }
  UnalignedIterator operator++(int) {
    UnalignedIterator old = *this;
    p += sizeof(T);
    return old;
  }
  UnalignedIterator& operator--() {
    p -= sizeof(T);
    return *this;
  }
  UnalignedIterator& operator+=(difference_type n) {
    p += n * static_cast<difference_type>(sizeof(T));
    return *this;
  }
  difference_type operator-(const UnalignedIterator& o) const {
    return (p - o.p) / static_cast<difference_type>(sizeof(T));
  }
  bool operator==(const UnalignedIterator& o) const { return p == o.p; }
};

template <class T>
bool GetArray(std::string_view* in, std::vector<T>* v) {
  uint64_t n;
  if (!GetU64(in, &n) || n > in->size() / sizeof(T)) return false;
  v->assign(UnalignedIterator<T>{in->data()}, UnalignedIterator<T>{in->data() + n * sizeof(T)});
  in->remove_prefix(n * sizeof(T));
  return true;
}

// Format versions 1 and 2: the dictionary as `size` strings (u32 length + bytes) in order.
template <class Fail>
bool ReadDictionaryAsList(std::string_view* in, uint32_t dict_size, Dictionary* out, Fail* fail) {
  // Two passes over the strings: validate and size them, then build the dictionary at its exact
  // size (no list of views, no second copy of the buffer).
  Dictionary::Sizer sizer;
  std::string_view strings = *in;
  {
    std::string_view prev;
    for (uint32_t i = 0; i < dict_size; ++i) {
      std::string_view s;
      if (!GetBytes(in, &s)) return (*fail)("truncated dictionary");
      if (i > 0 && !(prev < s)) return (*fail)("unsorted dictionary");
      sizer.Add(s);
      prev = s;
    }
  }
  Dictionary::Builder builder;
  builder.Reserve(dict_size, sizer.bytes());
  for (uint32_t i = 0; i < dict_size; ++i) {
    std::string_view s;
    GetBytes(&strings, &s);
    builder.Add(s);
  }
  *out = std::move(builder).Finish();
  return true;
}

}  // namespace

void ColumnCodec::Write(const Column& c, std::string* out) {
  c.Ensure();
  const Column::Data& data = *c.d_;
  PutU32(out, static_cast<uint32_t>(c.path().size()));
  for (const Step& s : c.path()) {
    out->push_back(s.is_index ? 1 : 0);
    if (s.is_index) {
      PutU32(out, s.index);
    } else {
      PutBytes(out, s.name);
    }
  }
  PutBitmap(out, data.present_);
  for (const Bitmap& b : data.by_kind_) PutBitmap(out, b);
  PutArray(out, data.numbers_);
  PutArray(out, data.codes_);
  PutArray(out, data.array_lengths_);
  PutU32(out, static_cast<uint32_t>(data.dict_.size()));
  std::string_view encoded = data.dict_.encoded();
  PutU64(out, encoded.size());
  out->append(encoded);
  PutU32(out, static_cast<uint32_t>(data.string_postings_.size()));
  for (const Bitmap& b : data.string_postings_) PutBitmap(out, b);
  PutArray(out, data.distinct_numbers_);
  PutU32(out, static_cast<uint32_t>(data.number_postings_.size()));
  for (const Bitmap& b : data.number_postings_) PutBitmap(out, b);
}

bool ColumnCodec::Read(std::string_view* in, std::shared_ptr<const Column>* out, std::string* error,
                       uint32_t row_count, uint32_t format_version,
                       const std::shared_ptr<const void>& owner) {
  auto c = std::make_shared<Column>();
  Column::Data& data = *c->d_;
  auto fail = [&](const char* what) {
    *error = what;
    return false;
  };
  uint32_t steps;
  if (!GetU32(in, &steps) || steps == 0 || steps > 4096) return fail("bad column path");
  ColumnPath path;
  for (uint32_t i = 0; i < steps; ++i) {
    if (in->empty()) return fail("truncated column path");
    Step s;
    s.is_index = (*in)[0] == 1;
    if ((*in)[0] > 1) return fail("bad column path step");
    in->remove_prefix(1);
    if (s.is_index) {
      if (!GetU32(in, &s.index)) return fail("truncated column path");
    } else {
      std::string_view name;
      if (!GetBytes(in, &name)) return fail("truncated column path");
      s.name = std::string(name);
    }
    path.push_back(std::move(s));
  }
  c->path_ = std::make_shared<const ColumnPath>(std::move(path));
  if (!GetBitmap(in, &data.present_)) return fail("bad presence bitmap");
  if (!data.present_.Empty() && data.present_.Maximum() >= row_count)
    return fail("row out of range");
  for (Bitmap& b : data.by_kind_) {
    if (!GetBitmap(in, &b)) return fail("bad kind bitmap");
  }
  if (!GetArray(in, &data.numbers_) || !GetArray(in, &data.codes_) ||
      !GetArray(in, &data.array_lengths_)) {
    return fail("bad value arrays");
  }
  uint32_t dict_size;
  // Each string takes at least 4 bytes in a list (its length), at least 1 encoded.
  if (!GetU32(in, &dict_size) || dict_size > in->size() / (format_version >= 3 ? 1 : 4)) {
    return fail("bad dictionary");
  }
  if (format_version >= 3) {
    uint64_t encoded_size;
    if (!GetU64(in, &encoded_size) || encoded_size > in->size()) return fail("bad dictionary");
    std::string_view encoded = in->substr(0, encoded_size);
    in->remove_prefix(encoded_size);
    if (!Dictionary::FromEncoded(encoded, dict_size, owner, &data.dict_)) {
      return fail("bad dictionary encoding or unsorted dictionary");
    }
  } else if (!ReadDictionaryAsList(in, dict_size, &data.dict_, &fail)) {
    return false;
  }
  uint32_t n;
  if (!GetU32(in, &n) || (n != 0 && n != dict_size)) return fail("bad string postings");
  data.string_postings_.resize(n);
  for (Bitmap& b : data.string_postings_) {
    if (!GetBitmap(in, &b)) return fail("bad string posting");
  }
  if (!GetArray(in, &data.distinct_numbers_) || !GetU32(in, &n) ||
      (n != 0 && n != data.distinct_numbers_.size())) {
    return fail("bad number postings");
  }
  data.number_postings_.resize(n);
  for (Bitmap& b : data.number_postings_) {
    if (!GetBitmap(in, &b)) return fail("bad number posting");
  }
  // Consistency: the value arrays match their bitmaps, codes are in range.
  Bitmap all;
  uint64_t total = 0;
  for (size_t k = 0; k < kKindCount; ++k) {
    data.stats_.kind_counts[k] = data.by_kind_[k].Cardinality();
    total += data.stats_.kind_counts[k];
    all |= data.by_kind_[k];
  }
  if (!(all == data.present_) || total != data.present_.Cardinality() ||
      data.numbers_.size() != data.stats_.kind_counts[static_cast<size_t>(Kind::kNumber)] ||
      data.codes_.size() != data.stats_.kind_counts[static_cast<size_t>(Kind::kString)] ||
      data.array_lengths_.size() != data.stats_.kind_counts[static_cast<size_t>(Kind::kArray)]) {
    return fail("inconsistent column");
  }
  for (uint32_t code : data.codes_) {
    if (code >= dict_size) return fail("string code out of range");
  }
  for (double d : data.numbers_) {
    if (!std::isfinite(d)) return fail("non-finite number");
  }
  // Postings must be exactly the rows holding each value: Merge indexes them by value and would
  // write out of bounds for a number without a posting. Every row is in the posting of its value
  // and the postings hold no more entries than there are rows.
  const std::vector<double>& distinct = data.distinct_numbers_;
  for (size_t i = 0; i < distinct.size(); ++i) {
    if (!std::isfinite(distinct[i]) || (i > 0 && !(distinct[i - 1] < distinct[i]))) {
      return fail("bad distinct numbers");
    }
  }
  // Checked posting by posting, each read in order: `slot_of_row` maps each row of the kind's
  // bitmap to its index in the value array (rows outside it map to kNoSlot), so an entry is
  // checked in O(1) (a rank or a search of the distinct values per row would cost several
  // times the whole read on a large fleet). `value_ok(p, slot)`: the value at `slot` is
  // posting p's value.
  constexpr uint32_t kNoSlot = UINT32_MAX;
  std::vector<uint32_t> slot_of_row;
  auto postings_hold = [&](const Bitmap& rows, const std::vector<Bitmap>& postings,
                           auto&& value_ok) {
    uint64_t entries = 0;
    for (const Bitmap& p : postings) entries += p.Cardinality();
    if (entries != rows.Cardinality()) return false;
    if (rows.Empty()) return true;
    slot_of_row.assign(static_cast<size_t>(rows.Maximum()) + 1, kNoSlot);
    uint32_t i = 0;
    rows.ForEach([&](uint32_t row) { slot_of_row[row] = i++; });
    bool ok = true;
    for (size_t p = 0; p < postings.size() && ok; ++p) {
      postings[p].ForEach([&](uint32_t row) {
        uint32_t slot = row < slot_of_row.size() ? slot_of_row[row] : kNoSlot;
        ok = ok && slot != kNoSlot && value_ok(p, slot);
      });
    }
    // Every entry names a row of the kind with the posting's value; as many entries as rows, so
    // every row is in exactly one posting.
    return ok;
  };
  if (!data.number_postings_.empty() &&
      !postings_hold(data.by_kind_[static_cast<size_t>(Kind::kNumber)], data.number_postings_,
                     [&](size_t p, uint32_t slot) {
                       // == is false for NaN, and -0 == 0 shares one posting, as in Build.
                       return data.numbers_[slot] == distinct[p];
                     })) {
    return fail("number postings disagree with the numbers");
  }
  if (!data.string_postings_.empty() &&
      !postings_hold(data.by_kind_[static_cast<size_t>(Kind::kString)], data.string_postings_,
                     [&](size_t p, uint32_t slot) { return data.codes_[slot] == p; })) {
    return fail("string postings disagree with the codes");
  }
  data.SetNumberRange();
  *out = std::move(c);
  return true;
}

}  // namespace twinq::index
