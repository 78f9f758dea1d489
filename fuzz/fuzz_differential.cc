// fuzz_differential: the VM must compute what the reference engine computes.
//
// The input bytes choose (a) a small fleet of device and module twins and (b) a job condition or
// a SELECT query, both drawn from a small vocabulary designed to collide: keys that differ only
// by case (tags.a / tags.A), nested and array paths, every JSON type as a value, constants of
// every type, IN lists of mixed types. The fleet is read from the front of the input and the
// text from the back (as FuzzedDataProvider does), so a mutation in one rarely shifts the
// other; exhausted input reads as zero bytes, and choice 0 is always a leaf.
//
// Every input is run under these configurations, which must agree exactly (target ids, or the
// query's rows as compact JSON lines):
//   ref         reference evaluator, bound IR folded
//   ref-nofold  reference evaluator, no constant folding
//   vm          VM over the columnar index, optimised (operand order, short-circuit jumps)
//   vm-noopt    VM without the optimisations
//   vm-nofold   VM (optimised) compiled from the unfolded bound IR
// and Program::Verify() must accept every compiled program. Queries are also read in pages
// (RunQuery + continuation) on ref and vm; the pages must add up to the whole result. Binding
// must succeed or fail the same with and without folding.
//
// On a mismatch the fleet (NDJSON), the text, every configuration's output and the EXPLAIN of
// the programs go to stderr, then abort(). TWINQ_FUZZ_PRINT=1 prints every case and its ref
// result (to turn a finding into a .test record); rejections (text that does not compile: the
// generator aims to avoid them) are counted and printed with it. TWINQ_FUZZ_PRINT=2 adds the
// EXPLAIN of every program.
//
// Guards (RE2-style): at most 30 devices (63 in a "wide" fleet, see kMinWideDevices) and 8
// modules, objects of at most 4 members, arrays of at most 3 elements, JSON nesting at most 3
// below tags/properties, expressions at most 5 levels deep and 48 nodes, IN lists of at most 4
// elements; inputs over 4096 bytes are ignored. Every input runs in about a millisecond.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "engine/common/json_reader.h"
#include "engine/common/value.h"
#include "engine/ref/query.h"
#include "engine/vm/compiler.h"
#include "engine/vm/program.h"
#include "engine/vm/query.h"
#include "index/fleet.h"
#include "tools/frontend.h"

namespace {

using twinq::Value;

constexpr size_t kMaxInput = 4096;
constexpr size_t kMaxDevices = 30;
// A "wide" fleet: 32-63 devices whose top-level `n` and `s` hold mostly distinct values, so that
// those columns get no postings (index/column.cc builds them only when distinct * 4 <= rows +
// 64) and the VM's dense scans run instead of postings lookups.
constexpr size_t kMinWideDevices = 32;
constexpr size_t kMaxWideDevices = 63;
constexpr size_t kMaxModules = 8;
constexpr int kMaxJsonDepth = 3;
constexpr int kMaxExprDepth = 5;
constexpr int kMaxExprNodes = 48;
constexpr size_t kMaxList = 4;

// ---- the byte consumer ------------------------------------------------------------------------

// Hands out bytes from the front (the fleet) or the back (the text) of the input; 0 once the
// two ends meet.
class Bytes {
 public:
  Bytes(const uint8_t* data, size_t size) : data_(data), front_(0), back_(size) {}

  uint8_t Front() { return front_ < back_ ? data_[front_++] : 0; }
  uint8_t Back() { return front_ < back_ ? data_[--back_] : 0; }

 private:
  const uint8_t* data_;
  size_t front_, back_;
};

// A source of choices over one end of the input.
class Chooser {
 public:
  Chooser(Bytes* bytes, bool front) : bytes_(bytes), front_(front) {}
  uint8_t Byte() { return front_ ? bytes_->Front() : bytes_->Back(); }
  // A number in [0, n), n <= 256.
  size_t Below(size_t n) { return n <= 1 ? 0 : Byte() % n; }
  // True with probability about k/16 (false when the input is exhausted).
  bool Sometimes(int k) { return (Byte() & 15) >= 16 - k; }
  template <class T, size_t N>
  const T& Pick(const T (&options)[N]) {
    return options[Below(N)];
  }

