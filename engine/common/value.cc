#include "engine/common/value.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iterator>

namespace twinq {

std::string_view ValueKindName(ValueKind k) {
  switch (k) {
    case ValueKind::kUndefined:
      return "undefined";
    case ValueKind::kNull:
      return "null";
    case ValueKind::kBool:
      return "bool";
    case ValueKind::kNumber:
      return "number";
    case ValueKind::kString:
      return "string";
    case ValueKind::kArray:
      return "array";
    case ValueKind::kObject:
      return "object";
  }
  return "?";
}

const Value* Value::Find(std::string_view key) const {
  if (!is_object()) return nullptr;
  for (const Member& m : as_object()) {
    if (m.first == key) return &m.second;
  }
  return nullptr;
}

const Value* Value::FindFolded(std::string_view key, std::string_view* spelling) const {
  if (!is_object()) return nullptr;
  const Member* best = nullptr;
  for (const Member& m : as_object()) {
    if (m.first == key) {
      best = &m;
      break;
    }
    if (EqualsIgnoreCase(m.first, key) && (best == nullptr || m.first < best->first)) best = &m;
  }
  if (best == nullptr) return nullptr;
  if (spelling != nullptr) *spelling = best->first;
  return &best->second;
}

bool operator==(const Value& a, const Value& b) {
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case ValueKind::kUndefined:
    case ValueKind::kNull:
      return true;
    case ValueKind::kBool:
      return a.as_bool() == b.as_bool();
    case ValueKind::kNumber:
      return a.as_number() == b.as_number();
    case ValueKind::kString:
      return a.as_string() == b.as_string();
    case ValueKind::kArray:
      return a.as_array() == b.as_array();
    case ValueKind::kObject:
      return a.as_object() == b.as_object();
  }
  return false;
}

std::string FormatNumber(double d) {
  std::string out;
  AppendNumber(d, &out);
  return out;
}

void AppendNumber(double d, std::string* out) {
  if (std::isnan(d) || std::isinf(d)) {
    out->append("null");  // JSON has no NaN or infinity
  } else if (d == 0) {
    out->push_back('0');  // also -0
  } else if (std::fabs(d) < 9007199254740992.0 && d == std::trunc(d)) {
    char digits[24];
    auto r = std::to_chars(digits, digits + sizeof digits, static_cast<int64_t>(d));
    out->append(digits, r.ptr);
  } else {
    fmt::format_to(std::back_inserter(*out), "{}", d);
  }
}

PrintedVerdict DecimalSpelledAsPrinted(std::string_view s) {
  auto digit = [&](size_t i) { return i < s.size() && s[i] >= '0' && s[i] <= '9'; };
  size_t i = s.starts_with('-') ? 1 : 0;
  const size_t int_begin = i;
  while (digit(i)) ++i;
  const size_t int_digits = i - int_begin;
  if (int_digits == 0 || i == s.size() || s[i] != '.') return PrintedVerdict::kUnsure;
  if (int_digits > 1 && s[int_begin] == '0') return PrintedVerdict::kUnsure;  // (not JSON)
  const size_t frac_begin = ++i;
  while (digit(i)) ++i;
  // An exponent, whitespace after the number, or no fraction digit: not judged.
  if (i != s.size() || i == frac_begin) return PrintedVerdict::kUnsure;
  // AppendNumber prints an integral value without a '.', and a fraction in fixed notation as
  // its shortest round-trip digits, whose last is never 0 (exponent notation has an 'e').
  if (s.back() == '0') return PrintedVerdict::kNo;
  size_t significant = 0;
  if (s[int_begin] != '0') {
    significant = int_digits + (s.size() - frac_begin);
  } else {
    size_t first = frac_begin;
    while (s[first] == '0') ++first;  // (stops: the last digit is not 0)
    // fmt prints a value below 1e-4 in exponent notation ("1e-05").
    if (first - frac_begin > 3) return PrintedVerdict::kUnsure;
    significant = s.size() - first;
  }
  // A decimal of at most 15 (DBL_DIG) significant digits is the only one of so few digits that
  // reads as its double, so it is that double's shortest round-trip spelling.
  return significant <= 15 ? PrintedVerdict::kYes : PrintedVerdict::kUnsure;
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

namespace {

// Whether any of the 8 bytes of `w` needs an escape in a JSON string: a control character, '"'
// or '\\'.
bool AnySpecial(uint64_t w) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL, kHigh = 0x8080808080808080ULL;
  const uint64_t quote = w ^ (kOnes * '"'), backslash = w ^ (kOnes * '\\');
  const uint64_t special =
      ((w - kOnes * 0x20) & ~w) | ((quote - kOnes) & ~quote) | ((backslash - kOnes) & ~backslash);
  return (special & kHigh) != 0;
}

// Whether a byte of `s` needs an escape; whole words at a time, the last one overlapping.
bool NeedsEscape(std::string_view s) {
  const char* p = s.data();
  const size_t n = s.size();
  uint64_t w;
  if (n >= 8) {
    for (size_t i = 0; i + 8 <= n; i += 8) {
      std::memcpy(&w, p + i, 8);
      if (AnySpecial(w)) return true;
    }
    std::memcpy(&w, p + n - 8, 8);
    return AnySpecial(w);
  }
  if (n >= 4) {
    uint32_t lo, hi;
    std::memcpy(&lo, p, 4);
    std::memcpy(&hi, p + n - 4, 4);
    return AnySpecial(uint64_t{hi} << 32 | lo);
  }
  for (size_t i = 0; i < n; ++i) {
    const unsigned char c = static_cast<unsigned char>(p[i]);
    if (c < 0x20 || c == '"' || c == '\\') return true;
  }
  return false;
}

}  // namespace

