#include "index/twin_splice.h"

#include <algorithm>
#include <cstring>

namespace twinq::index {

namespace {

// The bytes after a number, true, false or null.
constexpr bool EndsScalar(char c) {
  return c == ',' || c == '}' || c == ']' || c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
         c == '\0';
}

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

  // A string starting at the current byte (a '"'); `escaped` tells whether it holds a backslash.
  bool String(bool* escaped) {
    if (i_ >= s_.size() || s_[i_] != '"') return false;
    ++i_;
    *escaped = false;
    while (i_ < s_.size()) {
      const char* p = static_cast<const char*>(std::memchr(s_.data() + i_, '"', s_.size() - i_));
      if (p == nullptr) return false;
      size_t q = static_cast<size_t>(p - s_.data());
      // The quote ends the string unless an odd number of backslashes precede it.
      size_t k = q;
      while (k > i_ && s_[k - 1] == '\\') --k;
      if (std::memchr(s_.data() + i_, '\\', q - i_) != nullptr) *escaped = true;
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
    bool escaped;
    if (c == '"') {
      if (!String(&escaped)) return false;
    } else if (c == '{' || c == '[') {
      size_t depth = 0;
      while (i_ < s_.size()) {
        char d = s_[i_];
        if (d == '"') {
          if (!String(&escaped)) return false;
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
      while (i_ < s_.size() && !EndsScalar(s_[i_])) ++i_;
      if (i_ == span->begin) return false;
    }
    span->end = i_;
    return true;
  }

  // The members of the object starting here; `member(key, span)` sees each (the key as written,
  // without quotes) and returns false to fail the scan. Keys with escapes fail it.
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

 private:
  std::string_view s_;
  size_t i_ = 0;
};

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
              if (!sc.Key(&pkey) || !sc.Eat(':') || !sc.Value(&span)) return std::nullopt;
              if (pkey == "desired" && !Take(&out.desired, span, &seen[4])) return std::nullopt;
              if (done()) return out;
            } while (sc.Eat(','));
            if (!sc.Eat('}')) return std::nullopt;
          }
          continue;
        }
        if (!sc.Value(&span)) return std::nullopt;
      } else {
        if (!sc.Value(&span)) return std::nullopt;
        if (key == "etag") {
          if (!Take(&out.etag, span, &seen[0])) return std::nullopt;
        } else if (key == "version") {
          if (!Take(&out.version, span, &seen[1])) return std::nullopt;
        } else if (key == "tags") {
          if (!Take(&out.tags, span, &seen[2])) return std::nullopt;
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
  std::string_view text = object.in(json);
  Scanner sc(text);
  std::vector<JsonMember> out;
  if (!sc.Eat('{')) return std::nullopt;
  if (!sc.Eat('}')) {
    do {
      JsonMember m;
      sc.Space();
      m.member.begin = object.begin + sc.pos();
      if (!sc.Key(&m.key) || !sc.Eat(':') || !sc.Value(&m.value)) return std::nullopt;
      m.value.begin += object.begin;
      m.value.end += object.begin;
      m.member.end = m.value.end;
      out.push_back(m);
    } while (sc.Eat(','));
    if (!sc.Eat('}')) return std::nullopt;
  }
  sc.Space();
  if (!sc.at_end()) return std::nullopt;
  // No key twice: pairwise for the usual handful of members, sorted beyond.
  if (out.size() <= 32) {
    for (size_t i = 0; i < out.size(); ++i) {
      for (size_t j = i + 1; j < out.size(); ++j) {
        if (out[i].key == out[j].key) return std::nullopt;
      }
    }
  } else {
    std::vector<std::string_view> keys;
    keys.reserve(out.size());
    for (const JsonMember& m : out) keys.push_back(m.key);
    std::sort(keys.begin(), keys.end());
    if (std::adjacent_find(keys.begin(), keys.end()) != keys.end()) return std::nullopt;
  }
  return out;
}

std::string SpliceJson(std::string_view text,
                       std::vector<std::pair<JsonSpan, std::string_view>> replacements) {
  std::sort(replacements.begin(), replacements.end(),
            [](const auto& a, const auto& b) { return a.first.begin < b.first.begin; });
  size_t size = text.size();
  for (const auto& [span, with] : replacements) size = size - (span.end - span.begin) + with.size();
  std::string out;
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