 private:
  Bytes* bytes_;
  bool front_;
};

// ---- the vocabulary ---------------------------------------------------------------------------

// Member names: case variants of each other, so that decision 2 (exact spelling, then byte
// order) is exercised at every level.
const char* const kKeys[] = {"a", "A", "b", "B", "c", "C", "x", "X", "list", "List", "é"};
// String values (and id spellings): empty, prefixes of each other, case variants, non-ASCII,
// strings that look like other JSON types.
const char* const kStrings[] = {"",  "a", "ab",   "abc",  "B",  "b",  "A",  "é",
                                "😀", "3", "true", "null", "ba", "d1", "D1", "a%"};
// Number literals as written in JSON (-0.0 is a negative zero; 2^53 is the largest exact one).
const char* const kJsonNumbers[] = {"0",  "-0.0", "1",      "1.5", "-3",     "1e300",
                                    "3",  "2",    "0.5",    "1.0", "-1e300", "9007199254740992",
                                    "10", "-1.5", "1.7e308"};
const char* const kDeviceIds[] = {"a", "ab", "abc", "B", "b", "A", "é", "😀", "3", "d1", "D1", "$x"};
const char* const kModuleIds[] = {"m1", "M1", "$edgeAgent", "a", "m2"};

// Paths of conditions and queries: case variants, nested, indexed, prefixed, escaped, missing.
// clang-format off
const char* const kPaths[] = {
    "tags.a", "tags.A", "tags.b", "tags.B", "tags.b.c", "tags.B.c", "tags.b.C", "tags.list",
    "tags.list[0]", "tags.list[1]", "tags.list[2]", "tags.List[0]", "tags.a.x", "tags.x", "tags.é",
    "tags.list[0].a", "tags.b.list[1]", "tags", "tags.c", "tags.missing", "tags.[[a]]",
    "devices.tags.a", "TAGS.A", "tags.b.c.x", "properties.reported.x", "properties.reported.X",
    "properties.reported.a", "properties.reported.list[0]", "properties.desired.x",
    "properties.reported", "deviceId", "DeviceId", "devices.deviceId", "status", "x", "moduleId",
    "Tags.a", "STATUS", "n", "s", "N", "n", "s", "tags.list[0][0]", "tags.a[0]", "tags.b[0].c",
};
// clang-format on
const char* const kModulePaths[] = {"devices.modules.tags.a", "devices.modules.moduleId",
                                    "moduleId", "ModuleId"};
// Constants as written in the query.
// clang-format off
const char* const kConstants[] = {
    "''", "'a'", "'ab'", "'abc'", "'B'", "'b'", "'A'", "'é'", "'😀'", "'3'", "'true'", "'d1'", "0",
    "-0", "1", "1.5", "-3", "1e300", "3", "2", "0.5", "0x10", "-1e300", "10", "true", "false",
    "null", "undefined", "[]", "[1]", "['a', 1]", "[[1]]", "['a', 'b']",
};
// clang-format on
const char* const kStringConstants[] = {"''",  "'a'", "'ab'", "'B'",  "'b'", "'é'",
                                        "'😀'", "'3'", "'d'",  "'D1'", "'c'", "'bc'"};
// clang-format off
const char* const kListElements[] = {
    "''", "'a'", "'ab'", "'B'", "'b'", "'A'", "'é'", "'3'", "'d1'", "'D1'", "0", "-0", "1", "1.5",
    "-3", "3", "2", "1e300", "true", "false", "null", "undefined", "[1]", "['a']", "[]",
};
// clang-format on
const char* const kCompareOps[] = {"=", "!=", "<>", "<", "<=", ">", ">="};
const char* const kArithOps[] = {"+", "-", "*", "/", "%"};
const char* const kKindTests[] = {"IS_DEFINED", "IS_NULL",   "IS_BOOL",  "IS_NUMBER",
                                  "IS_STRING",  "IS_OBJECT", "IS_ARRAY", "IS_PRIMITIVE"};
const char* const kStringTests[] = {"STARTSWITH", "ENDSWITH", "CONTAINS"};
const char* const kUnaryFunctions[] = {"LOWER",   "UPPER",        "LENGTH", "ABS",  "AS_NUMBER",
                                       "CEILING", "FLOOR",        "SIGN",   "SQRT", "SQUARE",
                                       "EXP",     "ARRAY_LENGTH", "lower",  "Abs"};
const char* const kAggregates[] = {"AVG", "SUM", "MIN", "MAX"};

// ---- the fleet --------------------------------------------------------------------------------

class FleetGen {
 public:
  explicit FleetGen(Chooser* c) : c_(*c) {}

