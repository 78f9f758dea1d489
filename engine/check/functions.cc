#include "engine/check/functions.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <string>

#include "engine/check/semantics.h"

namespace twinq::check {

const char* StaticTypeName(StaticType t) {
  switch (t) {
    case StaticType::kAny:
      return "any";
    case StaticType::kBool:
      return "bool";
    case StaticType::kNumber:
      return "number";
    case StaticType::kString:
      return "string";
    case StaticType::kArray:
      return "array";
    case StaticType::kObject:
      return "object";
    case StaticType::kNull:
      return "null";
    case StaticType::kUndefined:
      return "undefined";
  }
  return "?";
}

namespace {

constexpr size_t kVariadic = SIZE_MAX;
using T = StaticType;
using F = FunctionId;

const std::vector<FunctionInfo> kFunctions = {
    {F::kIsDefined, "IS_DEFINED", "IS_DEFINED(x)", 1, 1, T::kBool, true, false,
     "true when x exists (a null value counts as defined)"},
    {F::kIsNull, "IS_NULL", "IS_NULL(x)", 1, 1, T::kBool, false, false, "true when x is null"},
    {F::kIsBool, "IS_BOOL", "IS_BOOL(x)", 1, 1, T::kBool, false, false, "true when x is a boolean"},
    {F::kIsNumber, "IS_NUMBER", "IS_NUMBER(x)", 1, 1, T::kBool, false, false,
     "true when x is a number"},
    {F::kIsString, "IS_STRING", "IS_STRING(x)", 1, 1, T::kBool, false, false,
     "true when x is a string"},
    {F::kIsObject, "IS_OBJECT", "IS_OBJECT(x)", 1, 1, T::kBool, false, false,
     "true when x is an object"},
    {F::kIsArray, "IS_ARRAY", "IS_ARRAY(x)", 1, 1, T::kBool, false, false,
     "true when x is an array"},
    {F::kIsPrimitive, "IS_PRIMITIVE", "IS_PRIMITIVE(x)", 1, 1, T::kBool, false, false,
     "true when x is a string, number, boolean or null"},
    {F::kStartsWith, "STARTSWITH", "STARTSWITH(s, prefix)", 2, 2, T::kBool, true, false,
     "true when string s starts with string prefix (case-sensitive)"},
    {F::kEndsWith, "ENDSWITH", "ENDSWITH(s, suffix)", 2, 2, T::kBool, true, false,
     "true when string s ends with string suffix (case-sensitive)"},
    {F::kContains, "CONTAINS", "CONTAINS(s, fragment)", 2, 2, T::kBool, false, false,
     "true when string s contains string fragment (case-sensitive)"},
    {F::kLower, "LOWER", "LOWER(s)", 1, 1, T::kString, false, false,
     "s with ASCII letters in lower case"},
    {F::kUpper, "UPPER", "UPPER(s)", 1, 1, T::kString, false, false,
     "s with ASCII letters in upper case"},
    {F::kLength, "LENGTH", "LENGTH(s)", 1, 1, T::kNumber, false, false,
     "number of characters (code points) of s"},
    {F::kConcat, "CONCAT", "CONCAT(s1, s2, ...)", 2, kVariadic, T::kString, false, false,
     "the strings joined"},
    {F::kSubstring, "SUBSTRING", "SUBSTRING(s, start[, length])", 2, 3, T::kString, false, false,
     "characters of s from zero-based start, up to length of them"},
    {F::kIndexOf, "INDEX_OF", "INDEX_OF(s, fragment)", 2, 2, T::kNumber, false, false,
     "zero-based character position of the first fragment in s, or -1"},
    {F::kAsNumber, "AS_NUMBER", "AS_NUMBER(x)", 1, 1, T::kNumber, false, false,
     "x if a number; a string holding a JSON number converted; else undefined"},
    {F::kAbs, "ABS", "ABS(n)", 1, 1, T::kNumber, false, false, "absolute value"},
    {F::kCeiling, "CEILING", "CEILING(n)", 1, 1, T::kNumber, false, false,
     "smallest integer not less than n"},
    {F::kFloor, "FLOOR", "FLOOR(n)", 1, 1, T::kNumber, false, false,
     "largest integer not greater than n"},
    {F::kSign, "SIGN", "SIGN(n)", 1, 1, T::kNumber, false, false, "-1, 0 or 1"},
    {F::kSqrt, "SQRT", "SQRT(n)", 1, 1, T::kNumber, false, false,
     "square root; undefined for negative n"},
    {F::kSquare, "SQUARE", "SQUARE(n)", 1, 1, T::kNumber, false, false, "n * n"},
    {F::kPower, "POWER", "POWER(n, e)", 2, 2, T::kNumber, false, false, "n raised to e"},
    {F::kExp, "EXP", "EXP(n)", 1, 1, T::kNumber, false, false, "e raised to n"},
    {F::kArrayContains, "ARRAY_CONTAINS", "ARRAY_CONTAINS(array, value)", 2, 2, T::kBool, false,
     false, "true when an element of array equals value (JSON equality)"},
    {F::kArrayLength, "ARRAY_LENGTH", "ARRAY_LENGTH(array)", 1, 1, T::kNumber, false, false,
     "number of elements of array"},
    {F::kCount, "COUNT", "COUNT()", 0, 0, T::kNumber, true, true, "number of rows (per group)"},
    {F::kAvg, "AVG", "AVG(path)", 1, 1, T::kNumber, true, true, "mean of the numeric values"},
    {F::kSum, "SUM", "SUM(path)", 1, 1, T::kNumber, true, true, "sum of the numeric values"},
    {F::kMin, "MIN", "MIN(path)", 1, 1, T::kNumber, true, true, "least numeric value"},
    {F::kMax, "MAX", "MAX(path)", 1, 1, T::kNumber, true, true, "greatest numeric value"},
};

// UTF-8 helpers: code point counts and offsets. Query strings and JSON strings are valid UTF-8.
size_t CodePointCount(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// Byte offset of code point `cp` (or s.size() when past the end).
size_t ByteOffsetOf(std::string_view s, size_t cp) {
  size_t seen = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) {
      if (seen == cp) return i;
      ++seen;
    }
  }
  return s.size();
}

Value Num(double d) {
  if (!std::isfinite(d)) return Value();
  return Value::Number(d);
}

// A JSON number, exactly (no surrounding spaces, no hex, no leading '+').
Value ParseJsonNumber(std::string_view s) {
  size_t i = 0;
  if (i < s.size() && s[i] == '-') ++i;
  if (i >= s.size()) return Value();
  if (s[i] == '0') {
    ++i;
  } else if (s[i] >= '1' && s[i] <= '9') {
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
  } else {
    return Value();
  }
  if (i < s.size() && s[i] == '.') {
    ++i;
    size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    if (i == start) return Value();
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    if (i == start) return Value();
  }
  if (i != s.size()) return Value();
  double d = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
  if (ec != std::errc() || p != s.data() + s.size()) return Value();
  return Num(d);
}

// A number argument as a non-negative integer count for SUBSTRING (truncated toward zero,
// clamped at zero).
bool IntegerArg(const Value& v, double* out) {
  if (!v.is_number()) return false;
  *out = std::trunc(v.as_number());
  return true;
}

}  // namespace

