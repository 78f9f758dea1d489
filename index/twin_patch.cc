// Twin mutation semantics: see twin_patch.h for every rule.
#include "index/twin_patch.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <unordered_map>
#include <utility>
#include <vector>

namespace twinq::index {
namespace {

constexpr std::string_view kMetadata = "$metadata";
constexpr std::string_view kVersion = "$version";
constexpr std::string_view kLastUpdated = "$lastUpdated";
constexpr std::string_view kLastUpdatedVersion = "$lastUpdatedVersion";

Error ArgumentInvalid(std::string_view message) {
  return Error{fmt::format("ArgumentInvalid: {}", message)};
}

// ---------------------------------------------------------------------------------------------
// UTF-8 and characters

// Decodes the code point at s[i]; returns its length in bytes, or 0 when the bytes there are not
// well-formed UTF-8 (overlong forms, surrogates and values above U+10FFFF included).
size_t DecodeUtf8(std::string_view s, size_t i, uint32_t* cp) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char b0 = byte(i);
  if (b0 < 0x80) {
    *cp = b0;
    return 1;
  }
  size_t len;
  uint32_t min;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
    min = 0x80;
    *cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    min = 0x800;
    *cp = b0 & 0x0F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    min = 0x10000;
    *cp = b0 & 0x07;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    unsigned char b = byte(i + k);
    if ((b & 0xC0) != 0x80) return 0;
    *cp = (*cp << 6) | (b & 0x3F);
  }
  if (*cp < min || *cp > 0x10FFFF || (*cp >= 0xD800 && *cp <= 0xDFFF)) return 0;
  return len;
}