  std::string Generate() {
    std::string out;
    wide_ = c_.Sometimes(4);
    size_t devices = wide_ ? kMinWideDevices + c_.Below(kMaxWideDevices - kMinWideDevices + 1)
                           : 1 + c_.Below(kMaxDevices);
    for (size_t i = 0; i < devices; ++i) {
      std::string id = c_.Pick(kDeviceIds);
      if (Used(id)) id = "z" + std::to_string(i);  // unique, and not in kDeviceIds
      ids_.push_back(id);
      Document(id, "", &out);
    }
    size_t modules = c_.Below(kMaxModules + 1);
    if (!c_.Sometimes(6)) modules = 0;
    std::vector<std::string> pairs;
    for (size_t i = 0; i < modules; ++i) {
      // Mostly modules of existing devices; sometimes of a device without a twin.
      std::string device = c_.Sometimes(2) ? "zz" : ids_[c_.Below(ids_.size())];
      std::string module = c_.Pick(kModuleIds);
      std::string key = device + "/" + module;
      bool seen = false;
      for (const std::string& p : pairs) seen |= p == key;
      if (seen) continue;
      pairs.push_back(key);
      Document(device, module, &out);
    }
    return out;
  }

 private:
  bool Used(const std::string& id) const {
    for (const std::string& x : ids_)
      if (x == id) return true;
    return false;
  }

  void String(std::string_view s, std::string* out) { twinq::AppendJsonString(s, out); }

  void Document(const std::string& device, const std::string& module, std::string* out) {
    *out += "{\"deviceId\":";
    String(device, out);
    if (!module.empty()) {
      *out += ",\"moduleId\":";
      String(module, out);
    }
    uint8_t members = c_.Byte();
    if (members & 1) {
      *out += ",\"tags\":";
      Object(0, out);
    }
    if (members & 2) {
      *out += ",\"properties\":{";
      bool first = true;
      for (const char* side : {"reported", "desired"}) {
        if (!c_.Sometimes(side[0] == 'r' ? 12 : 4)) continue;
        if (!first) *out += ",";
        first = false;
        *out += Key(side);
        Object(0, out);
      }
      *out += "}";
    }
    if (members & 4) {
      *out += ",\"status\":";
      String(c_.Sometimes(8) ? "enabled" : "disabled", out);
    }
    if (wide_) Wide(out);
    if (members & 8) {
      *out += ",\"x\":";
      Any(1, out);
    }
    uint8_t variants = c_.Byte();
    if ((variants & 7) == 1) {  // another spelling of a top-level member
      *out += ",\"Tags\":";
      Object(0, out);
    }
    if ((variants & 0x38) == 0x08) {
      *out += ",\"STATUS\":";
      String(c_.Sometimes(8) ? "enabled" : "b", out);
    }
    if ((members & 0xF0) == 0xF0) {  // a second spelling of deviceId (rare)
      *out += ",\"DeviceId\":";
      String(c_.Pick(kStrings), out);
    }
    *out += "}\n";
  }

  static std::string Key(std::string_view k) {
    std::string s;
    twinq::AppendJsonString(k, &s);
    return s + ":";
  }

  void Object(int depth, std::string* out) {
    size_t n = c_.Below(5);
    std::vector<const char*> keys;
    *out += "{";
    for (size_t i = 0; i < n; ++i) {
      const char* k = c_.Pick(kKeys);
      bool dup = false;
      for (const char* seen : keys) dup |= std::string_view(seen) == k;
      if (dup) continue;
      if (!keys.empty()) *out += ",";
      keys.push_back(k);
      *out += Key(k);
      // "list" mostly holds an array; everything else anything.
      if ((k[0] == 'l' || k[0] == 'L') && c_.Sometimes(12) && depth < kMaxJsonDepth) {
        Array(depth + 1, out);
      } else {
        Any(depth + 1, out);
      }
    }
    *out += "}";
  }

  void Array(int depth, std::string* out) {
    size_t n = c_.Below(4);
    *out += "[";
    for (size_t i = 0; i < n; ++i) {
      if (i > 0) *out += ",";
      Any(depth + 1, out);
    }
    *out += "]";
  }

  void Any(int depth, std::string* out) {
    size_t k = c_.Below(16);
    if (depth >= kMaxJsonDepth && k >= 11) k %= 11;
    if (k <= 3) {
      String(c_.Pick(kStrings), out);
    } else if (k <= 7) {
      *out += c_.Pick(kJsonNumbers);
    } else if (k == 8) {
      *out += "true";
    } else if (k == 9) {
      *out += "false";
    } else if (k == 10) {
      *out += "null";
    } else if (k <= 12) {
      Array(depth, out);
    } else {
      Object(depth, out);
    }
  }