const std::vector<FunctionInfo>& AllFunctions() { return kFunctions; }

const FunctionInfo* FindFunction(std::string_view name) {
  for (const FunctionInfo& f : kFunctions) {
    if (EqualsIgnoreCase(f.name, name)) return &f;
  }
  return nullptr;
}

Value CallFunction(FunctionId id, std::span<const Value> a) {
  switch (id) {
    case F::kIsDefined:
      return Value::Bool(!a[0].is_undefined());
    case F::kIsNull:
      return Value::Bool(a[0].is_null());
    case F::kIsBool:
      return Value::Bool(a[0].is_bool());
    case F::kIsNumber:
      return Value::Bool(a[0].is_number());
    case F::kIsString:
      return Value::Bool(a[0].is_string());
    case F::kIsObject:
      return Value::Bool(a[0].is_object());
    case F::kIsArray:
      return Value::Bool(a[0].is_array());
    case F::kIsPrimitive:
      return Value::Bool(a[0].is_primitive());
    case F::kStartsWith:
    case F::kEndsWith:
    case F::kContains: {
      if (!a[0].is_string() || !a[1].is_string()) return Value();
      std::string_view s = a[0].as_string(), p = a[1].as_string();
      if (id == F::kStartsWith) return Value::Bool(s.starts_with(p));
      if (id == F::kEndsWith) return Value::Bool(s.ends_with(p));
      return Value::Bool(s.find(p) != std::string_view::npos);
    }
    case F::kLower:
    case F::kUpper: {
      if (!a[0].is_string()) return Value();
      std::string s = a[0].as_string();
      for (char& c : s) {
        if (id == F::kLower && c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
        if (id == F::kUpper && c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
      }
      return Value::String(std::move(s));
    }
    case F::kLength:
      if (!a[0].is_string()) return Value();
      return Value::Number(static_cast<double>(CodePointCount(a[0].as_string())));
    case F::kConcat: {
      std::string out;
      for (const Value& v : a) {
        if (!v.is_string()) return Value();
        out += v.as_string();
      }
      return Value::String(std::move(out));
    }
    case F::kSubstring: {
      double start = 0, length = 0;
      if (!a[0].is_string() || !IntegerArg(a[1], &start)) return Value();
      const std::string& s = a[0].as_string();
      double total = static_cast<double>(CodePointCount(s));
      if (start < 0) start = 0;
      double end = total;
      if (a.size() == 3) {
        if (!IntegerArg(a[2], &length)) return Value();
        if (length < 0) length = 0;
        end = std::min(total, start + length);
      }
      if (start >= end) return Value::String("");
      size_t b = ByteOffsetOf(s, static_cast<size_t>(start));
      size_t e = ByteOffsetOf(s, static_cast<size_t>(end));
      return Value::String(s.substr(b, e - b));
    }
    case F::kIndexOf: {
      if (!a[0].is_string() || !a[1].is_string()) return Value();
      std::string_view s = a[0].as_string();
      size_t pos = s.find(a[1].as_string());
      if (pos == std::string_view::npos) return Value::Number(-1);
      return Value::Number(static_cast<double>(CodePointCount(s.substr(0, pos))));
    }
    case F::kAsNumber:
      if (a[0].is_number()) return a[0];
      if (a[0].is_string()) return ParseJsonNumber(a[0].as_string());
      return Value();
    case F::kAbs:
      if (!a[0].is_number()) return Value();
      return Num(std::fabs(a[0].as_number()));
    case F::kCeiling:
      if (!a[0].is_number()) return Value();
      return Num(std::ceil(a[0].as_number()) + 0.0);
    case F::kFloor:
      if (!a[0].is_number()) return Value();
      return Num(std::floor(a[0].as_number()) + 0.0);
    case F::kSign: {
      if (!a[0].is_number()) return Value();
      double d = a[0].as_number();
      return Value::Number(d > 0 ? 1 : d < 0 ? -1 : 0);
    }
    case F::kSqrt:
      if (!a[0].is_number() || a[0].as_number() < 0) return Value();
      return Num(std::sqrt(a[0].as_number()));
    case F::kSquare:
      if (!a[0].is_number()) return Value();
      return Num(a[0].as_number() * a[0].as_number());
    case F::kPower:
      if (!a[0].is_number() || !a[1].is_number()) return Value();
      return Num(std::pow(a[0].as_number(), a[1].as_number()));
    case F::kExp:
      if (!a[0].is_number()) return Value();
      return Num(std::exp(a[0].as_number()));
    case F::kArrayContains: {
      if (!a[0].is_array() || a[1].is_undefined()) return Value();
      for (const Value& e : a[0].as_array()) {
        if (sem::SameJson(e, a[1])) return Value::Bool(true);
      }
      return Value::Bool(false);
    }
    case F::kArrayLength:
      if (!a[0].is_array()) return Value();
      return Value::Number(static_cast<double>(a[0].as_array().size()));
    case F::kCount:
    case F::kAvg:
    case F::kSum:
    case F::kMin:
    case F::kMax:
      return Value();  // aggregates are computed by the query executor, never called per row
  }
  return Value();
}

}  // namespace twinq::check
