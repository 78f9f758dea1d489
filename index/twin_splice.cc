#include "index/twin_splice.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace twinq::index {

namespace {

// Byte classes, looked up in one table: the bytes after a number, true, false or null; the bytes
// a skipped object or array must look at (quotes and brackets).
constexpr uint8_t kEndsScalar = 1, kStructural = 2;
constexpr std::array<uint8_t, 256> kClass = [] {
  std::array<uint8_t, 256> t{};
  for (unsigned char c : {',', '}', ']', ' ', '\t', '\n', '\r', '\0'}) t[c] |= kEndsScalar;
  for (unsigned char c : {'"', '{', '}', '[', ']'}) t[c] |= kStructural;
  return t;
}();
inline bool Is(char c, uint8_t cls) { return (kClass[static_cast<unsigned char>(c)] & cls) != 0; }

class Scanner {
 public:
  explicit Scanner(std::string_view s, size_t at = 0) : s_(s), i_(at) {}

  size_t pos() const { return i_; }
  bool at_end() const { return i_ >= s_.size(); }

  void Space() {
    while (i_ < s_.size() &&
           (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) {
      ++i_;
    }
  }

  bool Eat(char c) {
    Space();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }

  // A string starting at the current byte (a '"'); `escaped` (unless null) tells whether it holds
  // a backslash.
  bool String(bool* escaped) {
    if (i_ >= s_.size() || s_[i_] != '"') return false;
    ++i_;
    if (escaped != nullptr) *escaped = false;
#if defined(__SSE2__)
    // The usual short string: its end in the next 16 or 32 bytes, with no backslash before it.
    const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\');
    for (size_t at = i_; at + 16 <= s_.size() && at < i_ + 32; at += 16) {
      __m128i chunk = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s_.data() + at));
      unsigned quotes = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(chunk, quote)));
      unsigned slashes = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(chunk, backslash)));
      if (slashes != 0) break;  // the general loop below
      if (quotes != 0) {
        i_ = at + static_cast<size_t>(__builtin_ctz(quotes)) + 1;
        return true;
      }
    }
#endif
    while (i_ < s_.size()) {
      const char* p = static_cast<const char*>(std::memchr(s_.data() + i_, '"', s_.size() - i_));
      if (p == nullptr) return false;
      size_t q = static_cast<size_t>(p - s_.data());
      // The quote ends the string unless an odd number of backslashes precede it.
      size_t k = q;
      while (k > i_ && s_[k - 1] == '\\') --k;
      if (escaped != nullptr && std::memchr(s_.data() + i_, '\\', q - i_) != nullptr) {
        *escaped = true;
      }
      i_ = q + 1;
      if ((q - k) % 2 == 0) return true;
    }
    return false;
  }

  // Any value; its span.
  bool Value(JsonSpan* span) {
    Space();
    if (i_ >= s_.size()) return false;
    span->begin = i_;
    char c = s_[i_];
    if (c == '"') {
      if (!String(nullptr)) return false;
    } else if (c == '{' || c == '[') {
      size_t depth = 0;
      while (i_ < s_.size()) {
        while (i_ < s_.size() && !Is(s_[i_], kStructural)) ++i_;
        if (i_ >= s_.size()) break;
        char d = s_[i_];
        if (d == '"') {
          if (!String(nullptr)) return false;
          continue;
        }
        ++i_;
        if (d == '{' || d == '[') {
          ++depth;
        } else if (d == '}' || d == ']') {
          if (--depth == 0) break;
        }
      }
      if (depth != 0) return false;
    } else {
      while (i_ < s_.size() && !Is(s_[i_], kEndsScalar)) ++i_;
      if (i_ == span->begin) return false;
    }
    span->end = i_;
    return true;
  }

  char Peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }

  // A member's key (as written, without its quotes); keys written with escapes are refused.
  bool Key(std::string_view* key) {
    Space();
    size_t begin = i_ + 1;
    bool escaped;
    if (!String(&escaped) || escaped) return false;
    *key = s_.substr(begin, i_ - 1 - begin);
    return true;
  }

  // The members of the object starting here, in order, appended to `*out` (positions in the
  // whole text). False when the text here is not an object or a key is written with escapes; the
  // position is then anywhere. Repeated keys are not looked for (DistinctKeys).
  bool Members(std::vector<JsonMember>* out) {
    if (!Eat('{')) return false;
    if (Eat('}')) return true;
    do {
      JsonMember m;
      Space();
      m.member.begin = i_;
      if (!Key(&m.key) || !Eat(':') || !Value(&m.value)) return false;
      m.member.end = m.value.end;
      out->push_back(m);
    } while (Eat(','));
    return Eat('}');
  }

  void Seek(size_t at) { i_ = at; }

 private:
  std::string_view s_;
  size_t i_ = 0;
};