  // Top-level `n` (mostly numbers) and `s` (mostly strings) with many distinct values; `N`
  // sometimes, as a case variant of `n`.
  void Wide(std::string* out) {
    uint8_t b = c_.Byte();
    if ((b & 15) != 0) {
      *out += ",\"n\":";
      uint8_t v = c_.Byte();
      if (v < 224) {
        double d = (static_cast<int>(v % 112) - 40) / ((v / 112) ? 4.0 : 1.0);
        *out += twinq::FormatNumber(d);
      } else {
        Any(kMaxJsonDepth, out);
      }
    }
    if ((b & 0xF0) != 0) {
      *out += ",\"s\":";
      static const char* const kLetters[] = {"a", "b", "A", "B", "é", "c"};
      uint8_t v = c_.Byte();
      if (v < 216) {  // 1-3 letters: 6 + 36 + 216 spellings
        std::string str = kLetters[v % 6];
        if (v >= 6) str += kLetters[(v / 6) % 6];
        if (v >= 36) str += kLetters[(v / 36) % 6];
        String(str, out);
      } else {
        Any(kMaxJsonDepth, out);
      }
    }
    if (c_.Sometimes(2)) {
      *out += ",\"N\":";
      *out += twinq::FormatNumber(c_.Below(8));
    }
  }

  Chooser& c_;
  bool wide_ = false;
  std::vector<std::string> ids_;
};

// ---- the text ---------------------------------------------------------------------------------

class TextGen {
 public:
  TextGen(Chooser* c, bool modules) : c_(*c), modules_(modules) {}

  // A boolean-valued expression (most of the time). Deeper levels are more often leaves, and
  // operands are mostly typed (strings with strings, numbers with numbers), so that conditions
  // are true or false on many twins rather than undefined everywhere.
  std::string Bool(int depth) {
    if (Stop(depth)) return Leaf();
    switch (c_.Below(22)) {
      case 0:
      case 1:
        return Leaf();
      case 2:
        return Str(depth + 1) + " " + c_.Pick(kCompareOps) + " " + Str(depth + 1);
      case 3:
        return Num(depth + 1) + " " + c_.Pick(kCompareOps) + " " + Num(depth + 1);
      case 4:
        return Operand(depth + 1) + " " + c_.Pick(kCompareOps) + " " + Operand(depth + 1);
      case 5:
        return Path() + " " + c_.Pick(kCompareOps) + " " + Path();
      case 6:
        return (c_.Sometimes(8) ? Str(depth + 1) : Num(depth + 1)) +
               (c_.Sometimes(5) ? " NIN " : " IN ") + List();
      case 7:
        return Operand(depth + 1) + (c_.Sometimes(5) ? " NIN " : " IN ") + List();
      case 8:
        return "NOT " + Bool(depth + 1);
      case 9:
        return "NOT (" + Bool(depth + 1) + ")";
      case 10:
      case 11: {
        std::string s = Bool(depth + 1);
        size_t more = 1 + c_.Below(3);
        for (size_t i = 0; i < more; ++i) s += " AND " + Bool(depth + 1);
        return s;
      }
      case 12:
      case 13: {
        std::string s = Bool(depth + 1);
        size_t more = 1 + c_.Below(3);
        for (size_t i = 0; i < more; ++i) s += " OR " + Bool(depth + 1);
        return s;
      }
      case 14:
        return "(" + Bool(depth + 1) + ")";
      case 15:
        return std::string(c_.Pick(kKindTests)) + "(" + Operand(depth + 1) + ")";
      case 16: {
        std::string second = c_.Sometimes(4) ? Str(depth + 1) : c_.Pick(kStringConstants);
        return std::string(c_.Pick(kStringTests)) + "(" + Str(depth + 1) + ", " + second + ")";
      }
      case 17:
        return "ARRAY_CONTAINS(" + Path() + ", " +
               (c_.Sometimes(8) ? c_.Pick(kListElements) : Operand(depth + 1)) + ")";
      case 18:
        return IdTest();
      case 19:
        return "(" + Bool(depth + 1) + ") " + c_.Pick(kCompareOps) + " " +
               (c_.Sometimes(8) ? "true" : "(" + Bool(depth + 1) + ")");
      default:
        return Path();  // a boolean property as a condition
    }
  }

  std::string Path() {
    if (modules_ && c_.Sometimes(2)) return c_.Pick(kModulePaths);
    return c_.Pick(kPaths);
  }

  // deviceId / moduleId lookups (the IdLookup fast path).
  std::string IdTest() {
    const char* id = c_.Sometimes(2) ? "moduleId" : (c_.Sometimes(3) ? "DeviceId" : "deviceId");
    if (c_.Sometimes(8)) return std::string(id) + " = " + IdConstant();
    std::string list = "[" + IdConstant();
    size_t n = c_.Below(kMaxList);
    for (size_t i = 0; i < n; ++i) list += ", " + IdConstant();
    return std::string(id) + (c_.Sometimes(3) ? " NIN " : " IN ") + list + "]";
  }

 private:
  bool Stop(int depth) {
    return ++nodes_ > kMaxExprNodes || depth >= kMaxExprDepth ||
           c_.Below(kMaxExprDepth + 1) < static_cast<size_t>(depth);
  }