bool JsonStringNeedsEscape(std::string_view s) { return NeedsEscape(s); }

bool SpelledUnescaped(std::string_view s, const char* raw) {
  // One pass of whole words over both: equal, and no byte that needs an escape.
  const char* p = s.data();
  const size_t n = s.size();
  uint64_t a, b;
  if (n >= 8) {
    for (size_t i = 0; i + 8 <= n; i += 8) {
      std::memcpy(&a, p + i, 8);
      std::memcpy(&b, raw + i, 8);
      if (a != b || AnySpecial(a)) return false;
    }
    std::memcpy(&a, p + n - 8, 8);
    std::memcpy(&b, raw + n - 8, 8);
    return a == b && !AnySpecial(a);
  }
  if (n >= 4) {
    uint32_t lo, hi, raw_lo, raw_hi;
    std::memcpy(&lo, p, 4);
    std::memcpy(&hi, p + n - 4, 4);
    std::memcpy(&raw_lo, raw, 4);
    std::memcpy(&raw_hi, raw + n - 4, 4);
    return lo == raw_lo && hi == raw_hi && !AnySpecial(uint64_t{hi} << 32 | lo);
  }
  for (size_t i = 0; i < n; ++i) {
    const unsigned char c = static_cast<unsigned char>(p[i]);
    if (p[i] != raw[i] || c < 0x20 || c == '"' || c == '\\') return false;
  }
  return true;
}

void AppendJsonString(std::string_view s, std::string* out) {
  if (!NeedsEscape(s)) {  // most strings: the quotes and the bytes
    const size_t at = out->size();
    out->resize(at + s.size() + 2);
    char* p = out->data() + at;
    p[0] = '"';
    if (!s.empty()) std::memcpy(p + 1, s.data(), s.size());
    p[s.size() + 1] = '"';
    return;
  }
  out->push_back('"');
  // Runs of characters that need no escape are appended whole.
  size_t run = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    // Eight bytes at a time while none needs an escape (a control character, '"' or '\\').
    while (i + 8 <= s.size()) {
      uint64_t w;
      std::memcpy(&w, s.data() + i, 8);
      constexpr uint64_t kOnes = 0x0101010101010101ULL, kHigh = 0x8080808080808080ULL;
      uint64_t quote = w ^ (kOnes * '"'), backslash = w ^ (kOnes * '\\');
      uint64_t special = ((w - kOnes * 0x20) & ~w) | ((quote - kOnes) & ~quote) |
                         ((backslash - kOnes) & ~backslash);
      if ((special & kHigh) != 0) break;
      i += 8;
    }
    if (i >= s.size()) break;
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out->append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      case '\b':
        out->append("\\b");
        break;
      case '\f':
        out->append("\\f");
        break;
      default:
        out->append(fmt::format("\\u{:04x}", c));
    }
  }
  out->append(s.data() + run, s.size() - run);
  out->push_back('"');
}

namespace {

void AppendJsonImpl(const Value& v, std::string* out, bool in_array) {
  switch (v.kind()) {
    case ValueKind::kUndefined:
      out->append(in_array ? "null" : "undefined");
      return;
    case ValueKind::kNull:
      out->append("null");
      return;
    case ValueKind::kBool:
      out->append(v.as_bool() ? "true" : "false");
      return;
    case ValueKind::kNumber:
      AppendNumber(v.as_number(), out);
      return;
    case ValueKind::kString:
      AppendJsonString(v.as_string(), out);
      return;
    case ValueKind::kArray: {
      out->push_back('[');
      bool first = true;
      for (const Value& e : v.as_array()) {
        if (!first) out->push_back(',');
        first = false;
        AppendJsonImpl(e, out, true);
      }
      out->push_back(']');
      return;
    }
    case ValueKind::kObject: {
      out->push_back('{');
      bool first = true;
      for (const Member& m : v.as_object()) {
        if (m.second.is_undefined()) continue;
        if (!first) out->push_back(',');
        first = false;
        AppendJsonString(m.first, out);
        out->push_back(':');
        AppendJsonImpl(m.second, out, false);
      }
      out->push_back('}');
      return;
    }
  }
}

}  // namespace

void AppendJson(const Value& v, std::string* out) { AppendJsonImpl(v, out, false); }

void AppendCanonicalJson(const Value& v, std::string* out) {
  if (v.is_array()) {
    out->push_back('[');
    bool first = true;
    for (const Value& e : v.as_array()) {
      if (!first) out->push_back(',');
      first = false;
      AppendCanonicalJson(e, out);
    }
    out->push_back(']');
  } else if (v.is_object()) {
    std::vector<const Member*> members;
    for (const Member& m : v.as_object()) members.push_back(&m);
    std::sort(members.begin(), members.end(),
              [](const Member* a, const Member* b) { return a->first < b->first; });
    out->push_back('{');
    bool first = true;
    for (const Member* m : members) {
      if (m->second.is_undefined()) continue;
      if (!first) out->push_back(',');
      first = false;
      AppendJsonString(m->first, out);
      out->push_back(':');
      AppendCanonicalJson(m->second, out);
    }
    out->push_back('}');
  } else {
    AppendJson(v, out);
  }
}

std::string ToJson(const Value& v) {
  std::string out;
  AppendJson(v, &out);
  return out;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    unsigned char x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
    if (x >= 'A' && x <= 'Z') x = static_cast<unsigned char>(x + 32);
    if (y >= 'A' && y <= 'Z') y = static_cast<unsigned char>(y + 32);
    if (x != y) return false;
  }
  return true;
}

std::string ToLowerAscii(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  }
  return out;
}

}  // namespace twinq