// No key twice: pairwise for the usual handful of members, sorted beyond.
bool DistinctKeys(const std::vector<JsonMember>& members) {
  if (members.size() <= 32) {
    for (size_t i = 0; i < members.size(); ++i) {
      for (size_t j = i + 1; j < members.size(); ++j) {
        if (members[i].key == members[j].key) return false;
      }
    }
    return true;
  }
  std::vector<std::string_view> keys;
  keys.reserve(members.size());
  for (const JsonMember& m : members) keys.push_back(m.key);
  std::sort(keys.begin(), keys.end());
  return std::adjacent_find(keys.begin(), keys.end()) == keys.end();
}

// A section's value (its span), its members listed on the way when it is an object that
// ScanObjectMembers accepts; otherwise skipped as any value, and `*members` left empty.
bool SectionValue(Scanner* sc, JsonSpan* span, std::optional<std::vector<JsonMember>>* members) {
  sc->Space();
  span->begin = sc->pos();
  if (sc->Peek() == '{') {
    std::vector<JsonMember> list;
    list.reserve(16);
    if (sc->Members(&list)) {
      span->end = sc->pos();
      if (DistinctKeys(list)) *members = std::move(list);
      return true;
    }
    sc->Seek(span->begin);
  }
  return sc->Value(span);
}

// Records `span` in `*slot` unless the key was seen before (a repeated key fails the scan).
bool Take(JsonSpan* slot, const JsonSpan& span, bool* seen) {
  if (*seen) return false;
  *seen = true;
  *slot = span;
  return true;
}

}  // namespace

std::optional<TwinSections> ScanTwinSections(std::string_view json, bool tags, bool desired) {
  TwinSections out;
  bool seen[5] = {false, false, false, false, false};  // etag, version, tags, properties, desired
  // Everything asked for is known: the rest of the document need not be read.
  auto done = [&] { return seen[0] && seen[1] && (!tags || seen[2]) && (!desired || seen[4]); };
  Scanner sc(json);
  if (!sc.Eat('{')) return std::nullopt;
  if (!sc.Eat('}')) {
    do {
      std::string_view key;
      if (!sc.Key(&key) || !sc.Eat(':')) return std::nullopt;
      JsonSpan span;
      if (key == "properties") {
        if (seen[3]) return std::nullopt;
        seen[3] = true;
        sc.Space();
        if (desired && sc.Peek() == '{') {
          // The members of properties, read in place so that the scan can stop after desired.
          sc.Eat('{');
          if (!sc.Eat('}')) {
            do {
              std::string_view pkey;
              if (!sc.Key(&pkey) || !sc.Eat(':')) return std::nullopt;
              if (pkey == "desired") {
                if (seen[4] || !SectionValue(&sc, &span, &out.desired_members)) {
                  return std::nullopt;
                }
                Take(&out.desired, span, &seen[4]);
              } else if (!sc.Value(&span)) {
                return std::nullopt;
              }
              if (done()) return out;
            } while (sc.Eat(','));
            if (!sc.Eat('}')) return std::nullopt;
          }
          continue;
        }
        if (!sc.Value(&span)) return std::nullopt;
      } else if (key == "tags") {
        if (seen[2] || !(tags ? SectionValue(&sc, &span, &out.tag_members) : sc.Value(&span))) {
          return std::nullopt;
        }
        Take(&out.tags, span, &seen[2]);
      } else {
        if (!sc.Value(&span)) return std::nullopt;
        if (key == "etag") {
          if (!Take(&out.etag, span, &seen[0])) return std::nullopt;
        } else if (key == "version") {
          if (!Take(&out.version, span, &seen[1])) return std::nullopt;
        }
      }
      if (done()) return out;
    } while (sc.Eat(','));
    if (!sc.Eat('}')) return std::nullopt;
  }
  sc.Space();
  if (!sc.at_end()) return std::nullopt;
  return out;
}

std::optional<std::vector<JsonMember>> ScanObjectMembers(std::string_view json, JsonSpan object) {
  if (object.end > json.size() || object.begin > object.end) return std::nullopt;
  Scanner sc(json.substr(0, object.end), object.begin);
  std::vector<JsonMember> out;
  if (!sc.Members(&out)) return std::nullopt;
  sc.Space();
  if (!sc.at_end() || !DistinctKeys(out)) return std::nullopt;
  return out;
}

std::string SpliceJson(std::string_view text,
                       std::vector<std::pair<JsonSpan, std::string_view>> replacements,
                       std::string* storage) {
  std::sort(replacements.begin(), replacements.end(),
            [](const auto& a, const auto& b) { return a.first.begin < b.first.begin; });
  size_t size = text.size();
  for (const auto& [span, with] : replacements) size = size - (span.end - span.begin) + with.size();
  std::string out;
  if (storage != nullptr) {
    out = std::move(*storage);
    out.clear();
  }
  out.reserve(size);
  size_t at = 0;
  for (const auto& [span, with] : replacements) {
    out.append(text.substr(at, span.begin - at));
    out.append(with);
    at = span.end;
  }
  out.append(text.substr(at));
  return out;
}

}  // namespace twinq::index