  std::string IdConstant() {
    if (c_.Sometimes(2)) return c_.Pick(kListElements);
    std::string s;
    const char* const ids[] = {"a", "ab", "B", "b", "é", "3", "d1", "D1", "$x", "z0", "zz", "m1"};
    twinq::AppendJsonString(c_.Pick(ids), &s);
    s.front() = s.back() = '\'';
    return s;
  }

  std::string Leaf() {
    switch (c_.Below(9)) {
      case 0:
      case 1:
      case 2:
        return Path() + " " + c_.Pick(kCompareOps) + " " + c_.Pick(kConstants);
      case 3:
        return std::string(c_.Pick(kConstants)) + " " + c_.Pick(kCompareOps) + " " + Path();
      case 4:
        return Path() + (c_.Sometimes(4) ? " NIN " : " IN ") + List();
      case 5:
        return std::string(c_.Pick(kKindTests)) + "(" + Path() + ")";
      case 6:
        return std::string(c_.Pick(kStringTests)) + "(" + Path() + ", " +
               c_.Pick(kStringConstants) + ")";
      case 7:
        return IdTest();
      default:
        return c_.Sometimes(8) ? Path() : c_.Pick(kConstants);
    }
  }

  std::string List() {
    std::string s = "[";
    size_t n = 1 + c_.Below(kMaxList);
    for (size_t i = 0; i < n; ++i) {
      if (i > 0) s += ", ";
      s += c_.Pick(kListElements);
    }
    return s + "]";
  }

  // A string-valued operand (when its paths hold strings).
  std::string Str(int depth) {
    if (Stop(depth)) return c_.Sometimes(5) ? c_.Pick(kStringConstants) : Path();
    switch (c_.Below(8)) {
      case 0:
      case 1:
      case 2:
        return Path();
      case 3:
        return c_.Pick(kStringConstants);
      case 4:
        return std::string(c_.Sometimes(8) ? "LOWER(" : "UPPER(") + Str(depth + 1) + ")";
      case 5:
        return "CONCAT(" + Str(depth + 1) + ", " + Str(depth + 1) + ")";
      case 6: {
        std::string s = "SUBSTRING(" + Str(depth + 1) + ", " + std::to_string(c_.Below(3));
        if (c_.Sometimes(8)) s += ", " + std::to_string(c_.Below(3));
        return s + ")";
      }
      default:
        return Operand(depth + 1);
    }
  }

  // A number-valued operand (when its paths hold numbers).
  std::string Num(int depth) {
    const char* const numbers[] = {"0",  "-0",   "1",     "1.5",  "-3", "3",      "2",
                                   "10", "0x10", "1e300", "-2.5", "20", "1.7e308"};
    if (Stop(depth)) return c_.Sometimes(5) ? c_.Pick(numbers) : Path();
    switch (c_.Below(10)) {
      case 0:
      case 1:
      case 2:
        return Path();
      case 3:
        return c_.Pick(numbers);
      case 4:
      case 5:
        return Num(depth + 1) + " " + c_.Pick(kArithOps) + " " + Num(depth + 1);
      case 6:
        return "-" + Num(depth + 1);
      case 7:
        if (c_.Sometimes(8)) return "LENGTH(" + Str(depth + 1) + ")";
        return "INDEX_OF(" + Str(depth + 1) + ", " + Str(depth + 1) + ")";
      case 8: {
        const char* const f[] = {"ABS",    "CEILING", "FLOOR",     "SIGN",
                                 "SQUARE", "SQRT",    "AS_NUMBER", "ARRAY_LENGTH"};
        return std::string(c_.Pick(f)) + "(" + (c_.Sometimes(8) ? Path() : Num(depth + 1)) + ")";
      }
      default:
        return Operand(depth + 1);
    }
  }

  // An operand of any type.
  std::string Operand(int depth) {
    if (Stop(depth)) return c_.Sometimes(6) ? c_.Pick(kConstants) : Path();
    switch (c_.Below(16)) {
      case 0:
      case 1:
      case 2:
      case 3:
      case 4:
        return Path();
      case 5:
      case 6:
        return c_.Pick(kConstants);
      case 7:
        return Operand(depth + 1) + " " + c_.Pick(kArithOps) + " " + Operand(depth + 1);
      case 8:
        return Num(depth + 1);
      case 9:
        return Str(depth + 1);
      case 10:
      case 11:
        return std::string(c_.Pick(kUnaryFunctions)) + "(" + Operand(depth + 1) + ")";
      case 12:
        return "CONCAT(" + Operand(depth + 1) + ", " + Operand(depth + 1) + ")";
      case 13: {
        std::string s = "SUBSTRING(" + Operand(depth + 1) + ", " + c_.Pick(kConstants);
        if (c_.Sometimes(8)) s += std::string(", ") + c_.Pick(kConstants);
        return s + ")";
      }
      case 14:
        return std::string(c_.Sometimes(8) ? "INDEX_OF(" : "POWER(") + Operand(depth + 1) + ", " +
               Operand(depth + 1) + ")";
      default:
        return "(" + Bool(depth + 1) + ")";
    }
  }

