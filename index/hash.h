// A fast hash of a byte string for the index builder's hash tables (interned strings, member
// names): every byte counts, and the result is mixed so that its low bits, which pick a table
// slot, depend on all of them. Not for anything adversarial or persistent: the value may change
// between versions. And the equality those tables compare keys with.
#ifndef TWINQ_INDEX_HASH_H_
#define TWINQ_INDEX_HASH_H_

#include <cstdint>
#include <cstring>
#include <string_view>

namespace twinq::index {

// Both halves of a 64 x 64-bit product, folded: every bit of the inputs reaches every bit of
// the result.
inline uint64_t MulFold(uint64_t a, uint64_t b) {
  const unsigned __int128 m = static_cast<unsigned __int128>(a) * b;
  return static_cast<uint64_t>(m) ^ static_cast<uint64_t>(m >> 64);
}

inline uint64_t HashBytes(std::string_view s) {
  constexpr uint64_t kSeed = 0x9E3779B97F4A7C15ULL, kMul = 0xC2B2AE3D27D4EB4FULL;
  const char* p = s.data();
  size_t n = s.size();
  uint64_t h = kSeed ^ n;
  auto word = [](const char* q) {
    uint64_t w;
    std::memcpy(&w, q, 8);
    return w;
  };
  if (n >= 8) {
    for (; n > 8; p += 8, n -= 8) h = MulFold(h ^ word(p), kMul);
    return MulFold(h ^ word(p + n - 8), kMul);  // the last 8 bytes (may overlap the last word)
  }
  uint64_t w = 0;
  if (n >= 4) {
    uint32_t a, b;
    std::memcpy(&a, p, 4);
    std::memcpy(&b, p + n - 4, 4);
    w = uint64_t{a} << 32 | b;
  } else if (n > 0) {
    w = uint64_t{static_cast<unsigned char>(p[0])} << 16 |
        uint64_t{static_cast<unsigned char>(p[n / 2])} << 8 | static_cast<unsigned char>(p[n - 1]);
  }
  return MulFold(h ^ w, kMul);
}

// a == b, inline: the builder's keys are mostly a few bytes long, where a call to memcmp costs
// more than the comparison.
inline bool EqualBytes(std::string_view a, std::string_view b) {
  const size_t n = a.size();
  if (n != b.size()) return false;
  const char* p = a.data();
  const char* q = b.data();
  if (n >= 8) {
    auto word = [](const char* r) {
      uint64_t w;
      std::memcpy(&w, r, 8);
      return w;
    };
    for (size_t i = 0; i + 8 < n; i += 8) {
      if (word(p + i) != word(q + i)) return false;
    }
    return word(p + n - 8) == word(q + n - 8);  // the last 8 bytes (may overlap)
  }
  if (n >= 4) {
    uint32_t a0, a1, b0, b1;
    std::memcpy(&a0, p, 4);
    std::memcpy(&a1, p + n - 4, 4);
    std::memcpy(&b0, q, 4);
    std::memcpy(&b1, q + n - 4, 4);
    return a0 == b0 && a1 == b1;
  }
  for (size_t i = 0; i < n; ++i) {
    if (p[i] != q[i]) return false;
  }
  return true;
}

}  // namespace twinq::index

#endif  // TWINQ_INDEX_HASH_H_
