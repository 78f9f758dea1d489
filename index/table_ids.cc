// The id structures the VM uses (IdCache in table.h): a hash deviceId -> rows for `deviceId =`
// and `deviceId IN [...]`, and ranks in order() for putting row sets in id order without string
// comparisons. Both are built on first use and kept for the version (and, as IdCache says, for
// later versions where they stay valid).
#include <algorithm>
#include <functional>

#include "index/table.h"

namespace twinq::index {

struct IdHash {
  uint32_t rows = 0;  // rows [0, rows) were hashed (those live at the time)
  uint64_t mask = 0;
  // Open addressing, linear probing: (fingerprint << 32) | (row + 1); 0 = empty.
  std::vector<uint64_t> slots;
};

struct IdRanks {
  std::shared_ptr<const std::vector<uint32_t>> order;  // the order() these ranks describe
  bool ascending = false;      // order() is increasing: id order = row order
  std::vector<uint32_t> rank;  // row -> position in order (UINT32_MAX: not in it); !ascending only
};

namespace {

constexpr uint32_t kNoRank = UINT32_MAX;

uint64_t HashId(std::string_view id) { return std::hash<std::string_view>{}(id); }

// Rows added since a hash was built are scanned by every lookup: it serves a version with
// `row_count` rows while they are few.
bool ServesRows(const IdHash& h, uint32_t row_count) {
  return row_count - h.rows <= 4096 + h.rows / 8;
}

}  // namespace

IdCache::IdCache(const IdCache& o) {
  std::lock_guard<std::mutex> lock(o.mu_);
  hash_ = o.hash_;
  ranks_ = o.ranks_;
}

IdCache& IdCache::operator=(const IdCache& o) {
  if (this == &o) return *this;
  std::shared_ptr<const IdHash> h;
  std::shared_ptr<const IdRanks> r;
  {
    std::lock_guard<std::mutex> lock(o.mu_);
    h = o.hash_;
    r = o.ranks_;
  }
  std::lock_guard<std::mutex> lock(mu_);
  valid_hash_.store(nullptr, std::memory_order_relaxed);  // the version is assigned a new one
  hash_ = std::move(h);
  ranks_ = std::move(r);
  return *this;
}

const IdHash& Table::IdHashForLookup() const {
  if (const IdHash* valid = id_cache_.valid_hash_.load(std::memory_order_acquire)) return *valid;
  std::lock_guard<std::mutex> lock(id_cache_.mu_);
  const std::shared_ptr<const IdHash>& have = id_cache_.hash_;
  if (have != nullptr && ServesRows(*have, row_count_)) {
    id_cache_.valid_hash_.store(have.get(), std::memory_order_release);
    return *have;
  }
  auto h = std::make_shared<IdHash>();
  h->rows = row_count_;
  const std::vector<uint32_t>& o = *order_;
  uint64_t capacity = 16;
  while (capacity < 2 * static_cast<uint64_t>(o.size()) + 1) capacity *= 2;
  h->mask = capacity - 1;
  h->slots.assign(capacity, 0);
  for (uint32_t row : o) {
    uint64_t hv = HashId(device_id(row));
    uint64_t i = hv & h->mask;
    while (h->slots[i] != 0) i = (i + 1) & h->mask;
    h->slots[i] = (hv >> 32 << 32) | (static_cast<uint64_t>(row) + 1);
  }
  id_cache_.hash_ = h;
  id_cache_.valid_hash_.store(h.get(), std::memory_order_release);
  return *h;
}

void Table::ValidateInheritedIdHash() {
  const std::shared_ptr<const IdHash>& have = id_cache_.hash_;
  if (have != nullptr && ServesRows(*have, row_count_)) {
    id_cache_.valid_hash_.store(have.get(), std::memory_order_release);
  }
}

void Table::RowsOfDevice(std::string_view id, std::vector<uint32_t>* out) const {
  const IdHash& h = IdHashForLookup();
  uint64_t hv = HashId(id);
  uint64_t fp = hv >> 32 << 32;
  for (uint64_t i = hv & h.mask; h.slots[i] != 0; i = (i + 1) & h.mask) {
    uint64_t slot = h.slots[i];
    if ((slot & 0xFFFFFFFF00000000ull) != fp) continue;
    uint32_t row = static_cast<uint32_t>((slot & 0xFFFFFFFFull) - 1);
    // One walk of the document tree for the compare and for the lines a lookup reads next: the
    // row's module id (FindRow) and its document's handle (a patch's splice), asked for now so
    // that their misses overlap the ids' instead of following them.
    const DocChunk& c = chunk_of(row);
    const size_t at = row % kDocChunkRows;
    Prefetch(&c.json[at]);
    Prefetch(&c.ids->module_id[at]);
    // Verified: the row may have been deleted in this version.
    if (c.ids->device_id[at] == id && live_->Contains(row)) out->push_back(row);
  }
  for (uint32_t row = h.rows; row < row_count_; ++row) {  // added after the hash was built
    if (live_->Contains(row) && device_id(row) == id) out->push_back(row);
  }
}

void Table::PrefetchIdSlot(std::string_view id) const {
  const IdHash& h = IdHashForLookup();
  Prefetch(&h.slots[HashId(id) & h.mask]);
}

std::shared_ptr<const IdRanks> Table::IdRanksForOrder() const {
  std::lock_guard<std::mutex> lock(id_cache_.mu_);
  if (id_cache_.ranks_ != nullptr && id_cache_.ranks_->order == order_) return id_cache_.ranks_;
  auto r = std::make_shared<IdRanks>();
  r->order = order_;
  const std::vector<uint32_t>& o = *order_;
  r->ascending =
      std::is_sorted(o.begin(), o.end()) && std::adjacent_find(o.begin(), o.end()) == o.end();
  if (!r->ascending) {
    r->rank.assign(row_count_, kNoRank);
    for (uint32_t i = 0; i < o.size(); ++i) {
      if (o[i] < r->rank.size()) r->rank[o[i]] = i;
    }
  }
  id_cache_.ranks_ = r;
  return r;
}

std::vector<uint32_t> Table::InIdOrderByRank(const Bitmap& rows) const {
  if (rows.Empty()) return {};
  // Rows outside order() (not live) have no rank: the string sort places them.
  if (!rows.roaring().isSubset(live_->roaring())) return InIdOrder(rows);
  std::shared_ptr<const IdRanks> r = IdRanksForOrder();
  if (r->ascending) return rows.ToVector();
  const std::vector<uint32_t>& o = *r->order;
  const std::vector<uint32_t>& rank = r->rank;
  uint64_t n = rows.Cardinality();
  std::vector<uint32_t> out;
  out.reserve(n);
  bool missing = false;
  if (n * 32 < o.size()) {  // few rows: sort their ranks
    std::vector<uint32_t> ranks;
    ranks.reserve(n);
    rows.ForEach([&](uint32_t row) {
      uint32_t k = row < rank.size() ? rank[row] : kNoRank;
      if (k == kNoRank) missing = true;
      ranks.push_back(k);
    });
    if (missing) return InIdOrder(rows);
    std::sort(ranks.begin(), ranks.end());
    for (uint32_t k : ranks) out.push_back(o[k]);
    return out;
  }
  // Many rows: mark their positions in order(), then read order() in turn.
  std::vector<uint64_t> bits((o.size() + 63) / 64, 0);
  rows.ForEach([&](uint32_t row) {
    uint32_t k = row < rank.size() ? rank[row] : kNoRank;
    if (k == kNoRank) {
      missing = true;
      return;
    }
    bits[k / 64] |= uint64_t{1} << (k % 64);
  });
  if (missing) return InIdOrder(rows);
  for (size_t w = 0; w < bits.size(); ++w) {
    uint64_t word = bits[w];
    while (word != 0) {
      int b = __builtin_ctzll(word);
      out.push_back(o[w * 64 + static_cast<size_t>(b)]);
      word &= word - 1;
    }
  }
  return out;
}

}  // namespace twinq::index