  Chooser& c_;
  bool modules_;
  int nodes_ = 0;
};

// The last name segment of a path as the binder keys it (empty: ends with an index).
std::string KeyOf(const std::string& path) {
  if (!path.empty() && path.back() == ']' && path.size() >= 2 && path[path.size() - 2] != ']')
    return "";
  size_t dot = path.rfind('.');
  std::string last = dot == std::string::npos ? path : path.substr(dot + 1);
  if (last.size() > 4 && last.starts_with("[[")) last = last.substr(2, last.size() - 4);
  return twinq::ToLowerAscii(last);
}

std::string Query(Chooser* c, bool modules) {
  TextGen gen(c, modules);
  std::string q = "SELECT ";
  if (c->Sometimes(4)) q += "TOP " + std::to_string(c->Below(6)) + " ";
  std::vector<std::string> group;
  std::vector<std::string> items;
  std::vector<std::string> keys;
  size_t aliases = 0;
  auto add = [&](const std::string& item, const std::string& key) {
    if (key.empty() || std::find(keys.begin(), keys.end(), key) != keys.end() || c->Sometimes(3)) {
      items.push_back(item + " AS k" + std::to_string(++aliases));
    } else {
      items.push_back(item);
      keys.push_back(key);
    }
  };
  auto aggregate = [&] {
    if (c->Sometimes(6)) return std::string("COUNT()");
    return std::string(c->Pick(kAggregates)) + "(" + gen.Path() + ")";
  };
  size_t shape = c->Below(4);
  if (shape == 0) {
    q += "*";
  } else if (shape == 1) {  // plain projections
    size_t n = 1 + c->Below(3);
    for (size_t i = 0; i < n; ++i) {
      std::string p = gen.Path();
      add(p, KeyOf(p));
    }
  } else if (shape == 2) {  // aggregates, one row
    size_t n = 1 + c->Below(3);
    for (size_t i = 0; i < n; ++i) add(aggregate(), "");
  } else {  // GROUP BY
    size_t n = 1 + c->Below(2);
    for (size_t i = 0; i < n; ++i) group.push_back(gen.Path());
    size_t m = 1 + c->Below(3);
    for (size_t i = 0; i < m; ++i) {
      if (c->Sometimes(8)) {
        // A grouped path, sometimes spelled in another case than in GROUP BY.
        std::string p = group[c->Below(group.size())];
        if (c->Sometimes(3) && p.starts_with("tags.")) p = "TAGS." + p.substr(5);
        add(p, KeyOf(p));
      } else {
        add(aggregate(), "");
      }
    }
  }
  for (size_t i = 0; i < items.size(); ++i) q += (i > 0 ? ", " : "") + items[i];
  q += modules ? " FROM devices.modules" : " FROM devices";
  if (c->Sometimes(11)) q += " WHERE " + gen.Bool(0);
  if (!group.empty()) {
    q += " GROUP BY ";
    for (size_t i = 0; i < group.size(); ++i) q += (i > 0 ? ", " : "") + group[i];
  }
  return q;
}

// ---- running and comparing --------------------------------------------------------------------

struct Outcome {
  std::string name;
  std::string text;
};

[[noreturn]] void Fail(const std::string& why, const std::string& fleet, const std::string& text,
                       const std::vector<Outcome>& outcomes, const std::string& extra) {
  std::fprintf(stderr, "fuzz_differential: %s\n--- fleet (NDJSON)\n%s--- text\n%s\n", why.c_str(),
               fleet.c_str(), text.c_str());
  for (const Outcome& o : outcomes)
    std::fprintf(stderr, "--- %s\n%s", o.name.c_str(), o.text.c_str());
  if (!extra.empty()) std::fprintf(stderr, "--- programs\n%s", extra.c_str());
  std::fflush(stderr);
  std::abort();
}

void Compare(const std::string& fleet, const std::string& text,
             const std::vector<Outcome>& outcomes, const std::string& extra) {
  for (const Outcome& o : outcomes) {
    if (o.text != outcomes[0].text)
      Fail(o.name + " differs from " + outcomes[0].name, fleet, text, outcomes, extra);
  }
}

std::string Lines(const std::vector<std::string>& v) {
  std::string s;
  for (const std::string& x : v) s += x + "\n";
  return s.empty() ? "(empty)\n" : s;
}

std::string Rows(const std::vector<Value>& rows) {
  std::string s;
  for (const Value& v : rows) s += twinq::ToJson(v) + "\n";
  return s.empty() ? "(empty)\n" : s;
}

const twinq::vm::CompileOptions kOpt{true}, kNoOpt{false};

// Compiles the filter under every VM configuration, checks Program::Verify() and returns the
// EXPLAIN text (for reports).
std::string CheckPrograms(const twinq::check::BoundExpr* folded,
                          const twinq::check::BoundExpr* unfolded, const twinq::index::Table& table,
                          const std::string& fleet, const std::string& text) {
  std::string explain;
  struct Config {
    const char* name;
    const twinq::check::BoundExpr* where;
    twinq::vm::CompileOptions options;
  };
  for (const Config& cfg : {Config{"vm", folded, kOpt}, Config{"vm-noopt", folded, kNoOpt},
                            Config{"vm-nofold", unfolded, kOpt}}) {
    twinq::vm::Program p = twinq::vm::CompileFilter(cfg.where, table, cfg.options);
    std::string e = p.Explain();
    explain += std::string(cfg.name) + ":\n" + e;
    std::string bad = p.Verify();
    if (!bad.empty())
      Fail(std::string("Program::Verify() of ") + cfg.name + ": " + bad, fleet, text, {}, e);
  }
  return explain;
}

bool Print() {
  static const bool print = std::getenv("TWINQ_FUZZ_PRINT") != nullptr;
  return print;
}

void RunCondition(const std::string& fleet, const std::string& text, const twinq::TwinSet& twins,
                  const twinq::index::Snapshot& snap) {
  using namespace twinq;
  Source source("<condition>", text);
  check::BindOptions fold, nofold;
  nofold.fold = false;
  auto c1 = tools::CompileCondition(source, fold);
  auto c2 = tools::CompileCondition(source, nofold);
  if (c1.ok() != c2.ok()) {
    Fail("binding differs with and without folding", fleet, text,
         {{"fold", c1.ok() ? "compiled\n" : "failed\n"},
          {"nofold", c2.ok() ? "compiled\n" : "failed\n"}},
         "");
  }
  if (!c1.ok()) {
    static size_t rejected = 0;
    if (Print())
      std::fprintf(stderr, "rejected #%zu: %s\n  %s\n", ++rejected, text.c_str(),
                   RenderShort(c1.diagnostics()[0], source).c_str());
    return;
  }
  ref::Documents docs{twins.devices, twins.modules, {}};
  std::string explain;
  if (!c1->all) {
    explain = CheckPrograms(c1->expr.get(), c2->expr.get(), vm::TableOf(snap, c1->collection),
                            fleet, text);
  }
  std::vector<Outcome> out = {
      {"ref", Lines(ref::TargetIds(*c1, docs))},
      {"ref-nofold", Lines(ref::TargetIds(*c2, docs))},
      {"vm", Lines(vm::TargetIds(*c1, snap, kOpt))},
      {"vm-noopt", Lines(vm::TargetIds(*c1, snap, kNoOpt))},
      {"vm-nofold", Lines(vm::TargetIds(*c2, snap, kOpt))},
  };
  if (Print()) {
    std::fprintf(stderr, "targets %s\n----\n%s\n", text.c_str(), out[0].text.c_str());
    if (std::getenv("TWINQ_FUZZ_PRINT")[0] == '2') std::fprintf(stderr, "%s\n", explain.c_str());
  }
  Compare(fleet, text, out, explain);
}

template <class RunPage>
std::string Paged(size_t page_size, RunPage run) {
  twinq::PageRequest page;
  page.page_size = page_size;
  std::string s;
  for (size_t n = 0; n <= kMaxWideDevices + kMaxModules + 1; ++n) {
    auto r = run(page);
    if (!r.ok()) return s + "error: " + r.error().message + "\n";
    for (const Value& v : r->rows) s += twinq::ToJson(v) + "\n";
    if (r->continuation.empty()) return s.empty() ? "(empty)\n" : s;
    page.continuation = r->continuation;
  }
  return s + "paging did not end\n";
}

void RunQuery(const std::string& fleet, const std::string& text, const twinq::TwinSet& twins,
              const twinq::index::Snapshot& snap, size_t pages) {
  using namespace twinq;
  Source source("<query>", text);
  check::BindOptions fold, nofold;
  nofold.fold = false;
  auto q1 = tools::CompileQuery(source, fold);
  auto q2 = tools::CompileQuery(source, nofold);
  if (q1.ok() != q2.ok()) {
    Fail("binding differs with and without folding", fleet, text,
         {{"fold", q1.ok() ? "compiled\n" : "failed\n"},
          {"nofold", q2.ok() ? "compiled\n" : "failed\n"}},
         "");
  }
  if (!q1.ok()) {
    static size_t rejected = 0;
    if (Print())
      std::fprintf(stderr, "rejected #%zu: %s\n  %s\n", ++rejected, text.c_str(),
                   RenderShort(q1.diagnostics()[0], source).c_str());
    return;
  }
  ref::Documents docs{twins.devices, twins.modules, {}};
  std::string explain = CheckPrograms(q1->where.get(), q2->where.get(),
                                      vm::TableOf(snap, q1->collection), fleet, text);
  std::vector<Value> all = ref::AllRows(*q1, docs);
  // Every page recomputes the whole result: keep to at most about `pages` + 1 of them.
  size_t page_size = std::max<size_t>(1, all.size() / pages);
  std::vector<Outcome> out = {
      {"ref", Rows(all)},
      {"ref-nofold", Rows(ref::AllRows(*q2, docs))},
      {"vm", Rows(vm::AllRows(*q1, snap, kOpt))},
      {"vm-noopt", Rows(vm::AllRows(*q1, snap, kNoOpt))},
      {"vm-nofold", Rows(vm::AllRows(*q2, snap, kOpt))},
      {"ref paged by " + std::to_string(page_size),
       Paged(page_size, [&](const PageRequest& p) { return ref::RunQuery(*q1, docs, p); })},
      {"vm paged by " + std::to_string(page_size),
       Paged(page_size, [&](const PageRequest& p) { return vm::RunQuery(*q1, snap, p, kOpt); })},
  };
  if (Print()) {
    std::fprintf(stderr, "query %s\n----\n%s\n", text.c_str(), out[0].text.c_str());
    if (std::getenv("TWINQ_FUZZ_PRINT")[0] == '2') std::fprintf(stderr, "%s\n", explain.c_str());
  }
  Compare(fleet, text, out, explain);
}

// A readable case: "#case\n", the fleet as NDJSON, a line "----", then the text (a condition, or
// a query when it starts with SELECT). Minimised findings are kept in this form in
// tests/regress/differential/. A fleet that does not read is ignored.
constexpr std::string_view kCaseHeader = "#case\n";

int RunReadableCase(std::string_view input) {
  input.remove_prefix(kCaseHeader.size());
  size_t sep = input.find("\n----\n");
  if (sep == std::string_view::npos) return 0;
  std::string fleet(input.substr(0, sep + 1));
  std::string text(input.substr(sep + 6));
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  auto twins = twinq::ReadTwins(fleet, "fleet");
  if (!twins.ok()) return 0;
  twinq::index::Fleet index(*twins);
  twinq::index::Snapshot snap = index.snapshot();
  if (twinq::EqualsIgnoreCase(std::string_view(text).substr(0, 6), "select")) {
    RunQuery(fleet, text, *twins, snap, 2);
  } else {
    RunCondition(fleet, text, *twins, snap);
  }
  return 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > kMaxInput) return 0;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  if (input.starts_with(kCaseHeader)) return RunReadableCase(input);
  Bytes bytes(data, size);
  Chooser text_choices(&bytes, /*front=*/false);
  Chooser fleet_choices(&bytes, /*front=*/true);
  // The text is made first (from the back): it is short, and the fleet takes what is left.
  uint8_t mode = text_choices.Byte();
  size_t pages = 1 + text_choices.Below(3);
  bool modules = (mode & 0x30) == 0x30;  // a quarter of the inputs target modules
  bool query = mode % 8 >= 4;
  std::string text;
  if (query) {
    text = Query(&text_choices, modules);
  } else {
    TextGen gen(&text_choices, modules);
    if (modules) {
      text = "FROM devices.modules WHERE " + gen.Bool(0);
    } else if (mode % 8 == 3) {
      text = text_choices.Sometimes(2) ? "*" : "FROM devices WHERE " + gen.Bool(0);
    } else {
      text = gen.Bool(0);
    }
  }

  std::string fleet = FleetGen(&fleet_choices).Generate();
  auto twins = twinq::ReadTwins(fleet, "fleet");
  if (!twins.ok()) {
    std::fprintf(stderr, "fuzz_differential: generated fleet does not read: %s\n%s",
                 twins.error().message.c_str(), fleet.c_str());
    std::abort();
  }
  twinq::index::Fleet index(*twins);
  twinq::index::Snapshot snap = index.snapshot();
  if (Print()) std::fprintf(stderr, "fleet\n%s\n", fleet.c_str());
  if (query) {
    RunQuery(fleet, text, *twins, snap, pages);
  } else {
    RunCondition(fleet, text, *twins, snap);
  }
  return 0;
}
