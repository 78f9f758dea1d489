// Bitmap::Read, the reader of CRoaring's portable format in index files: sound bitmaps of every
// container kind round-trip; containers that break the format's invariants are refused (CRoaring
// 0.2.66's safe reader accepts them, and the bitmap it gives breaks Maximum() and iteration).
#include "index/bitmap.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "index/column_codec.h"  // PutU32

namespace twinq::index {
namespace {

std::string Bytes(const Bitmap& b) {
  std::string out;
  b.AppendTo(&out);
  return out;
}

bool Reads(const std::string& bytes, Bitmap* out = nullptr) {
  Bitmap b;
  size_t consumed = 0;
  bool ok = Bitmap::Read(bytes, &b, &consumed);
  if (ok) {
    EXPECT_EQ(consumed, bytes.size());
  }
  if (ok && out != nullptr) *out = b;
  return ok;
}

void PutU16(std::string* s, uint16_t v) { s->append(reinterpret_cast<const char*>(&v), 2); }

// A bitmap of one array container (no run containers): cookie 12346, one key, its values.
std::string OneArray(uint16_t key, const std::vector<uint16_t>& values) {
  std::string s;
  PutU32(&s, 12346);
  PutU32(&s, 1);
  PutU16(&s, key);
  PutU16(&s, static_cast<uint16_t>(values.size() - 1));
  PutU32(&s, 0);  // offset (not used to read)
  for (uint16_t v : values) PutU16(&s, v);
  return s;
}

// One run container: cookie 12347 with one container, its run flag, runs of (start, length).
std::string OneRunContainer(uint16_t card_minus_one,
                            const std::vector<std::pair<uint16_t, uint16_t>>& runs) {
  std::string s;
  PutU32(&s, 12347);  // (size - 1) << 16 | cookie, size 1
  s.push_back('\x01');
  PutU16(&s, 0);
  PutU16(&s, card_minus_one);
  PutU16(&s, static_cast<uint16_t>(runs.size()));
  for (auto [start, length] : runs) {
    PutU16(&s, start);
    PutU16(&s, length);
  }
  return s;
}

TEST(BitmapTest, SoundBitmapsOfEveryContainerKindRoundTrip) {
  std::vector<uint32_t> sparse = {1, 7, 65535, 65536, 1u << 20, UINT32_MAX};
  Bitmap dense;
  for (uint32_t i = 0; i < 20000; i += 2) dense.Add(i);  // a bitset container
  Bitmap runs;
  for (uint32_t i = 100; i < 300000; ++i) runs.Add(i);
  runs.Optimize();  // run containers
  Bitmap mixed = runs | dense | Bitmap::Of(sparse);
  mixed.Optimize();
  for (const Bitmap& b : {Bitmap(), Bitmap::Of(sparse), dense, runs, mixed}) {
    Bitmap back;
    ASSERT_TRUE(Reads(Bytes(b), &back));
    EXPECT_TRUE(back == b);
    EXPECT_EQ(back.Cardinality(), b.Cardinality());
  }
  EXPECT_TRUE(Reads(OneArray(3, {1, 2, 9})));
  EXPECT_TRUE(Reads(OneRunContainer(5, {{0, 1}, {10, 3}})));
}

TEST(BitmapTest, ContainersThatBreakTheFormatAreRefused) {
  EXPECT_FALSE(Reads(OneArray(0, {5, 3, 9}))) << "array values out of order";
  EXPECT_FALSE(Reads(OneArray(0, {3, 3}))) << "a repeated array value";
  EXPECT_FALSE(Reads(OneRunContainer(5, {{10, 3}, {0, 1}}))) << "runs out of order";
  EXPECT_FALSE(Reads(OneRunContainer(7, {{0, 4}, {3, 2}}))) << "overlapping runs";
  EXPECT_FALSE(Reads(OneRunContainer(5, {{0, 1}, {10, 2}}))) << "runs that disagree with the "
                                                                "cardinality";
  EXPECT_FALSE(Reads(OneRunContainer(1, {{65535, 1}}))) << "a run past 16 bits";
  EXPECT_FALSE(Reads(OneRunContainer(0, {}))) << "an empty run container";
  {  // keys out of order
    std::string s;
    PutU32(&s, 12346);
    PutU32(&s, 2);
    for (uint16_t key : {5, 2}) {
      PutU16(&s, key);
      PutU16(&s, 0);
    }
    PutU32(&s, 0);
    PutU32(&s, 0);
    PutU16(&s, 1);
    PutU16(&s, 1);
    EXPECT_FALSE(Reads(s));
  }
  {  // a bitset container whose words disagree with the cardinality
    Bitmap dense;
    for (uint32_t i = 0; i < 20000; i += 2) dense.Add(i);
    std::string s = Bytes(dense);
    s[s.size() - 1] = static_cast<char>(s[s.size() - 1] ^ 0x40);
    EXPECT_FALSE(Reads(s));
  }
  // Every truncation of a sound bitmap is refused; so is an unknown cookie.
  Bitmap b = Bitmap::Of({1, 2, 3, 100000, 200000});
  std::string good = Bytes(b);
  for (size_t n = 0; n < good.size(); ++n) EXPECT_FALSE(Reads(good.substr(0, n))) << n;
  std::string bad_cookie = good;
  bad_cookie[0] = static_cast<char>(bad_cookie[0] ^ 0x01);
  EXPECT_FALSE(Reads(bad_cookie));
}

// OfIncreasing (the column builder's: runs of rows go in as ranges) holds what Of holds, and after
// Optimize takes as many bytes: rows with no runs, short and long runs, runs across and up to
// container boundaries (65536), up to the largest row, and a mix drawn at random.
TEST(BitmapTest, OfIncreasingHoldsWhatOfHolds) {
  std::vector<std::vector<uint32_t>> cases = {{}, {7}, {0, 2, 4, 6}};
  auto run = [](uint32_t from, uint32_t count, std::vector<uint32_t>* rows) {
    for (uint32_t i = 0; i < count; ++i) rows->push_back(from + i);
  };
  std::vector<uint32_t> rows;
  run(0, 63, &rows);
  cases.push_back(rows);
  rows.clear();
  run(0, 64, &rows);
  cases.push_back(rows);
  rows.clear();
  run(65000, 2000, &rows);  // across the first boundary
  run(70000, 1, &rows);
  run(131072 - 100, 100, &rows);  // up to the next
  cases.push_back(rows);
  rows.clear();
  run(UINT32_MAX - 199, 200, &rows);  // to the largest row
  cases.push_back(rows);
  std::mt19937 rng(3);
  for (int c = 0; c < 20; ++c) {
    rows.clear();
    uint32_t at = rng() % 1000;
    while (rows.size() < 300000) {
      run(at, rng() % 3 == 0 ? rng() % 5000 : 1 + rng() % 80, &rows);
      at = (rows.empty() ? at : rows.back()) + 2 + rng() % (c % 2 ? 3 : 300);
    }
    cases.push_back(rows);
  }
  for (const std::vector<uint32_t>& rows : cases) {
    SCOPED_TRACE(rows.size());
    Bitmap a = Bitmap::Of(rows), b = Bitmap::OfIncreasing(rows);
    ASSERT_TRUE(a == b);
    EXPECT_EQ(b.ToVector(), rows);
    a.Optimize();
    b.Optimize();
    EXPECT_TRUE(a == b);
    EXPECT_EQ(a.SizeInBytes(), b.SizeInBytes());
    EXPECT_EQ(Bytes(a).size(), Bytes(b).size());
  }
}

// Rows without a run of kMinRangeRun go in through the portable format (FromIncreasing): the
// same containers as Of's, byte for byte before and after Optimize. Cases: one row; containers
// of exactly 4096 rows (the largest array) and 4097 (the smallest bitset), and of 65,536 every
// other row; rows at the ends of the row space; and random gaps of several densities.
TEST(BitmapTest, OfIncreasingWithoutRunsIsOfByteForByte) {
  std::vector<std::vector<uint32_t>> cases = {{0}, {65535}, {65536}, {UINT32_MAX}, {0, UINT32_MAX}};
  auto every_other = [](uint32_t from, uint32_t count, std::vector<uint32_t>* rows) {
    for (uint32_t i = 0; i < count; ++i) rows->push_back(from + 2 * i);
  };
  std::vector<uint32_t> rows;
  every_other(0, 4096, &rows);      // one array container of 4096 rows
  every_other(65536, 4097, &rows);  // one bitset container of 4097
  every_other(3 * 65536 + 1, 4095, &rows);
  every_other(UINT32_MAX - 2 * 4096 - 2 * 4095, 4097 + 4095, &rows);  // up to the largest row
  cases.push_back(rows);
  rows.clear();
  every_other(0, 3 * 32768, &rows);  // full containers of alternate rows
  cases.push_back(rows);
  std::mt19937 rng(11);
  for (int c = 0; c < 30; ++c) {
    rows.clear();
    const uint32_t gap = c % 3 == 0 ? 3 : c % 3 == 1 ? 40 : 70000;
    uint32_t at = static_cast<uint32_t>(rng() % 5000);
    while (rows.size() < 20000 && at < UINT32_MAX - 100000) {
      rows.push_back(at);
      at += 2 + static_cast<uint32_t>(rng() % gap);
    }
    cases.push_back(rows);
  }
  for (const std::vector<uint32_t>& rows : cases) {
    SCOPED_TRACE(rows.size());
    Bitmap a = Bitmap::Of(rows), b = Bitmap::OfIncreasing(rows);
    ASSERT_TRUE(a == b);
    EXPECT_EQ(b.ToVector(), rows);
    EXPECT_EQ(Bytes(a), Bytes(b));
    a.Optimize();
    b.Optimize();
    EXPECT_EQ(Bytes(a), Bytes(b));
    EXPECT_EQ(a.SizeInBytes(), b.SizeInBytes());
  }
}

}  // namespace
}  // namespace twinq::index
