// The front-coded Dictionary against its oracle: a plain sorted vector of strings searched with
// std::lower_bound / std::upper_bound.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "index/column.h"

namespace twinq::index {
namespace {

// Checks every accessor of a dictionary built from `strings` (sorted and made unique here)
// against the vector, for every stored string and for `probes`.
void CheckDictionary(const Dictionary& d, const std::vector<std::string>& strings,
                     const std::vector<std::string>& probes) {
  ASSERT_EQ(d.size(), strings.size());
  std::string scratch;
  for (uint32_t i = 0; i < strings.size(); ++i) {
    ASSERT_EQ(d.View(i, &scratch), strings[i]) << "code " << i;
    ASSERT_EQ(d.String(i), strings[i]);
  }
  uint32_t next = 0;
  d.ForEach([&](uint32_t code, std::string_view s) {
    ASSERT_EQ(code, next++);
    ASSERT_EQ(s, strings[code]);
  });
  EXPECT_EQ(next, strings.size());

  std::vector<std::string> all = probes;
  all.insert(all.end(), strings.begin(), strings.end());
  for (const std::string& s : strings) {
    // Neighbours of every stored string: shorter, longer, and one byte changed.
    if (!s.empty()) all.push_back(s.substr(0, s.size() - 1));
    all.push_back(s + '\0');
    all.push_back(s + "\xff");
    if (!s.empty()) {
      std::string t = s;
      t.back() = static_cast<char>(static_cast<unsigned char>(t.back()) + 1);
      all.push_back(t);
    }
  }
  for (const std::string& p : all) {
    uint32_t lb = std::lower_bound(strings.begin(), strings.end(), p) - strings.begin();
    uint32_t ub = std::upper_bound(strings.begin(), strings.end(), p) - strings.begin();
    ASSERT_EQ(d.LowerBound(p), lb) << "probe \"" << p << "\"";
    ASSERT_EQ(d.UpperBound(p), ub) << "probe \"" << p << "\"";
    int64_t want = (lb < strings.size() && strings[lb] == p) ? int64_t{lb} : int64_t{-1};
    ASSERT_EQ(d.Find(p), want) << "probe \"" << p << "\"";
    // PrefixRange: the codes of the strings that start with p, which are contiguous.
    uint32_t begin = lb, end = lb;
    while (end < strings.size() && std::string_view(strings[end]).starts_with(p)) ++end;
    auto [b, e] = d.PrefixRange(p);
    ASSERT_EQ(b, begin) << "prefix \"" << p << "\"";
    ASSERT_EQ(e, end) << "prefix \"" << p << "\"";
  }
}

// The same for the built dictionary and for the two read back from its encoding (as the index
// file stores it): a copy, and a view of bytes kept alive by an owner.
void CheckAgainstVector(std::vector<std::string> strings, const std::vector<std::string>& probes) {
  std::sort(strings.begin(), strings.end());
  strings.erase(std::unique(strings.begin(), strings.end()), strings.end());
  Dictionary built(strings);
  CheckDictionary(built, strings, probes);
  // A Builder given no size, too small a size or too large a one grows or trims its buffer, and
  // encodes exactly as one given the exact size (what the constructor passes).
  for (int reserve : {-1, 0, 1, 2}) {
    SCOPED_TRACE(reserve);
    Dictionary::Builder b;
    if (reserve >= 0) b.Reserve(strings.size(), built.encoded().size() * reserve / 2);
    for (const std::string& s : strings) b.Add(s);
    Dictionary grown = std::move(b).Finish();
    EXPECT_EQ(grown.encoded(), built.encoded());
    EXPECT_EQ(grown.size(), strings.size());
  }
  Dictionary copied;
  ASSERT_TRUE(Dictionary::FromEncoded(built.encoded(), static_cast<uint32_t>(strings.size()),
                                      nullptr, &copied));
  CheckDictionary(copied, strings, probes);
  EXPECT_EQ(copied.encoded(), built.encoded());
  auto bytes = std::make_shared<const std::string>(built.encoded());
  Dictionary viewed;
  ASSERT_TRUE(
      Dictionary::FromEncoded(*bytes, static_cast<uint32_t>(strings.size()), bytes, &viewed));
  EXPECT_EQ(viewed.encoded().data(), bytes->data());  // in place, not copied
  bytes.reset();                                      // the dictionary keeps its bytes alive
  CheckDictionary(viewed, strings, probes);
}

TEST(DictionaryTest, Empty) {
  Dictionary d;
  EXPECT_EQ(d.size(), 0u);
  EXPECT_EQ(d.LowerBound("a"), 0u);
  EXPECT_EQ(d.UpperBound(""), 0u);
  EXPECT_EQ(d.Find(""), -1);
  EXPECT_EQ(d.PrefixRange(""), (std::pair<uint32_t, uint32_t>{0, 0}));
  d.ForEach([](uint32_t, std::string_view) { FAIL() << "no strings"; });
  CheckAgainstVector({}, {"", "a", "\xff"});
}

TEST(DictionaryTest, SmallAndEdgeStrings) {
  CheckAgainstVector({""}, {"", "a"});
  CheckAgainstVector({"", "a", "ab", "abc", "b"}, {"aa", "abd", "c", "\xff"});
  // Bytes 0x00 and 0xff (prefix ranges must compare bytes unsigned), and prefixes that end in
  // 0xff (their successor drops the 0xff bytes).
  CheckAgainstVector({std::string("a\0b", 3), "a\x7f", "a\x80", "a\xff", "a\xff\xff", "a\xff\xffz",
                      "b", "\xff", "\xff\xff"},
                     {"a\xff", "\xff", std::string(1, '\0'), "a"});
}

TEST(DictionaryTest, BlockBoundaries) {
  // Sizes around multiples of the block, so heads, last entries and partial blocks all occur.
  for (size_t n : {1u, 15u, 16u, 17u, 31u, 32u, 33u, 100u}) {
    std::vector<std::string> s;
    for (size_t i = 0; i < n; ++i) s.push_back("k" + std::to_string(i * 7));
    CheckAgainstVector(s, {"", "0", "k", "z"});
  }
}

TEST(DictionaryTest, TimestampsShareLongPrefixes) {
  // The column shape front coding is for: sorted near-unique ISO timestamps.
  std::mt19937_64 rng(7);
  std::vector<std::string> s;
  char buf[40];
  for (int i = 0; i < 5000; ++i) {
    uint64_t t = rng() % 5000000;
    std::snprintf(buf, sizeof buf, "2024-12-%02dT%02d:%02d:%02d.%07dZ", int(1 + t / 86400 % 28),
                  int(t / 3600 % 24), int(t / 60 % 60), int(t % 60), int(rng() % 10000000));
    s.push_back(buf);
  }
  CheckAgainstVector(s, {"2024-12-", "2024-12-1", "2024-12-15T", "2025", "2024-11-30T23:59:59Z"});
  std::sort(s.begin(), s.end());
  s.erase(std::unique(s.begin(), s.end()), s.end());
  size_t plain = 0;
  for (const auto& x : s) plain += x.size() + sizeof(uint64_t);
  // Front coding takes well under the plain layout (bytes plus an offset per string): about half
  // for timestamps this sparse (a block of 16 shares "2024-12-DDT" and a digit or two).
  EXPECT_LT(Dictionary(s).MemoryBytes() * 10, plain * 6);
}

TEST(DictionaryTest, RandomStrings) {
  std::mt19937_64 rng(11);
  for (int round = 0; round < 40; ++round) {
    // Small alphabets make shared prefixes, equal heads and near-misses common.
    std::string alphabet = round % 3 == 0 ? std::string("ab") : std::string("a\0\x7f\x80\xff", 5);
    std::vector<std::string> s, probes;
    size_t n = rng() % 200;
    for (size_t i = 0; i < n + 30; ++i) {
      std::string x;
      size_t len = rng() % 8;
      for (size_t k = 0; k < len; ++k) x.push_back(alphabet[rng() % alphabet.size()]);
      (i < n ? s : probes).push_back(x);
    }
    CheckAgainstVector(s, probes);
  }
}

TEST(DictionaryTest, LongStringsAndLongSharedPrefixes) {
  // Lengths past one varint byte (>= 128), shared prefixes past 128 too.
  std::string base(300, 'x');
  std::vector<std::string> s;
  for (int i = 0; i < 40; ++i) s.push_back(base.substr(0, 100 + i * 7) + std::to_string(i));
  s.push_back(std::string(5000, 'y'));
  CheckAgainstVector(s, {base, base.substr(0, 129), std::string(5000, 'y') + "z"});
}

// Encoded bytes that are not a dictionary of the given size are refused, never read out of
// bounds (the index reader relies on it: a file can be edited and re-sealed).
TEST(DictionaryTest, FromEncodedRefusesWhatIsNotADictionary) {
  std::vector<std::string> strings;
  for (int i = 0; i < 40; ++i) strings.push_back("key-" + std::to_string(1000 + i));
  Dictionary d(strings);
  const std::string good(d.encoded());
  const uint32_t n = static_cast<uint32_t>(strings.size());
  auto accepted = [](std::string_view bytes, uint32_t size) {
    Dictionary out;
    // Bytes of their own, so a read past them is caught by sanitizers.
    auto own = std::make_shared<const std::string>(bytes);
    return Dictionary::FromEncoded(*own, size, own, &out);
  };
  EXPECT_TRUE(accepted(good, n));
  EXPECT_TRUE(accepted("", 0));
  EXPECT_FALSE(accepted(good, n - 1)) << "bytes left over";
  EXPECT_FALSE(accepted(good, n + 1)) << "more strings than the bytes hold";
  EXPECT_FALSE(accepted(good + 'x', n)) << "a trailing byte";
  for (size_t cut = 0; cut < good.size(); ++cut) {
    EXPECT_FALSE(accepted(good.substr(0, cut), n)) << "truncated to " << cut;
  }
  // Two equal strings, and strings out of order.
  EXPECT_FALSE(accepted(
      std::string(Dictionary(std::vector<std::string>{"a"}).encoded()) + std::string("\x01\x00", 2),
      2));  // "a" then head[0,1) + "" = "a" again
  EXPECT_FALSE(accepted(std::string{'\x01', 'b', '\x00', '\x01', 'a'}, 2));  // "b" then "a"
  EXPECT_TRUE(accepted(std::string{'\x01', 'a', '\x00', '\x01', 'b'}, 2));   // "a" then "b"
  // A shared prefix longer than the block's head.
  EXPECT_FALSE(accepted(std::string{'\x01', 'a', '\x02', '\x01', 'b'}, 2));
  // A length past the end, and a varint that never ends.
  EXPECT_FALSE(accepted(std::string{'\x05', 'a', 'b'}, 1));
  EXPECT_FALSE(accepted(std::string(12, '\x80'), 1));
  // Every single-byte change is refused or gives a dictionary that reads safely and in order.
  for (size_t pos = 0; pos < good.size(); ++pos) {
    for (unsigned char mask : {0x01, 0x40, 0x80, 0xff}) {
      std::string bad = good;
      bad[pos] = static_cast<char>(bad[pos] ^ mask);
      Dictionary out;
      if (!Dictionary::FromEncoded(bad, n, nullptr, &out)) continue;
      std::string prev;
      out.ForEach([&](uint32_t code, std::string_view s) {
        if (code > 0) {
          EXPECT_LT(prev, s);
        }
        prev = std::string(s);
      });
      for (const std::string& s : strings) out.Find(s);
    }
  }
}

}  // namespace
}  // namespace twinq::index
