// The fleet generator (fleet_gen.h). Everything that decides output bytes is integer arithmetic
// on our own PRNG, so the output is the same on every platform; probabilities given as doubles
// are turned into 53-bit integer thresholds with exact operations only.
#include "index/fleet_gen.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cassert>
#include <charconv>
#include <cstring>
#include <iterator>
#include <utility>

#include "engine/common/json_reader.h"

namespace twinq::index {
namespace {

// ---------------------------------------------------------------------------------------------
// Random numbers.

uint64_t SplitMix64(uint64_t* state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// A keyed hash of (seed, index, salt): decisions about device `index` that other devices need
// too (is it an edge device, its scope) are hashes, not draws from its stream.
uint64_t Hash(uint64_t seed, uint64_t index, uint64_t salt) {
  uint64_t s = seed ^ (salt * 0xd1b54a32d192ed03ULL);
  uint64_t a = SplitMix64(&s);
  s = a ^ index;
  return SplitMix64(&s);
}

enum Salt : uint64_t { kSaltSetup = 1, kSaltDevice, kSaltEdge, kSaltScope };

// Probability p in [0, 1] as a threshold on 53-bit draws (exact: scaling by a power of two).
uint64_t Threshold(double p) { return static_cast<uint64_t>(p * 9007199254740992.0); }

// xoshiro256** seeded through splitmix64.
class Rng {
 public:
  explicit Rng(uint64_t seed) {
    for (uint64_t& w : s_) w = SplitMix64(&seed);
  }
  uint64_t Next() {
    const uint64_t result = std::rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = std::rotl(s_[3], 45);
    return result;
  }
  // Uniform in [0, n), n > 0 (multiply-high; bias below 2^-40 for our n).
  uint64_t Below(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(Next()) * n) >> 64);
  }
  // Uniform in [lo, hi].
  int64_t Range(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(Below(static_cast<uint64_t>(hi - lo) + 1));
  }
  bool Chance(uint64_t threshold) { return (Next() >> 11) < threshold; }
  bool Chance(double p) { return Chance(Threshold(p)); }
  // Permille chance, for the generator's own constants.
  bool Permille(uint32_t k) { return Below(1000) < k; }

 private:
  std::array<uint64_t, 4> s_;
};

// ---------------------------------------------------------------------------------------------
// Zipf weights in fixed point: w(k) = (k + 1)^-s = 2^(-s * log2(k + 1)), Q30, integers only.

constexpr uint64_t ISqrt(uint64_t x) {
  uint64_t r = 0;
  for (uint64_t bit = uint64_t{1} << 62; bit != 0; bit >>= 2) {
    if (x >= r + bit) {
      x -= r + bit;
      r = (r >> 1) + bit;
    } else {
      r >>= 1;
    }
  }
  return r;
}

constexpr int kQ = 30;
constexpr uint64_t kOne = uint64_t{1} << kQ;

// kRoots[i] = 2^(-2^-(i+1)) in Q30.
constexpr std::array<uint64_t, kQ> MakeRoots() {
  std::array<uint64_t, kQ> r{};
  uint64_t v = ISqrt(uint64_t{1} << (2 * kQ - 1));  // sqrt(1/2)
  for (int i = 0; i < kQ; ++i) {
    r[i] = v;
    v = ISqrt(v << kQ);
  }
  return r;
}
constexpr std::array<uint64_t, kQ> kRoots = MakeRoots();

// log2(x) in Q30, x >= 1.
uint64_t Log2Q(uint64_t x) {
  int n = 63 - std::countl_zero(x);
  uint64_t y = n >= kQ ? x >> (n - kQ) : x << (kQ - n);  // x / 2^n in [1, 2), Q30
  uint64_t result = static_cast<uint64_t>(n) << kQ;
  for (int bit = kQ - 1; bit >= 0; --bit) {
    y = (y * y) >> kQ;
    if (y >= 2 * kOne) {
      y >>= 1;
      result |= uint64_t{1} << bit;
    }
  }
  return result;
}

// 2^(-t) for t in Q30; result in Q30.
uint64_t Exp2NegQ(uint64_t t) {
  uint64_t whole = t >> kQ;
  if (whole >= kQ) return 0;
  uint64_t r = kOne;
  for (int i = 0; i < kQ; ++i) {
    if (t & (uint64_t{1} << (kQ - 1 - i))) r = (r * kRoots[i]) >> kQ;
  }
  return r >> whole;
}

// A discrete distribution over [0, n) given integer weights.
class Table {
 public:
  Table() = default;
  explicit Table(const std::vector<uint64_t>& weights) {
    cum_.reserve(weights.size());
    uint64_t total = 0;
    for (uint64_t w : weights) cum_.push_back(total += w);
  }
  // Zipf-like over ranks 0..n-1 with exponent s (Q16).
  static Table Zipf(size_t n, uint64_t s_q16) {
    std::vector<uint64_t> w(n);
    for (size_t k = 0; k < n; ++k) {
      w[k] = std::max<uint64_t>(1, Exp2NegQ((s_q16 * Log2Q(k + 1)) >> 16));
    }
    return Table(w);
  }
  size_t Sample(Rng* rng) const {
    uint64_t r = rng->Below(cum_.back());
    return static_cast<size_t>(std::upper_bound(cum_.begin(), cum_.end(), r) - cum_.begin());
  }