bool IsValidUtf8(std::string_view s) {
  uint32_t cp;
  for (size_t i = 0; i < s.size();) {
    size_t n = DecodeUtf8(s, i, &cp);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

// C0, DEL and C1: .NET's char.IsControl.
bool IsControl(uint32_t cp) { return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F); }

// 'c' for printable ASCII (space included), U+XXXX otherwise.
std::string CharName(uint32_t cp) {
  if (cp >= 0x20 && cp < 0x7F) return fmt::format("'{}'", static_cast<char>(cp));
  return fmt::format("U+{:04X}", cp);
}

// The B.2 Jobs rule: US-ASCII printable, no space and none of $ ( ) < > @ , ; : \ " / [ ] ? = { }.
bool IsJobChar(uint32_t cp) {
  if (cp <= 0x20 || cp >= 0x7F) return false;
  return std::string_view("$()<>@,;:\\\"/[]?={}").find(static_cast<char>(cp)) ==
         std::string_view::npos;
}

// The first character of a valid UTF-8 string that breaks the job rule, or nullopt.
std::optional<uint32_t> FirstNonJobChar(std::string_view s) {
  uint32_t cp;
  for (size_t i = 0; i < s.size();) {
    size_t n = DecodeUtf8(s, i, &cp);
    if (n == 0) return static_cast<unsigned char>(s[i]);  // not reached for validated text
    if (!IsJobChar(cp)) return cp;
    i += n;
  }
  return std::nullopt;
}

// A string as a quoted literal for messages: '"' and '\' escaped, control characters as \uXXXX,
// bytes that are not UTF-8 as \xNN; longer than 64 bytes is cut (at a character) with "...".
std::string Quote(std::string_view s) {
  constexpr size_t kMaxShown = 64;
  std::string out = "\"";
  uint32_t cp;
  for (size_t i = 0; i < s.size();) {
    if (i >= kMaxShown) {
      out += "...";
      break;
    }
    size_t n = DecodeUtf8(s, i, &cp);
    if (n == 0) {
      out += fmt::format("\\x{:02X}", static_cast<unsigned char>(s[i]));
      ++i;
      continue;
    }
    if (cp == '"' || cp == '\\') {
      out += '\\';
      out += static_cast<char>(cp);
    } else if (IsControl(cp)) {
      out += fmt::format("\\u{:04X}", cp);
    } else {
      out.append(s.substr(i, n));
    }
    i += n;
  }
  out += '"';
  return out;
}

// Bytes of `s` not belonging to control characters (C0 and DEL are one byte, C1 is C2 80..C2 9F).
size_t CountedBytes(std::string_view s) {
  size_t n = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char b = static_cast<unsigned char>(s[i]);
    if (b < 0x20 || b == 0x7F) continue;
    if (b == 0xC2 && i + 1 < s.size()) {
      unsigned char b1 = static_cast<unsigned char>(s[i + 1]);
      if (b1 >= 0x80 && b1 <= 0x9F) {
        ++i;
        continue;
      }
    }
    ++n;
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// Validation of patch content (A.9 and the job charset)

class ContentValidator {
 public:
  explicit ContentValidator(bool job_charset) : job_charset_(job_charset) {}

  // `section` is the object at the root of tags or properties.desired, named `name`.
  std::optional<Error> Section(const Object& section, std::string_view name) {
    path_ = std::string(name);
    return CheckObject(section, 0);
  }

 private:
  // An object reached through `level` keys from the section root.
  std::optional<Error> CheckObject(const Object& object, int level) {
    if (level > kMaxTwinDepth) {
      return ArgumentInvalid(fmt::format("{}: object nested {} levels deep; at most {} are allowed",
                                         path_, level, kMaxTwinDepth));
    }
    for (const auto& [key, value] : object) {
      if (auto error = CheckKey(key)) return error;
      size_t saved = path_.size();
      path_ += '.';
      path_ += key;
      if (auto error = CheckValue(value, level + 1)) return error;
      path_.resize(saved);
    }
    return std::nullopt;
  }

  std::optional<Error> CheckKey(std::string_view key) {
    auto fail = [&](std::string_view what) {
      return ArgumentInvalid(fmt::format("{}: key {} {}", path_, Quote(key), what));
    };
    if (key.empty()) return fail("must not be empty");
    if (!IsValidUtf8(key)) return fail("is not valid UTF-8");
    if (key.size() > kMaxTwinKeyBytes) {
      return fail(
          fmt::format("is {} bytes long; at most {} are allowed", key.size(), kMaxTwinKeyBytes));
    }
    uint32_t cp;
    for (size_t i = 0; i < key.size();) {
      size_t n = DecodeUtf8(key, i, &cp);
      if (IsControl(cp)) return fail("must not contain control character " + CharName(cp));
      if (cp == '.' || cp == '$' || cp == '#' || cp == ' ') {
        return fail("must not contain " + CharName(cp));
      }
      i += n;
    }
    if (job_charset_) {
      if (auto c = FirstNonJobChar(key)) {
        return fail(
            fmt::format("contains {}, which is not allowed in job property names", CharName(*c)));
      }
    }
    return std::nullopt;
  }

  // A value at a position reached through `level` keys (array indices do not count).
  std::optional<Error> CheckValue(const Value& value, int level) {
    switch (value.kind()) {
      case ValueKind::kObject:
        return CheckObject(value.as_object(), level);
      case ValueKind::kArray: {
        const Array& array = value.as_array();
        for (size_t i = 0; i < array.size(); ++i) {
          size_t saved = path_.size();
          path_ += fmt::format("[{}]", i);
          if (auto error = CheckValue(array[i], level)) return error;
          path_.resize(saved);
        }
        return std::nullopt;
      }
      case ValueKind::kString:
        return CheckString(value.as_string());
      case ValueKind::kNumber:
        return CheckNumber(value.as_number());
      case ValueKind::kNull:
      case ValueKind::kBool:
        return std::nullopt;
      case ValueKind::kUndefined:
        break;
    }
    return ArgumentInvalid(fmt::format("{}: value is undefined", path_));
  }

  std::optional<Error> CheckString(std::string_view s) {
    if (!IsValidUtf8(s)) {
      return ArgumentInvalid(fmt::format("{}: string value is not valid UTF-8", path_));
    }
    if (s.size() > kMaxTwinStringBytes) {
      return ArgumentInvalid(
          fmt::format("{}: string value is {} bytes long; at most {} are allowed", path_, s.size(),
                      kMaxTwinStringBytes));
    }
    if (job_charset_) {
      if (auto c = FirstNonJobChar(s)) {
        return ArgumentInvalid(
            fmt::format("{}: string value contains {}, which is not allowed in job property values",
                        path_, CharName(*c)));
      }
    }
    return std::nullopt;
  }

  std::optional<Error> CheckNumber(double d) {
    if (!std::isfinite(d)) return ArgumentInvalid(fmt::format("{}: number is not finite", path_));
    if (d == std::trunc(d) &&
        (d < static_cast<double>(kMinTwinInteger) || d > static_cast<double>(kMaxTwinInteger))) {
      return ArgumentInvalid(fmt::format("{}: integer {} is outside the allowed range {}..{}",
                                         path_, FormatNumber(d), kMinTwinInteger, kMaxTwinInteger));
    }
    return std::nullopt;
  }

  bool job_charset_;
  std::string path_;
};

// ---------------------------------------------------------------------------------------------
// Merge and replace

// Finds members by key in an Object that is being built. The Object's capacity must be reserved
// beforehand, so that the keys' storage never moves.
class KeyIndex {
 public:
  explicit KeyIndex(const Object* object) : object_(object) {
    if (object->size() > kLinearLimit) {
      for (size_t i = 0; i < object->size(); ++i) map_.emplace((*object)[i].first, i);
    }
  }
  std::optional<size_t> Find(std::string_view key) const {
    if (map_.empty() && object_->size() <= kLinearLimit) {
      for (size_t i = 0; i < object_->size(); ++i) {
        if ((*object_)[i].first == key) return i;
      }
      return std::nullopt;
    }
    auto it = map_.find(key);
    if (it == map_.end()) return std::nullopt;
    return it->second;
  }
  // Records the member just appended.
  void Added() {
    size_t i = object_->size() - 1;
    if (!map_.empty() || object_->size() > kLinearLimit) {
      if (map_.empty()) {
        for (size_t k = 0; k < i; ++k) map_.emplace((*object_)[k].first, k);
      }
      map_.emplace((*object_)[i].first, i);
    }
  }

 private:
  static constexpr size_t kLinearLimit = 16;
  const Object* object_;
  std::unordered_map<std::string_view, size_t> map_;
};

// RFC 7386 MergePatch(target, patch) for an object patch: the result is always an object.
Value MergeObject(const Value& target, const Object& patch) {
  Object out;
  if (target.is_object()) out = target.as_object();
  out.reserve(out.size() + patch.size());  // no reallocation below: KeyIndex holds key views
  std::vector<bool> erased(out.size(), false);
  KeyIndex index(&out);
  for (const auto& [key, value] : patch) {
    std::optional<size_t> at = index.Find(key);
    if (value.is_null()) {
      if (at) erased[*at] = true;
      continue;
    }
    Value merged = value;
    if (value.is_object()) merged = MergeObject(at ? out[*at].second : Value(), value.as_object());
    if (at) {
      out[*at].second = std::move(merged);
      erased[*at] = false;
    } else {
      out.emplace_back(key, std::move(merged));
      erased.push_back(false);
      index.Added();
    }
  }
  if (std::find(erased.begin(), erased.end(), true) != erased.end()) {
    Object kept;
    kept.reserve(out.size());
    for (size_t i = 0; i < out.size(); ++i) {
      if (!erased[i]) kept.push_back(std::move(out[i]));
    }
    out = std::move(kept);
  }
  return Value::MakeObject(std::move(out));
}

// `target` becomes `replacement` (null members count as absent), keeping the position of the keys
// that stay and appending new ones.
Value ReplaceObject(const Value& target, const Object& replacement) {
  if (!target.is_object()) return MergeObject(Value(), replacement);
  const Object& old = target.as_object();
  KeyIndex in_replacement(&replacement);
  KeyIndex in_old(&old);
  Object out;
  out.reserve(old.size() + replacement.size());
  for (const auto& [key, value] : old) {
    std::optional<size_t> at = in_replacement.Find(key);
    if (!at) continue;
    const Value& r = replacement[*at].second;
    if (r.is_null()) continue;
    out.emplace_back(key, r.is_object() ? ReplaceObject(value, r.as_object()) : r);
  }
  for (const auto& [key, value] : replacement) {
    if (value.is_null() || in_old.Find(key)) continue;
    out.emplace_back(key, value.is_object() ? MergeObject(Value(), value.as_object()) : value);
  }
  return Value::MakeObject(std::move(out));
}

// ---------------------------------------------------------------------------------------------
// Metadata

struct Stamp {
  Value updated;  // $lastUpdated
  Value version;  // $lastUpdatedVersion
};

bool IsStampKey(std::string_view key) { return key == kLastUpdated || key == kLastUpdatedVersion; }

// Metadata for a value written whole: S, plus an entry per member for objects.
Value FreshMetadata(const Value& value, const Stamp& stamp) {
  Object meta{{std::string(kLastUpdated), stamp.updated},
              {std::string(kLastUpdatedVersion), stamp.version}};
  if (value.is_object()) {
    meta.reserve(2 + value.as_object().size());
    for (const auto& [key, child] : value.as_object()) {
      meta.emplace_back(key, FreshMetadata(child, stamp));
    }
  }
  return Value::MakeObject(std::move(meta));
}

// Metadata for a position whose value went from `before` (possibly undefined) to `after` (defined,
// different), given its entry `old_meta` (possibly null).
Value UpdateMetadata(const Value& before, const Value& after, const Value* old_meta,
                     const Stamp& stamp) {
  if (!before.is_object() || !after.is_object()) return FreshMetadata(after, stamp);
  const Object& old_members = before.as_object();
  const Object& new_members = after.as_object();
  KeyIndex in_old(&old_members);
  KeyIndex in_new(&new_members);

  Object meta;
  if (old_meta != nullptr && old_meta->is_object()) meta = old_meta->as_object();
  meta.reserve(meta.size() + new_members.size() + 2);
  // The stamp: updated in place, or inserted at the front when missing.
  bool has_updated = false, has_version = false;
  for (auto& [key, value] : meta) {
    if (key == kLastUpdated) {
      value = stamp.updated;
      has_updated = true;
    } else if (key == kLastUpdatedVersion) {
      value = stamp.version;
      has_version = true;
    }
  }
  if (!has_version) {
    // Right after $lastUpdated when that exists, else at the front.
    auto at = meta.begin();
    while (at != meta.end() && at->first != kLastUpdated) ++at;
    at = at == meta.end() ? meta.begin() : at + 1;
    meta.emplace(at, std::string(kLastUpdatedVersion), stamp.version);
  }
  if (!has_updated) meta.emplace(meta.begin(), std::string(kLastUpdated), stamp.updated);

  // Existing entries: kept when the key did not change, removed when it was deleted, updated
  // when it changed; entries for keys in neither version (stale) are kept.
  Object out;
  out.reserve(meta.size() + new_members.size());
  for (auto& [key, entry] : meta) {
    if (IsStampKey(key)) {
      out.emplace_back(std::move(key), std::move(entry));
      continue;
    }
    std::optional<size_t> now_at = in_new.Find(key);
    std::optional<size_t> was_at = in_old.Find(key);
    if (!now_at) {
      if (!was_at) out.emplace_back(std::move(key), std::move(entry));  // stale: not ours
      continue;                                                         // deleted
    }
    const Value& now_value = new_members[*now_at].second;
    if (was_at && old_members[*was_at].second == now_value) {
      out.emplace_back(std::move(key), std::move(entry));
      continue;
    }
    Value updated =
        UpdateMetadata(was_at ? old_members[*was_at].second : Value(), now_value, &entry, stamp);
    out.emplace_back(std::move(key), std::move(updated));
  }
  // Changed keys without an entry get one, appended in document order.
  KeyIndex in_out(&out);
  for (const auto& [key, value] : new_members) {
    if (in_out.Find(key)) continue;
    std::optional<size_t> was_at = in_old.Find(key);
    if (was_at && old_members[*was_at].second == value) continue;  // untouched: not fabricated
    out.emplace_back(
        key, UpdateMetadata(was_at ? old_members[*was_at].second : Value(), value, nullptr, stamp));
    in_out.Added();
  }
  return Value::MakeObject(std::move(out));
}

// ---------------------------------------------------------------------------------------------
// Twin fields

Value EmptyObject() { return Value::MakeObject({}); }

// A counter field: its value when a non-negative integral number (below 2^53), else 0.
uint64_t ReadCounter(const Value* v) {
  if (v == nullptr || !v->is_number()) return 0;
  double d = v->as_number();
  if (!(d >= 0) || d != std::trunc(d) || d >= 9007199254740992.0) return 0;
  return static_cast<uint64_t>(d);
}

// Sets `key` in place, or appends it.
void SetMember(Object* object, std::string_view key, Value value) {
  for (auto& [k, v] : *object) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  object->emplace_back(std::string(key), std::move(value));
}

bool IsReservedDesiredKey(std::string_view key) { return key == kMetadata || key == kVersion; }

// properties.desired without its root "$metadata" and "$version".
Value DesiredContent(const Value& desired) {
  const Object& members = desired.as_object();
  Object out;
  out.reserve(members.size());
  for (const auto& member : members) {
    if (!IsReservedDesiredKey(member.first)) out.push_back(member);
  }
  return Value::MakeObject(std::move(out));
}

// Reassembles properties.desired from the old section (for positions and the reserved members),
// the new content, and the new $metadata / $version.
Value AssembleDesired(const Value& old_desired, const Value& new_content, Value metadata,
                      Value version) {
  const Object& old = old_desired.as_object();
  const Object& content = new_content.as_object();
  KeyIndex in_content(&content);
  KeyIndex in_old(&old);
  // Where new keys go: before the trailing run of reserved members.
  size_t insert_at = old.size();
  while (insert_at > 0 && IsReservedDesiredKey(old[insert_at - 1].first)) --insert_at;

  Object out;
  out.reserve(old.size() + content.size() + 2);
  bool has_metadata = false, has_version = false;
  auto append_new_keys = [&] {
    for (const auto& member : content) {
      if (!in_old.Find(member.first)) out.push_back(member);
    }
  };
  for (size_t i = 0; i < old.size(); ++i) {
    if (i == insert_at) append_new_keys();
    const std::string& key = old[i].first;
    if (key == kMetadata) {
      if (!has_metadata) out.emplace_back(key, metadata);
      has_metadata = true;
    } else if (key == kVersion) {
      if (!has_version) out.emplace_back(key, version);
      has_version = true;
    } else if (std::optional<size_t> at = in_content.Find(key)) {
      out.emplace_back(key, content[*at].second);
    }
  }
  if (insert_at == old.size()) append_new_keys();
  if (!has_metadata) out.emplace_back(std::string(kMetadata), std::move(metadata));
  if (!has_version) out.emplace_back(std::string(kVersion), std::move(version));
  return Value::MakeObject(std::move(out));
}

// ---------------------------------------------------------------------------------------------
// The shared mutation path

enum class Mode { kMerge, kReplace };

std::optional<Error> CheckIfMatch(const Value& twin, std::string_view if_match) {
  std::string_view expected = if_match;
  if (expected.size() >= 2 && expected.front() == '"' && expected.back() == '"') {
    expected = expected.substr(1, expected.size() - 2);
  }
  if (expected.empty() || expected == "*") return std::nullopt;
  const Value* etag = twin.Find("etag");
  if (etag == nullptr || !etag->is_string()) {
    return Error{fmt::format("PreconditionFailed: If-Match {} does not match: the twin has no etag",
                             Quote(expected))};
  }
  if (etag->as_string() == expected) return std::nullopt;
  return Error{fmt::format("PreconditionFailed: If-Match {} does not match the twin's etag {}",
                           Quote(expected), Quote(etag->as_string()))};
}

// The parts of a patch / replacement that this module acts on.
struct Body {
  const Value* tags = nullptr;     // an object, or null when not given
  const Value* desired = nullptr;  // an object, or null when not given
};

std::optional<Error> CheckIdentity(const Value& twin, const Value& given, std::string_view field) {
  if (!given.is_string()) {
    return ArgumentInvalid(
        fmt::format("{} must be a string, found {}", field, ValueKindName(given.kind())));
  }
  const Value* actual = twin.Find(field);
  if (actual == nullptr || !actual->is_string()) {
    return ArgumentInvalid(fmt::format("{} {} does not match the twin, which has no {}", field,
                                       Quote(given.as_string()), field));
  }
  if (actual->as_string() != given.as_string()) {
    return ArgumentInvalid(fmt::format("{} {} does not match the twin's {} {}", field,
                                       Quote(given.as_string()), field,
                                       Quote(actual->as_string())));
  }
  return std::nullopt;
}

std::optional<Error> ReadBody(const Value& twin, const Value& body, std::string_view noun,
                              Body* out) {
  if (!body.is_object()) {
    return ArgumentInvalid(
        fmt::format("the {} must be a JSON object, found {}", noun, ValueKindName(body.kind())));
  }
  auto must_be_object = [](const Value& v, std::string_view name) -> std::optional<Error> {
    if (v.is_object()) return std::nullopt;
    return ArgumentInvalid(
        fmt::format("{} must be a JSON object, found {}", name, ValueKindName(v.kind())));
  };
  for (const auto& [key, value] : body.as_object()) {
    if (key == "tags") {
      if (auto error = must_be_object(value, "tags")) return error;
      out->tags = &value;
    } else if (key == "properties") {
      if (auto error = must_be_object(value, "properties")) return error;
      for (const auto& [pkey, pvalue] : value.as_object()) {
        if (pkey == "desired") {
          if (auto error = must_be_object(pvalue, "properties.desired")) return error;
          out->desired = &pvalue;
        } else if (pkey == "reported") {
          if (!pvalue.is_object() || !pvalue.as_object().empty()) {
            return ArgumentInvalid(
                "properties.reported cannot be written by the service; it must be absent or {}");
          }
        } else {
          return ArgumentInvalid(
              fmt::format("unexpected key {} in properties; only \"desired\" and \"reported\" may "
                          "be given",
                          Quote(pkey)));
        }
      }
    } else if (key == "etag") {
      // Ignored: If-Match is an argument.
    } else if (key == "deviceId" || key == "moduleId") {
      if (auto error = CheckIdentity(twin, value, key)) return error;
    } else {
      return ArgumentInvalid(
          fmt::format("unexpected key {} in the {}; only \"tags\", \"properties\", \"etag\", "
                      "\"deviceId\" and \"moduleId\" may be given",
                      Quote(key), noun));
    }
  }
  return std::nullopt;
}

Expected<PatchResult> Mutate(const Value& twin, const Value& body, std::string_view if_match,
                             const PatchOptions& options, Mode mode) {
  if (!twin.is_object()) {
    return ArgumentInvalid(
        fmt::format("the twin must be a JSON object, found {}", ValueKindName(twin.kind())));
  }
  if (auto error = CheckIfMatch(twin, if_match)) return *error;
  Body given;
  if (auto error = ReadBody(twin, body, mode == Mode::kMerge ? "patch" : "replacement", &given)) {
    return *error;
  }
  Value empty = EmptyObject();
  if (mode == Mode::kReplace) {
    if (given.tags == nullptr) given.tags = &empty;
    if (given.desired == nullptr) given.desired = &empty;
  }
  // A twin job applies one patch to every target: the section this thread last found valid
  // (the same storage: Values are immutable, and the copy held here keeps the storage from being
  // freed and reused for other content) is not checked again.
  struct Checked {
    Value section;
    bool job_charset = false;
  };
  thread_local Checked last_valid[2];  // tags, properties.desired
  ContentValidator validator(options.validate_job_charset);
  for (int k = 0; k < 2; ++k) {
    const Value* section = k == 0 ? given.tags : given.desired;
    if (section == nullptr) continue;
    Checked& last = last_valid[k];
    if (last.section.is_object() && &last.section.as_object() == &section->as_object() &&
        last.job_charset == options.validate_job_charset) {
      continue;
    }
    if (auto error =
            validator.Section(section->as_object(), k == 0 ? "tags" : "properties.desired")) {
      return *error;
    }
    last.section = *section;
    last.job_charset = options.validate_job_charset;
  }

  // The twin's sections as they are (non-objects read as {}).
  const Value* tags_member = twin.Find("tags");
  Value old_tags = tags_member != nullptr && tags_member->is_object() ? *tags_member : empty;
  const Value* properties = twin.Find("properties");
  if (properties != nullptr && !properties->is_object()) properties = nullptr;
  const Value* desired_member = properties != nullptr ? properties->Find("desired") : nullptr;
  Value old_desired =
      desired_member != nullptr && desired_member->is_object() ? *desired_member : empty;
  Value old_content = DesiredContent(old_desired);

  auto apply = [mode](const Value& old, const Value& with) {
    return mode == Mode::kMerge ? MergeObject(old, with.as_object())
                                : ReplaceObject(old, with.as_object());
  };
  PatchResult result;
  Value new_tags = old_tags;
  if (given.tags != nullptr) {
    new_tags = apply(old_tags, *given.tags);
    result.tags_changed = !(new_tags == old_tags);
  }
  Value new_content = old_content;
  if (given.desired != nullptr) {
    new_content = apply(old_content, *given.desired);
    result.desired_changed = !(new_content == old_content);
  }
  result.changed = result.tags_changed || result.desired_changed;
  if (!result.changed) {
    result.twin = twin;
    return result;
  }

  if (result.tags_changed) {
    size_t size = TwinSectionSize(new_tags);
    if (size > kMaxTagsBytes) {
      return ArgumentInvalid(fmt::format(
          "tags would be {} bytes after this update; at most {} are allowed", size, kMaxTagsBytes));
    }
  }
  if (result.desired_changed) {
    size_t size = TwinSectionSize(new_content);
    if (size > kMaxDesiredBytes) {
      return ArgumentInvalid(fmt::format(
          "properties.desired would be {} bytes after this update; at most {} are allowed", size,
          kMaxDesiredBytes));
    }
  }

  Object out = twin.as_object();
  uint64_t version = ReadCounter(twin.Find("version")) + 1;
  uint64_t etag_counter = version;
  if (const Value* etag = twin.Find("etag"); etag != nullptr && etag->is_string()) {
    if (std::optional<uint64_t> old = EtagCounter(etag->as_string())) {
      if (*old != UINT64_MAX) etag_counter = std::max(etag_counter, *old + 1);
    }
  }
  SetMember(&out, "etag", Value::String(EtagForVersion(etag_counter)));
  SetMember(&out, "version", Value::Number(static_cast<double>(version)));
  if (result.tags_changed) SetMember(&out, "tags", new_tags);
  if (result.desired_changed) {
    uint64_t desired_version = ReadCounter(old_desired.Find(kVersion)) + 1;
    Stamp stamp{Value::String(options.now), Value::Number(static_cast<double>(desired_version))};
    Value metadata = UpdateMetadata(old_content, new_content, old_desired.Find(kMetadata), stamp);
    Value desired = AssembleDesired(old_desired, new_content, std::move(metadata),
                                    Value::Number(static_cast<double>(desired_version)));
    Object props;
    if (properties != nullptr) props = properties->as_object();
    SetMember(&props, "desired", std::move(desired));
    SetMember(&out, "properties", Value::MakeObject(std::move(props)));
  }
  result.twin = Value::MakeObject(std::move(out));
  return result;
}

constexpr char kBase64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

}  // namespace

Expected<PatchResult> ApplyTwinPatch(const Value& twin, const Value& patch,
                                     std::string_view if_match, const PatchOptions& options) {
  return Mutate(twin, patch, if_match, options, Mode::kMerge);
}

Expected<PatchResult> ReplaceTwin(const Value& twin, const Value& replacement,
                                  std::string_view if_match, const PatchOptions& options) {
  return Mutate(twin, replacement, if_match, options, Mode::kReplace);
}

std::string EtagForVersion(uint64_t version) {
  unsigned char bytes[9] = {};  // 8 bytes + one zero byte of padding input
  for (int i = 7; i >= 0; --i) {
    bytes[i] = static_cast<unsigned char>(version & 0xFF);
    version >>= 8;
  }
  std::string out;
  out.reserve(12);
  for (int g = 0; g < 9; g += 3) {
    uint32_t n = (uint32_t{bytes[g]} << 16) | (uint32_t{bytes[g + 1]} << 8) | bytes[g + 2];
    out += kBase64[(n >> 18) & 63];
    out += kBase64[(n >> 12) & 63];
    out += kBase64[(n >> 6) & 63];
    out += kBase64[n & 63];
  }
  out.back() = '=';  // the last group held 2 real bytes
  return out;
}

std::optional<uint64_t> EtagCounter(std::string_view etag) {
  if (etag.size() != 12 || etag.back() != '=') return std::nullopt;
  // 11 significant characters carry 66 bits: the counter, then 2 zero bits.
  uint64_t counter = 0;
  for (size_t i = 0; i < 11; ++i) {
    size_t digit = std::string_view(kBase64).find(etag[i]);
    if (digit == std::string_view::npos) return std::nullopt;
    if (i < 10) {
      counter = (counter << 6) | digit;
    } else {
      if ((digit & 3) != 0) return std::nullopt;  // non-canonical padding bits
      counter = (counter << 4) | (digit >> 2);
    }
  }
  return counter;
}

std::string FormatTimestamp(int64_t unix_ticks_100ns) {
  constexpr int64_t kTicksPerSecond = 10'000'000;
  constexpr int64_t kMinTicks = -62'135'596'800 * kTicksPerSecond;      // 0001-01-01
  constexpr int64_t kMaxTicks = 253'402'300'800 * kTicksPerSecond - 1;  // 9999-12-31, last tick
  int64_t ticks = std::clamp(unix_ticks_100ns, kMinTicks, kMaxTicks);
  int64_t seconds = FloorDiv(ticks, kTicksPerSecond);
  int64_t fraction = ticks - seconds * kTicksPerSecond;
  int64_t days = FloorDiv(seconds, 86400);
  int64_t second_of_day = seconds - days * 86400;
  // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
  int64_t z = days + 719468;
  int64_t era = FloorDiv(z, 146097);
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  int64_t day = doy - (153 * mp + 2) / 5 + 1;
  int64_t month = mp < 10 ? mp + 3 : mp - 9;
  int64_t year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:07}Z", year, month, day,
                     second_of_day / 3600, second_of_day / 60 % 60, second_of_day % 60, fraction);
}

size_t TwinSectionSize(const Value& section) {
  struct Sizer {
    static size_t Of(const Value& v, bool root) {
      switch (v.kind()) {
        case ValueKind::kUndefined:
          return 0;
        case ValueKind::kNull:
        case ValueKind::kBool:
          return 4;
        case ValueKind::kNumber:
          return 8;
        case ValueKind::kString:
          return CountedBytes(v.as_string());
        case ValueKind::kArray: {
          size_t n = 0;
          for (const Value& e : v.as_array()) n += Of(e, false);
          return n;
        }
        case ValueKind::kObject: {
          size_t n = 0;
          for (const auto& [key, child] : v.as_object()) {
            if (root && IsReservedDesiredKey(key)) continue;
            n += CountedBytes(key) + Of(child, false);
          }
          return n;
        }
      }
      return 0;
    }
  };
  return Sizer::Of(section, true);
}

}  // namespace twinq::index
