// A fast hash of a byte string for the index builder's hash tables (interned strings, member
// names): every byte counts, and the result is mixed so that its low bits, which pick a table
// slot, depend on all of them. Not for anything adversarial or persistent: the value may change
// between versions.
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

}  // namespace twinq::index

#endif  // TWINQ_INDEX_HASH_H_