 private:
  std::vector<uint64_t> cum_;
};

// ---------------------------------------------------------------------------------------------
// Text output.

// A short string built on the stack (ids, etags, thumbprints, scopes); every use is bounded.
struct Text {
  char data[96];
  size_t size = 0;
  void Put(char c) {
    assert(size < sizeof data);
    data[size++] = c;
  }
  void Put(std::string_view s) {
    assert(size + s.size() <= sizeof data);
    std::memcpy(data + size, s.data(), s.size());
    size += s.size();
  }
  std::string_view view() const { return {data, size}; }
};

// The line being built: a growable byte buffer with inline appends (std::string's out-of-line
// append dominated the profile).
class LineBuffer {
 public:
  LineBuffer() : data_(1 << 14), pos_(data_.data()) {}
  void Clear() { pos_ = data_.data(); }
  void Put(char c) {
    Ensure(1);
    *pos_++ = c;
  }
  void Put(std::string_view s) {
    Ensure(s.size());
    std::memcpy(pos_, s.data(), s.size());
    pos_ += s.size();
  }
  // '"' s '"', then `suffix` (':' after a key) unless it is '\0'.
  void PutQuoted(std::string_view s, char suffix) {
    Ensure(s.size() + 3);
    *pos_++ = '"';
    std::memcpy(pos_, s.data(), s.size());
    pos_ += s.size();
    *pos_++ = '"';
    if (suffix != '\0') *pos_++ = suffix;
  }
  std::string_view view() const { return {data_.data(), static_cast<size_t>(pos_ - data_.data())}; }

 private:
  void Ensure(size_t n) {
    if (static_cast<size_t>(data_.data() + data_.size() - pos_) < n) [[unlikely]] {
      size_t used = static_cast<size_t>(pos_ - data_.data());
      data_.resize(std::max(2 * data_.size(), used + n));
      pos_ = data_.data() + used;
    }
  }
  std::vector<char> data_;
  char* pos_;
};

// Compact JSON writer for keys and strings known not to need escapes.
class JsonWriter {
 public:
  explicit JsonWriter(LineBuffer* out) : out_(out) {}

  void BeginObject() {
    BeforeValue();
    out_->Put('{');
    Push();
  }
  void EndObject() {
    out_->Put('}');
    --depth_;
  }
  void BeginArray() {
    BeforeValue();
    out_->Put('[');
    Push();
  }
  void EndArray() {
    out_->Put(']');
    --depth_;
  }
  void Key(std::string_view k) {
    Comma();
    out_->PutQuoted(k, ':');
    after_key_ = true;
  }
  void String(std::string_view s) {
    BeforeValue();
    out_->PutQuoted(s, '\0');
  }
  void Int(int64_t v) {
    BeforeValue();
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out_->Put(std::string_view(buf, r.ptr - buf));
  }
  // scaled / 10^decimals, trailing zeros dropped (as ToJson prints the parsed number).
  void Fixed(int64_t scaled, int decimals) {
    BeforeValue();
    static constexpr int64_t kPow10[] = {1, 10, 100, 1000, 10000, 100000, 1000000};
    uint64_t u = scaled < 0 ? 0 - static_cast<uint64_t>(scaled) : static_cast<uint64_t>(scaled);
    uint64_t ip = u / kPow10[decimals];
    uint64_t fp = u % kPow10[decimals];
    if (scaled < 0) out_->Put('-');
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, ip);
    out_->Put(std::string_view(buf, r.ptr - buf));
    if (fp == 0) return;
    char frac[8];
    for (int i = decimals - 1; i >= 0; --i) {
      frac[i] = static_cast<char>('0' + fp % 10);
      fp /= 10;
    }
    int len = decimals;
    while (frac[len - 1] == '0') --len;
    out_->Put('.');
    out_->Put(std::string_view(frac, len));
  }
  void Bool(bool b) {
    BeforeValue();
    out_->Put(b ? std::string_view("true") : std::string_view("false"));
  }
  void Null() {
    BeforeValue();
    out_->Put("null");
  }

  void KeyString(std::string_view k, std::string_view s) {
    Key(k);
    String(s);
  }
  void KeyInt(std::string_view k, int64_t v) {
    Key(k);
    Int(v);
  }

 private:
  void Comma() {
    if (first_[depth_]) {
      first_[depth_] = false;
    } else {
      out_->Put(',');
    }
  }
  void BeforeValue() {
    if (after_key_) {
      after_key_ = false;
    } else if (depth_ > 0) {
      Comma();
    }
  }
  void Push() {
    ++depth_;
    assert(depth_ < static_cast<int>(sizeof first_));
    first_[depth_] = true;
  }

  LineBuffer* out_;
  int depth_ = 0;
  bool first_[16] = {};
  bool after_key_ = false;
};

// Time in 100 ns ticks since the Unix epoch; kNever prints as the service's "never" value.
constexpr int64_t kTicksPerSecond = 10'000'000;
constexpr int64_t kNever = -1;
constexpr int64_t kYearStart = int64_t{1704067200} * kTicksPerSecond;  // 2024-01-01T00:00:00Z
constexpr int64_t kYearTicks = int64_t{366} * 86400 * kTicksPerSecond;
constexpr int64_t kYearEnd = kYearStart + kYearTicks;
constexpr int64_t kMinute = 60 * kTicksPerSecond;
constexpr int64_t kHour = 60 * kMinute;
constexpr int64_t kDay = 24 * kHour;

// An ISO-8601 time "2024-07-17T06:12:26.8402249Z", formatted once and written many times.
struct Stamp {
  char text[28];
  uint8_t len;
  std::string_view view() const { return {text, len}; }
};

