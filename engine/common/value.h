// The JSON value model of twinq (DESIGN.md, semantics decision 1): undefined, null, bool, number
// (IEEE double), string (UTF-8), array, object (keys in document order). Arrays and objects are
// immutable once built and shared between copies.
#ifndef TWINQ_ENGINE_COMMON_VALUE_H_
#define TWINQ_ENGINE_COMMON_VALUE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace twinq {

enum class ValueKind : uint8_t { kUndefined, kNull, kBool, kNumber, kString, kArray, kObject };

std::string_view ValueKindName(ValueKind k);  // "undefined", "null", "bool", ...

class Value;
using Array = std::vector<Value>;
using Member = std::pair<std::string, Value>;
using Object = std::vector<Member>;  // document order; keys unique per JSON document

class Value {
 public:
  Value() = default;  // undefined
  static Value Undefined() { return Value(); }
  static Value Null() { return Value(Rep(std::in_place_index<1>, nullptr)); }
  static Value Bool(bool b) { return Value(Rep(std::in_place_index<2>, b)); }
  static Value Number(double d) { return Value(Rep(std::in_place_index<3>, d)); }
  static Value String(std::string s) {
    Value v;  // the string is moved once, into place
    v.rep_.emplace<4>(std::move(s));
    return v;
  }
  static Value MakeArray(Array a) {
    return Value(Rep(std::in_place_index<5>, std::make_shared<const Array>(std::move(a))));
  }
  static Value MakeObject(Object o) {
    return Value(Rep(std::in_place_index<6>, std::make_shared<const Object>(std::move(o))));
  }

  ValueKind kind() const { return static_cast<ValueKind>(rep_.index()); }
  bool is_undefined() const { return kind() == ValueKind::kUndefined; }
  bool is_null() const { return kind() == ValueKind::kNull; }
  bool is_bool() const { return kind() == ValueKind::kBool; }
  bool is_number() const { return kind() == ValueKind::kNumber; }
  bool is_string() const { return kind() == ValueKind::kString; }
  bool is_array() const { return kind() == ValueKind::kArray; }
  bool is_object() const { return kind() == ValueKind::kObject; }
  // null, bool, number or string.
  bool is_primitive() const {
    ValueKind k = kind();
    return k == ValueKind::kNull || k == ValueKind::kBool || k == ValueKind::kNumber ||
           k == ValueKind::kString;
  }

  bool as_bool() const { return std::get<2>(rep_); }
  double as_number() const { return std::get<3>(rep_); }
  const std::string& as_string() const { return std::get<4>(rep_); }
  const Array& as_array() const { return *std::get<5>(rep_); }
  const Object& as_object() const { return *std::get<6>(rep_); }

  // Member lookup by exact key; nullptr when absent or not an object.
  const Value* Find(std::string_view key) const;
  // Member lookup with DESIGN.md decision 2: the exact spelling wins; otherwise the
  // case-insensitive (ASCII) matches are tried in byte order of their spelling, first present wins.
  // Returns nullptr when no key matches. `*spelling` (optional) receives the stored key.
  const Value* FindFolded(std::string_view key, std::string_view* spelling = nullptr) const;

  // Structural equality (same kind, same contents; object members compared in order). Used by
  // tests and de-duplication, not by query comparison semantics.
  friend bool operator==(const Value& a, const Value& b);

 private:
  using Rep = std::variant<std::monostate, std::nullptr_t, bool, double, std::string,
                           std::shared_ptr<const Array>, std::shared_ptr<const Object>>;
  explicit Value(Rep rep) : rep_(std::move(rep)) {}
  Rep rep_;
};

// Compact JSON text (no spaces). Undefined prints as `undefined` at top level and is omitted
// from objects and written as null in arrays, as JSON.stringify does. Numbers use the shortest
// representation that reads back to the same double; integral values print without a fraction.
std::string ToJson(const Value& v);
void AppendJson(const Value& v, std::string* out);
// Canonical JSON: like AppendJson, with object members sorted by key, so that values equal as
// JSON values (regardless of member order) have the same text. Used for GROUP BY keys.
void AppendCanonicalJson(const Value& v, std::string* out);
// Appends `s` as a JSON string literal (quotes and escapes).
void AppendJsonString(std::string_view s, std::string* out);
// Whether AppendJsonString escapes any byte of `s` (a control character, '"' or '\\').
bool JsonStringNeedsEscape(std::string_view s);
// Whether the s.size() bytes at `raw` are those of `s`, and none of them needs an escape (so
// that AppendJsonString(s) appends them between quotes, as they are).
bool SpelledUnescaped(std::string_view s, const char* raw);
// Appends code point `cp` (at most U+10FFFF) as UTF-8.
void AppendUtf8(uint32_t cp, std::string* out);
// Shortest round-trip text of a number; integers in the exact range print as integers.
std::string FormatNumber(double d);
// FormatNumber(d) appended to *out.
void AppendNumber(double d, std::string* out);
// Whether AppendNumber prints the double that the JSON number literal `literal` reads as
// (correctly rounded) with exactly the literal's bytes, judged from the spelling alone:
// kYes, kNo, or kUnsure (print it and compare). A plain decimal with a fraction is judged:
// one ending in '0' is never printed so, and one of at most 15 significant digits (so the
// shortest round-trip digits are its own) not below 0.0001 (printed in fixed notation) is.
enum class PrintedVerdict { kNo, kYes, kUnsure };
PrintedVerdict DecimalSpelledAsPrinted(std::string_view literal);

// ASCII case-insensitive comparison helpers (paths and keywords are case-insensitive).
bool EqualsIgnoreCase(std::string_view a, std::string_view b);
std::string ToLowerAscii(std::string_view s);

}  // namespace twinq

#endif  // TWINQ_ENGINE_COMMON_VALUE_H_