Stamp MakeStamp(int64_t ticks) {
  Stamp s;
  if (ticks < 0) {
    static constexpr char kNeverText[] = "0001-01-01T00:00:00Z";
    std::memcpy(s.text, kNeverText, sizeof kNeverText - 1);
    s.len = sizeof kNeverText - 1;
    return s;
  }
  int64_t secs = ticks / kTicksPerSecond;
  int64_t frac = ticks % kTicksPerSecond;
  int64_t days = secs / 86400;
  int64_t sod = secs % 86400;
  // civil_from_days (H. Hinnant).
  int64_t z = days + 719468;
  int64_t era = z / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t y = yoe + era * 400;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  int64_t d = doy - (153 * mp + 2) / 5 + 1;
  int64_t m = mp < 10 ? mp + 3 : mp - 9;
  if (m <= 2) ++y;
  auto put = [&s](int pos, int64_t v, int width) {
    for (int i = width - 1; i >= 0; --i) {
      s.text[pos + i] = static_cast<char>('0' + v % 10);
      v /= 10;
    }
  };
  put(0, y, 4);
  s.text[4] = '-';
  put(5, m, 2);
  s.text[7] = '-';
  put(8, d, 2);
  s.text[10] = 'T';
  put(11, sod / 3600, 2);
  s.text[13] = ':';
  put(14, sod / 60 % 60, 2);
  s.text[16] = ':';
  put(17, sod % 60, 2);
  s.text[19] = '.';
  put(20, frac, 7);
  s.text[27] = 'Z';
  s.len = 28;
  return s;
}

void AppendBase64(const unsigned char* data, size_t n, Text* out) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t{data[i]} << 16) | (uint32_t{data[i + 1]} << 8) | data[i + 2];
    out->Put(kAlphabet[v >> 18]);
    out->Put(kAlphabet[(v >> 12) & 63]);
    out->Put(kAlphabet[(v >> 6) & 63]);
    out->Put(kAlphabet[v & 63]);
  }
  if (i < n) {
    uint32_t v = uint32_t{data[i]} << 16;
    if (i + 1 < n) v |= uint32_t{data[i + 1]} << 8;
    out->Put(kAlphabet[v >> 18]);
    out->Put(kAlphabet[(v >> 12) & 63]);
    out->Put(i + 1 < n ? kAlphabet[(v >> 6) & 63] : '=');
    out->Put('=');
  }
}

// Twin etag: base64 of the 8-byte big-endian counter, e.g. "AAAAAAAAAAc=".
Text Etag(uint64_t counter) {
  unsigned char b[8];
  for (int i = 7; i >= 0; --i) {
    b[i] = static_cast<unsigned char>(counter & 0xff);
    counter >>= 8;
  }
  Text out;
  AppendBase64(b, 8, &out);
  return out;
}

// Identity etag: base64 of a 9-digit decimal number, e.g. "NTk0ODUyODgx".
Text DeviceEtag(Rng* rng) {
  char digits[16];
  auto r = std::to_chars(digits, digits + sizeof digits, 100000000 + rng->Below(900000000));
  Text out;
  AppendBase64(reinterpret_cast<const unsigned char*>(digits), r.ptr - digits, &out);
  return out;
}

Text Hex40(Rng* rng) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  Text out;
  uint64_t bits = 0;
  for (int i = 0; i < 40; ++i) {
    if (i % 16 == 0) bits = rng->Next();
    out.Put(kHex[bits & 15]);
    bits >>= 4;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Vocabularies. Lists used with Zipf tables are in popularity-rank order.

struct Region {
  const char* name;
  const char* code;
  int32_t lat;  // micro-degrees
  int32_t lon;
};
constexpr Region kRegions[] = {
    {"westus2", "mwh", 47233000, -119852000},  {"eastus", "bl", 37371900, -79816400},
    {"westeurope", "ams", 52366700, 4900000},  {"northeurope", "dub", 53347800, -6259700},
    {"centralus", "dsm", 41590800, -93620800}, {"eastus2", "bn", 36668100, -78388900},
    {"uksouth", "lon", 50941000, -799000},     {"japaneast", "tyo", 35680000, 139770000},
    {"westus", "sfo", 37783000, -122417000},   {"australiaeast", "syd", -33860000, 151209400},
};
constexpr int kRegionCount = sizeof kRegions / sizeof kRegions[0];
constexpr int kSitesPerRegion = 4;

constexpr const char* kFirmware[] = {"3.0.2", "3.1.0", "2.9.4", "3.0.1", "2.8.0", "2.7.3",
                                     "2.5.1", "2.4.1", "2.0.0", "1.9.8", "1.5.0", "1.0.3"};
constexpr const char* kDeviceTypes[] = {"thermostat", "sensor", "meter",          "camera",
                                        "lock",       "light",  "hvac-controller"};
constexpr const char* kOwners[] = {"team-hvac", "facilities", "ops-emea",   "ops-americas",
                                   "ops-apac",  "security",   "contoso-it", "lab"};
constexpr const char* kModelIds[] = {
    "dtmi:com:example:Thermostat;1", "dtmi:com:example:TemperatureController;2",
    "dtmi:contoso:EnvironmentalSensor;1", "dtmi:azure:DeviceManagement:DeviceInformation;1"};
struct Frequency {
  const char* text;
  int secs;
};
constexpr Frequency kFrequencies[] = {
    {"5m", 300}, {"1m", 60}, {"15m", 900}, {"30s", 30}, {"1h", 3600}};
constexpr const char* kRoles[] = {"sensor", "gateway", "actuator", "controller", "relay", "camera"};
constexpr const char* kLabels[] = {"calibrated", "battery", "outdoor",  "indoor",
                                   "retrofit",   "pilot",   "critical", "legacy"};
constexpr const char* kGroups[] = {"blue", "green", "red", "canary"};
constexpr const char* kDays[] = {"Sun", "Sat", "Mon", "Tue", "Wed", "Thu", "Fri"};
constexpr const char* kEdgeVersions[] = {"1.4.27", "1.4.20", "1.5.0", "1.2.10"};
// Custom modules, in byte order (module twins follow their device sorted by moduleId).
constexpr const char* kCustomModules[] = {"SimulatedTemperatureSensor", "azureblobstorage",
                                          "filtermodule", "opcpublisher", "scanner"};
constexpr int kCustomModuleCount = sizeof kCustomModules / sizeof kCustomModules[0];

// Picks from `items` with integer weights (the generator's fixed, non-skewed shares).
template <size_t N>
const char* Weighted(Rng* rng, const char* const (&items)[N], const uint32_t (&weights)[N]) {
  uint32_t total = 0;
  for (uint32_t w : weights) total += w;
  uint64_t r = rng->Below(total);
  for (size_t i = 0; i < N; ++i) {
    if (r < weights[i]) return items[i];
    r -= weights[i];
  }
  return items[N - 1];
}

// Digits of the zero-padded device number: 7, more for fleets past 10M devices.
int IdWidth(uint64_t devices) {
  int width = 7;
  for (uint64_t n = devices > 0 ? devices - 1 : 0; n >= 10'000'000; n /= 10) ++width;
  return width;
}

// "dev-0000042".
void AppendDeviceId(uint64_t i, int width, Text* out) {
  char digits[24];
  auto r = std::to_chars(digits, digits + sizeof digits, i);
  int len = static_cast<int>(r.ptr - digits);
  out->Put("dev-");
  for (int k = len; k < width; ++k) out->Put('0');
  out->Put(std::string_view(digits, len));
}

double Clamp(double v, double lo, double hi) {
  if (!(v >= lo)) return lo;  // also NaN
  return v > hi ? hi : v;
}

// ---------------------------------------------------------------------------------------------
// The generator.

struct Building {
  std::string name;
  int region;
  std::string site;
  int32_t lat;
  int32_t lon;
};

class Generator {
 public:
  explicit Generator(const FleetSpec& spec) : spec_(spec) {
    spec_.module_share = Clamp(spec.module_share, 0, 1);
    spec_.optional_tag_share = Clamp(spec.optional_tag_share, 0, 1);
    spec_.array_tag_share = Clamp(spec.array_tag_share, 0, 1);
    spec_.skew = Clamp(spec.skew, 0, 8);
    spec_.buildings = std::max<uint32_t>(spec.buildings, 1);
    edge_threshold_ = Threshold(spec_.module_share);
    optional_threshold_ = Threshold(spec_.optional_tag_share);
    array_threshold_ = Threshold(spec_.array_tag_share);
    id_width_ = IdWidth(spec_.devices);

    // Exact: skew <= 8, times a power of two, rounded by conversion of a non-negative value.
    uint64_t s_q16 = static_cast<uint64_t>(spec_.skew * 65536.0 + 0.5);
    Rng rng(Hash(spec_.seed, 0, kSaltSetup));
    regions_ = Table::Zipf(kRegionCount, s_q16);
    firmware_ = Table::Zipf(std::size(kFirmware), s_q16);
    device_types_ = Table::Zipf(std::size(kDeviceTypes), s_q16);
    owners_ = Table::Zipf(std::size(kOwners), s_q16);
    model_ids_ = Table::Zipf(std::size(kModelIds), s_q16);
    frequencies_ = Table::Zipf(std::size(kFrequencies), s_q16);
    edge_versions_ = Table::Zipf(std::size(kEdgeVersions), s_q16);
    building_ranks_ = Table::Zipf(spec_.buildings, s_q16);

    // Site centres, then buildings: a region (popular regions hold more buildings), a site in
    // it, a position near the site; popularity ranks are a seeded permutation of the names.
    int32_t site_lat[kRegionCount][kSitesPerRegion];
    int32_t site_lon[kRegionCount][kSitesPerRegion];
    for (int r = 0; r < kRegionCount; ++r) {
      for (int s = 0; s < kSitesPerRegion; ++s) {
        site_lat[r][s] = kRegions[r].lat + static_cast<int32_t>(rng.Range(-200000, 200000));
        site_lon[r][s] = kRegions[r].lon + static_cast<int32_t>(rng.Range(-200000, 200000));
      }
    }
    buildings_.resize(spec_.buildings);
    for (uint32_t b = 0; b < spec_.buildings; ++b) {
      Building& bd = buildings_[b];
      bd.name = std::to_string(b + 1);
      bd.region = static_cast<int>(regions_.Sample(&rng));
      int site = static_cast<int>(rng.Below(kSitesPerRegion));
      bd.site = std::string(kRegions[bd.region].code) + "-0" + static_cast<char>('1' + site);
      bd.lat = site_lat[bd.region][site] + static_cast<int32_t>(rng.Range(-5000, 5000));
      bd.lon = site_lon[bd.region][site] + static_cast<int32_t>(rng.Range(-5000, 5000));
    }
    rank_to_building_.resize(spec_.buildings);
    for (uint32_t b = 0; b < spec_.buildings; ++b) rank_to_building_[b] = b;
    for (uint32_t b = spec_.buildings; b > 1; --b) {  // Fisher-Yates with our own draws
      std::swap(rank_to_building_[b - 1], rank_to_building_[rng.Below(b)]);
    }
  }

  void Run(const std::function<void(std::string_view)>& sink) {
    LineBuffer line;
    for (uint64_t i = 0; i < spec_.devices; ++i) {
      line.Clear();
      Rng rng(Hash(spec_.seed, i, kSaltDevice));
      DeviceState dev;
      WriteDevice(i, &rng, &dev, &line);
      sink(line.view());
      if (!dev.edge) continue;
      WriteModule(i, "$edgeAgent", &rng, dev, &line);
      sink(line.view());
      WriteModule(i, "$edgeHub", &rng, dev, &line);
      sink(line.view());
      int custom = static_cast<int>(rng.Below(4));
      bool chosen[kCustomModuleCount] = {};
      for (int c = 0; c < custom; ++c) {
        int k = static_cast<int>(rng.Below(kCustomModuleCount));
        while (chosen[k]) k = (k + 1) % kCustomModuleCount;
        chosen[k] = true;
      }
      for (int k = 0; k < kCustomModuleCount; ++k) {
        if (!chosen[k]) continue;
        WriteModule(i, kCustomModules[k], &rng, dev, &line);
        sink(line.view());
      }
    }
  }

 private:
  // What module twins inherit from their device.
  struct DeviceState {
    bool edge = false;
    bool connected = false;
    int64_t last_activity = kNever;
  };

  Text DeviceId(uint64_t i) const {
    Text id;
    AppendDeviceId(i, id_width_, &id);
    return id;
  }

  bool IsEdge(uint64_t i) const { return (Hash(spec_.seed, i, kSaltEdge) >> 11) < edge_threshold_; }

  // "ms-azure-iot-edge://dev-0000042-638278574807366710" (the suffix looks like .NET ticks).
  Text Scope(uint64_t i) const {
    Text s;
    s.Put("ms-azure-iot-edge://");
    AppendDeviceId(i, id_width_, &s);
    s.Put('-');
    uint64_t ticks = 638000000000000000ULL + Hash(spec_.seed, i, kSaltScope) % 1000000000000000ULL;
    char digits[24];
    auto r = std::to_chars(digits, digits + sizeof digits, ticks);
    s.Put(std::string_view(digits, r.ptr - digits));
    return s;
  }

  static int64_t InYear(Rng* rng) {
    return kYearStart + static_cast<int64_t>(rng->Below(static_cast<uint64_t>(kYearTicks)));
  }

  void WriteDevice(uint64_t i, Rng* rng, DeviceState* dev, LineBuffer* out) {
    JsonWriter w(out);
    dev->edge = IsEdge(i);

    // Identity and connection.
    const bool disabled = rng->Permille(40);
    dev->connected = !disabled && rng->Permille(650);
    if (dev->connected) {
      dev->last_activity = kYearEnd - 1 - static_cast<int64_t>(rng->Below(2 * kDay));
    } else if (rng->Permille(15)) {
      dev->last_activity = kNever;
    } else {
      dev->last_activity =
          kYearStart +
          static_cast<int64_t>(rng->Below(static_cast<uint64_t>(kYearTicks - 2 * kDay)));
    }
    // ~15% of devices never had a desired property set (desired holds only $metadata).
    const bool desired_set = rng->Permille(850);
    const int desired_version = desired_set ? static_cast<int>(rng->Range(2, 8)) : 1;
    const int version = desired_version + static_cast<int>(rng->Range(1, 6));

    w.BeginObject();
    w.KeyString("deviceId", DeviceId(i).view());
    w.KeyString("etag", Etag(static_cast<uint64_t>(version)).view());
    w.KeyString("deviceEtag", DeviceEtag(rng).view());
    w.KeyString("status", disabled ? "disabled" : "enabled");
    if (disabled) {
      static constexpr const char* kReasons[] = {"decommissioned", "maintenance", "compromised",
                                                 "billing"};
      static constexpr uint32_t kWeights[] = {50, 30, 10, 10};
      w.KeyString("statusReason", Weighted(rng, kReasons, kWeights));
      w.KeyString("statusUpdateTime", MakeStamp(InYear(rng)).view());
    } else {
      if (rng->Permille(300)) w.KeyString("statusReason", "provisioned");
      w.KeyString("statusUpdateTime", MakeStamp(kNever).view());
    }
    w.KeyString("connectionState", dev->connected ? "Connected" : "Disconnected");
    w.KeyString("lastActivityTime", MakeStamp(dev->last_activity).view());
    w.KeyInt("cloudToDeviceMessageCount",
             rng->Permille(700) ? 0 : static_cast<int64_t>(rng->Range(1, 50)));
    static constexpr const char* kAuth[] = {"sas", "selfSigned", "certificateAuthority"};
    static constexpr uint32_t kAuthWeights[] = {80, 12, 8};
    const char* auth = Weighted(rng, kAuth, kAuthWeights);
    w.KeyString("authenticationType", auth);
    w.Key("x509Thumbprint");
    w.BeginObject();
    if (std::strcmp(auth, "selfSigned") == 0) {
      w.KeyString("primaryThumbprint", Hex40(rng).view());
      w.KeyString("secondaryThumbprint", Hex40(rng).view());
    } else {
      w.Key("primaryThumbprint");
      w.Null();
      w.Key("secondaryThumbprint");
      w.Null();
    }
    w.EndObject();
    w.KeyString("modelId", rng->Permille(800) ? "" : kModelIds[model_ids_.Sample(rng)]);
    w.KeyInt("version", version);

    // Tags.
    const Building& bd = buildings_[rank_to_building_[building_ranks_.Sample(rng)]];
    const Region& region = kRegions[bd.region];
    const int floor = static_cast<int>(rng->Range(0, 20));
    const char* device_type = dev->edge ? "gateway" : kDeviceTypes[device_types_.Sample(rng)];
    const char* target_fw = kFirmware[firmware_.Sample(rng)];
    w.Key("tags");
    w.BeginObject();
    w.KeyString("building", bd.name);
    w.KeyInt("floor", floor);
    if (rng->Permille(1)) {  // the case rule: "Floor" beside "floor", of another type
      char digits[4];
      auto r = std::to_chars(digits, digits + sizeof digits, floor);
      w.KeyString("Floor", std::string_view(digits, r.ptr - digits));
    }
    w.KeyString("region", region.name);
    w.Key("location");
    w.BeginObject();
    w.KeyString("region", region.name);
    w.KeyString("site", bd.site);
    w.Key("geo");
    w.BeginObject();
    w.Key("lat");
    w.Fixed(bd.lat, 6);
    w.Key("lon");
    w.Fixed(bd.lon, 6);
    w.EndObject();
    w.EndObject();
    static constexpr const char* kEnvironments[] = {"prod", "staging", "dev"};
    static constexpr uint32_t kEnvironmentWeights[] = {75, 15, 10};
    w.KeyString("environment", Weighted(rng, kEnvironments, kEnvironmentWeights));
    w.KeyString("deviceType", device_type);
    static constexpr const char* kChannels[] = {"stable", "beta", "canary"};
    static constexpr uint32_t kChannelWeights[] = {80, 15, 5};
    w.KeyString("firmwareChannel", Weighted(rng, kChannels, kChannelWeights));
    w.KeyString("targetFirmware", target_fw);
    if (rng->Chance(optional_threshold_)) {
      w.KeyString("owner", kOwners[owners_.Sample(rng)]);
      if (rng->Permille(500)) {
        w.Key("maintenanceWindow");
        w.BeginObject();
        w.KeyString("day", kDays[rng->Below(std::size(kDays))]);
        w.KeyInt("startHour", rng->Range(0, 23));
        w.KeyInt("durationHours", rng->Range(1, 6));
        w.EndObject();
      }
      if (rng->Permille(300)) w.KeyString("group", kGroups[rng->Below(std::size(kGroups))]);
    }
    if (rng->Chance(array_threshold_)) {
      WriteStringSet("roles", kRoles, std::size(kRoles), static_cast<int>(rng->Range(1, 3)), rng,
                     &w);
      if (rng->Permille(600)) {
        WriteStringSet("labels", kLabels, std::size(kLabels), static_cast<int>(rng->Range(1, 4)),
                       rng, &w);
      }
    }
    w.EndObject();

    // Desired: one patch set telemetryConfig at version desired_version.
    const Frequency& want = kFrequencies[frequencies_.Sample(rng)];
    const Stamp desired_time = MakeStamp(InYear(rng));
    w.Key("properties");
    w.BeginObject();
    w.Key("desired");
    w.BeginObject();
    if (desired_set) {
      WriteDesiredTelemetry(want, desired_time, desired_version, &w);
    } else {
      w.Key("$metadata");
      w.BeginObject();
      w.KeyString("$lastUpdated", desired_time.view());
      w.EndObject();
      w.KeyInt("$version", desired_version);
    }
    w.EndObject();

    if (dev->last_activity == kNever) {  // never connected: nothing reported yet
      w.Key("reported");
      w.BeginObject();
      w.Key("$metadata");
      w.BeginObject();
      w.KeyString("$lastUpdated", desired_time.view());
      w.EndObject();
      w.KeyInt("$version", 1);
      w.EndObject();
    } else {
      WriteReported(*dev, want, device_type, target_fw, rng, &w);
    }
    w.EndObject();  // properties

    // Capabilities and scopes: edge devices own a scope; some leaf devices are children of a
    // nearby edge device.
    WriteScopes(i, *dev, rng, &w);
    w.EndObject();
  }

  void WriteDesiredTelemetry(const Frequency& want, const Stamp& desired_time, int desired_version,
                             JsonWriter* wp) {
    JsonWriter& w = *wp;
    w.Key("telemetryConfig");
    w.BeginObject();
    w.KeyString("sendFrequency", want.text);
    w.EndObject();
    w.Key("$metadata");
    w.BeginObject();
    WriteLastUpdated(desired_time, desired_version, &w);
    w.Key("telemetryConfig");
    w.BeginObject();
    WriteLastUpdated(desired_time, desired_version, &w);
    w.Key("sendFrequency");
    w.BeginObject();
    WriteLastUpdated(desired_time, desired_version, &w);
    w.EndObject();
    w.EndObject();
    w.EndObject();
    w.KeyInt("$version", desired_version);
  }

  // Reported: battery and temperature on every report, the rest older. Battery only on
  // battery-powered devices (not edge, not wired), temperature only on device types with a sensor.
  void WriteReported(const DeviceState& dev, const Frequency& want, const char* device_type,
                     const char* target_fw, Rng* rng, JsonWriter* wp) {
    JsonWriter& w = *wp;
    const int64_t report_base = dev.last_activity;
    const int64_t t_root = report_base - static_cast<int64_t>(rng->Below(10 * kMinute));
    const int64_t t_fw = t_root - static_cast<int64_t>(rng->Below(60 * kDay));
    const int64_t t_config = t_root - static_cast<int64_t>(rng->Below(30 * kDay));
    const int64_t t_conn = t_root - static_cast<int64_t>(rng->Below(90 * kDay));
    const Stamp s_root = MakeStamp(t_root), s_fw = MakeStamp(t_fw), s_config = MakeStamp(t_config),
                s_conn = MakeStamp(t_conn);
    static constexpr const char* kConnectivity[] = {"wifi", "wired", "cellular"};
    static constexpr uint32_t kConnectivityWeights[] = {50, 30, 20};
    static constexpr const char* kEdgeConnectivity[] = {"wired", "cellular"};
    static constexpr uint32_t kEdgeConnectivityWeights[] = {70, 30};
    const char* connectivity = dev.edge ? Weighted(rng, kEdgeConnectivity, kEdgeConnectivityWeights)
                                        : Weighted(rng, kConnectivity, kConnectivityWeights);
    const bool battery = !dev.edge && std::strcmp(connectivity, "wired") != 0;
    const bool temperature = std::strcmp(device_type, "thermostat") == 0 ||
                             std::strcmp(device_type, "sensor") == 0 ||
                             std::strcmp(device_type, "hvac-controller") == 0;
    const bool outdoor = rng->Permille(50);
    const int64_t centi =
        outdoor ? rng->Range(-1500, 3800) : 1500 + rng->Range(0, 800) + rng->Range(0, 800);
    static constexpr const char* kConfigStatus[] = {"Success", "Pending", "Error"};
    static constexpr uint32_t kConfigStatusWeights[] = {85, 10, 5};
    const char* config_status = Weighted(rng, kConfigStatus, kConfigStatusWeights);
    int reported_secs = want.secs;
    if (std::strcmp(config_status, "Success") != 0) {
      reported_secs = kFrequencies[rng->Below(std::size(kFrequencies))].secs;
    }
    const char* fw = rng->Permille(850) ? target_fw : kFirmware[firmware_.Sample(rng)];

    w.Key("reported");
    w.BeginObject();
    if (battery) {
      w.KeyInt("batteryLevel", std::max(rng->Range(0, 100), rng->Range(0, 100)));
    }
    if (temperature) {
      w.Key("temperature");
      w.Fixed(centi, 2);
    }
    w.KeyString("firmwareVersion", fw);
    w.Key("telemetryConfig");
    w.BeginObject();
    w.KeyInt("sendFrequencyInSecs", reported_secs);
    w.KeyString("status", config_status);
    w.EndObject();
    w.KeyString("connectivity", connectivity);
    w.Key("$metadata");
    w.BeginObject();
    w.KeyString("$lastUpdated", s_root.view());
    if (battery) WriteLeafUpdated("batteryLevel", s_root, &w);
    if (temperature) WriteLeafUpdated("temperature", s_root, &w);
    WriteLeafUpdated("firmwareVersion", s_fw, &w);
    w.Key("telemetryConfig");
    w.BeginObject();
    w.KeyString("$lastUpdated", s_config.view());
    WriteLeafUpdated("sendFrequencyInSecs", s_config, &w);
    WriteLeafUpdated("status", s_config, &w);
    w.EndObject();
    WriteLeafUpdated("connectivity", s_conn, &w);
    w.EndObject();
    w.KeyInt("$version", rng->Range(2, 20000));
    w.EndObject();
  }

  void WriteScopes(uint64_t i, const DeviceState& dev, Rng* rng, JsonWriter* wp) {
    JsonWriter& w = *wp;
    w.Key("capabilities");
    w.BeginObject();
    w.Key("iotEdge");
    w.Bool(dev.edge);
    w.EndObject();
    Text scope;
    bool child = false;
    if (dev.edge) {
      scope = Scope(i);
    } else if (edge_threshold_ > 0 && rng->Permille(300)) {
      for (uint64_t j = i; j > 0 && i - j < 16; --j) {
        if (IsEdge(j - 1)) {
          scope = Scope(j - 1);
          child = true;
          break;
        }
      }
    }
    if (scope.size > 0) w.KeyString("deviceScope", scope.view());
    w.Key("parentScopes");
    w.BeginArray();
    if (child) w.String(scope.view());
    w.EndArray();
  }

  void WriteModule(uint64_t i, const char* module_id, Rng* rng, const DeviceState& dev,
                   LineBuffer* out) {
    out->Clear();
    JsonWriter w(out);
    const bool system = module_id[0] == '$';
    const bool connected = dev.connected && !rng->Permille(30);
    const int desired_version = static_cast<int>(rng->Range(1, 12));
    const int version = desired_version + static_cast<int>(rng->Range(1, 4));
    const int64_t last =
        dev.last_activity == kNever
            ? kNever
            : dev.last_activity - static_cast<int64_t>(rng->Below(connected ? kHour : 7 * kDay));

    w.BeginObject();
    w.KeyString("deviceId", DeviceId(i).view());
    w.KeyString("moduleId", module_id);
    w.KeyString("etag", Etag(static_cast<uint64_t>(version)).view());
    w.KeyString("deviceEtag", DeviceEtag(rng).view());
    w.KeyString("status", "enabled");
    w.KeyString("statusUpdateTime", MakeStamp(kNever).view());
    w.KeyString("connectionState", connected ? "Connected" : "Disconnected");
    w.KeyString("lastActivityTime", MakeStamp(last).view());
    w.KeyInt("cloudToDeviceMessageCount", 0);
    w.KeyString("authenticationType", "sas");
    w.Key("x509Thumbprint");
    w.BeginObject();
    w.Key("primaryThumbprint");
    w.Null();
    w.Key("secondaryThumbprint");
    w.Null();
    w.EndObject();
    w.KeyString("modelId", "");
    w.KeyInt("version", version);

    const Stamp desired_time = MakeStamp(InYear(rng));
    const int64_t report_base = last == kNever ? InYear(rng) : last;
    const Stamp reported_time = MakeStamp(report_base);
    const Stamp start_time = MakeStamp(report_base - static_cast<int64_t>(rng->Below(30 * kDay)));
    const int send_interval = kFrequencies[frequencies_.Sample(rng)].secs;
    w.Key("properties");
    w.BeginObject();
    w.Key("desired");
    w.BeginObject();
    const char* desired_key = system ? "schemaVersion" : "sendInterval";
    if (system) {
      w.KeyString(desired_key, "1.1");
    } else {
      w.KeyInt(desired_key, send_interval);
    }
    w.Key("$metadata");
    w.BeginObject();
    WriteLastUpdated(desired_time, desired_version, &w);
    w.Key(desired_key);
    w.BeginObject();
    WriteLastUpdated(desired_time, desired_version, &w);
    w.EndObject();
    w.EndObject();
    w.KeyInt("$version", desired_version);
    w.EndObject();

    static constexpr const char* kStatus[] = {"running", "backoff", "stopped", "failed",
                                              "unhealthy"};
    static constexpr uint32_t kStatusWeights[] = {85, 4, 4, 4, 3};
    const char* status = Weighted(rng, kStatus, kStatusWeights);
    if (std::strcmp(module_id, "scanner") == 0 && std::strcmp(status, "running") == 0 &&
        rng->Permille(500)) {
      status = "scanning";
    }
    if (!connected && std::strcmp(status, "running") == 0) status = "unknown";
    w.Key("reported");
    w.BeginObject();
    w.KeyString("status", status);
    w.KeyString("version", system ? kEdgeVersions[edge_versions_.Sample(rng)] : "1.0.0");
    w.KeyInt("restartCount", rng->Permille(800) ? 0 : rng->Range(1, 30));
    w.Key("$metadata");
    w.BeginObject();
    w.KeyString("$lastUpdated", reported_time.view());
    WriteLeafUpdated("status", reported_time, &w);
    WriteLeafUpdated("version", start_time, &w);
    WriteLeafUpdated("restartCount", start_time, &w);
    w.EndObject();
    w.KeyInt("$version", rng->Range(1, 5000));
    w.EndObject();
    w.EndObject();  // properties
    w.EndObject();
  }

  static void WriteLastUpdated(const Stamp& t, int version, JsonWriter* w) {
    w->KeyString("$lastUpdated", t.view());
    w->KeyInt("$lastUpdatedVersion", version);
  }
  static void WriteLeafUpdated(std::string_view key, const Stamp& t, JsonWriter* w) {
    w->Key(key);
    w->BeginObject();
    w->KeyString("$lastUpdated", t.view());
    w->EndObject();
  }
  // An array of `n` distinct strings from `pool`, in pool order.
  static void WriteStringSet(std::string_view key, const char* const* pool, size_t pool_size, int n,
                             Rng* rng, JsonWriter* w) {
    uint32_t chosen = 0;
    for (int c = 0; c < n; ++c) {
      size_t k = rng->Below(pool_size);
      while (chosen & (1u << k)) k = (k + 1) % pool_size;
      chosen |= 1u << k;
    }
    w->Key(key);
    w->BeginArray();
    for (size_t k = 0; k < pool_size; ++k) {
      if (chosen & (1u << k)) w->String(pool[k]);
    }
    w->EndArray();
  }

  FleetSpec spec_;
  uint64_t edge_threshold_ = 0;
  uint64_t optional_threshold_ = 0;
  uint64_t array_threshold_ = 0;
  int id_width_ = 7;
  Table regions_, firmware_, device_types_, owners_, model_ids_, frequencies_, edge_versions_,
      building_ranks_;
  std::vector<Building> buildings_;
  std::vector<uint32_t> rank_to_building_;
};

}  // namespace

std::string FleetDeviceId(const FleetSpec& spec, uint64_t index) {
  Text id;
  AppendDeviceId(index, IdWidth(spec.devices), &id);
  return std::string(id.view());
}

void GenerateFleet(const FleetSpec& spec, const std::function<void(std::string_view line)>& sink) {
  Generator(spec).Run(sink);
}

std::vector<Value> GenerateFleetValues(const FleetSpec& spec) {
  std::vector<Value> docs;
  GenerateFleet(spec, [&docs](std::string_view line) {
    Expected<Value> v = ParseJson(line, "fleet");
    assert(v.ok());  // the generator writes valid JSON (checked by the tests)
    if (v.ok()) docs.push_back(std::move(v).value());
  });
  return docs;
}

std::string GenerateFleetNdjson(const FleetSpec& spec) {
  std::string text;
  GenerateFleet(spec, [&text](std::string_view line) {
    text.append(line);
    text.push_back('\n');
  });
  return text;
}

}  // namespace twinq::index
