// Reading twin documents and JSON values (engine/common/json_reader.h).
#include "engine/common/json_reader.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <simdjson.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace twinq {
namespace {

// Device and module ids of a TwinSet in order: "a,b|a/m1,b/m2".
std::string Ids(const TwinSet& set) {
  std::string out;
  for (const Value& d : set.devices) {
    if (!out.empty()) out += ",";
    out += d.Find("deviceId")->as_string();
  }
  out += "|";
  bool first = true;
  for (const Value& m : set.modules) {
    if (!first) out += ",";
    first = false;
    out += m.Find("deviceId")->as_string() + "/" + m.Find("moduleId")->as_string();
  }
  return out;
}

std::string ReadIds(std::string_view text) {
  Expected<TwinSet> set = ReadTwins(text, "t.json");
  if (!set.ok()) return "error: " + set.error().message;
  return Ids(*set);
}

std::string ReadError(std::string_view text) {
  Expected<TwinSet> set = ReadTwins(text, "t.json");
  if (set.ok()) return "ok: " + Ids(*set);
  return set.error().message;
}

std::string ParseError(std::string_view text) {
  Expected<Value> v = ParseJson(text, "t.json");
  if (v.ok()) return "ok: " + ToJson(*v);
  return v.error().message;
}

// ToJson(ParseJson(text)), or the error message.
std::string Reparse(std::string_view text) {
  Expected<Value> v = ParseJson(text, "t.json");
  if (!v.ok()) return "error: " + v.error().message;
  return ToJson(*v);
}

// VisitTwins read both ways, as Values and as tokens: "error: MESSAGE", or each twin as
// "d " / "m " and its JSON. For tokens, TokensToValue must give a Value that prints the same
// as AppendJson prints the tokens.
std::string VisitedAsValues(std::string_view text) {
  std::string out;
  Expected<size_t> n = VisitTwins(text, "t.json", [&](Value twin, bool module) {
    out += (module ? "m " : "d ") + ToJson(twin) + "\n";
  });
  return n.ok() ? out : "error: " + n.error().message;
}
std::string VisitedAsTokens(std::string_view text) {
  std::string out;
  Expected<size_t> n =
      VisitTwins(text, "t.json", [&](const JsonToken* twin, bool module, std::string_view, bool) {
        std::string printed;
        AppendJson(twin, &printed);
        EXPECT_EQ(printed, ToJson(TokensToValue(twin)));
        out += (module ? "m " : "d ") + printed + "\n";
      });
  return n.ok() ? out : "error: " + n.error().message;
}

// --- Input forms ------------------------------------------------------------------------------

TEST(JsonReaderTest, Ndjson) {
  Expected<TwinSet> set = ReadTwins(
      "{\"deviceId\":\"b\",\"tags\":{\"x\":1}}\n"
      "{\"deviceId\":\"a\"}\n"
      "{\"deviceId\":\"c\",\"moduleId\":\"m2\"}\n"
      "{\"deviceId\":\"c\",\"moduleId\":\"m1\"}\n",
      "t.json");
  ASSERT_TRUE(set.ok()) << set.error().message;
  EXPECT_EQ(Ids(*set), "a,b|c/m1,c/m2");
  EXPECT_EQ(ToJson(set->devices[1]), "{\"deviceId\":\"b\",\"tags\":{\"x\":1}}");
  EXPECT_EQ(ToJson(set->modules[0]), "{\"deviceId\":\"c\",\"moduleId\":\"m1\"}");
}

TEST(JsonReaderTest, NdjsonWithCrlfBlankLinesAndNoFinalNewline) {
  EXPECT_EQ(ReadIds("\r\n{\"deviceId\":\"b\"}\r\n\r\n  {\"deviceId\":\"a\"}"), "a,b|");
}

TEST(JsonReaderTest, ArrayOfDocuments) {
  EXPECT_EQ(ReadIds("[\n"
                    "  {\"deviceId\": \"z\", \"moduleId\": \"m\"},\n"
                    "  {\"deviceId\": \"y\"},\n"
                    "  {\"deviceId\": \"x\"}\n"
                    "]\n"),
            "x,y|z/m");
  EXPECT_EQ(ReadIds("[]"), "|");
  EXPECT_EQ(ReadIds("[ ]\n[]"), "|");
}

TEST(JsonReaderTest, SingleObject) { EXPECT_EQ(ReadIds("  {\"deviceId\":\"only\"}  "), "only|"); }

TEST(JsonReaderTest, ConcatenatedObjects) {
  EXPECT_EQ(ReadIds("{\"deviceId\":\"b\"}{\"deviceId\":\"a\"} {\"deviceId\":\"c\"}"), "a,b,c|");
  // Multi-line objects one after another (pretty-printed output, concatenated).
  EXPECT_EQ(ReadIds("{\n  \"deviceId\": \"b\"\n}\n{\n  \"deviceId\": \"a\"\n}\n"), "a,b|");
}

TEST(JsonReaderTest, ArraysAndObjectsMixed) {
  EXPECT_EQ(ReadIds("[{\"deviceId\":\"d2\"},{\"deviceId\":\"d1\",\"moduleId\":\"m\"}]\n"
                    "{\"deviceId\":\"d1\"}\n"
                    "[{\"deviceId\":\"d0\"}]"),
            "d0,d1,d2|d1/m");
}

TEST(JsonReaderTest, EmptyInput) {
  EXPECT_EQ(ReadIds(""), "|");
  EXPECT_EQ(ReadIds(" \n\t\r\n "), "|");
  EXPECT_EQ(ReadIds("\xEF\xBB\xBF"), "|");
  EXPECT_EQ(ReadIds("\xEF\xBB\xBF\n"), "|");
}

TEST(JsonReaderTest, ByteOrderMarkIsSkipped) {
  EXPECT_EQ(ReadIds("\xEF\xBB\xBF{\"deviceId\":\"a\"}\n"), "a|");
  EXPECT_EQ(Reparse("\xEF\xBB\xBF[1]"), "[1]");
  // Columns are counted after the mark.
  EXPECT_EQ(ReadError("\xEF\xBB\xBF{x"), "t.json:1:2: expected a string key or '}', found 'x'");
  // A mark anywhere else is an unexpected character.
  EXPECT_EQ(ReadError("{\"deviceId\":\"a\"}\n\xEF\xBB\xBF{}"),
            "t.json:2:1: expected a value, found '\xEF\xBB\xBF'");
}

TEST(JsonReaderTest, ModuleAndDeviceTwinsMayShareADeviceId) {
  EXPECT_EQ(
      ReadIds("{\"deviceId\":\"d\",\"moduleId\":\"b\"}{\"deviceId\":\"d\"}"
              "{\"deviceId\":\"d\",\"moduleId\":\"a\"}{\"deviceId\":\"c\",\"moduleId\":\"z\"}"),
      "d|c/z,d/a,d/b");
}

TEST(JsonReaderTest, SortIsByteOrder) {
  // 'B' (0x42) < '_' (0x5f) < 'a' (0x61) < 'b'; "a" < "a-1" < "aa".
  EXPECT_EQ(ReadIds("{\"deviceId\":\"b\"}{\"deviceId\":\"aa\"}{\"deviceId\":\"a-1\"}"
                    "{\"deviceId\":\"a\"}{\"deviceId\":\"_\"}{\"deviceId\":\"B\"}"
                    "{\"deviceId\":\"\xC3\xA9\"}"),
            "B,_,a,a-1,aa,b,\xC3\xA9|");
}

TEST(JsonReaderTest, LargeDocumentsAndManyDocuments) {
  // One document far above simdjson's default 1 MB stream batch size.
  std::string big =
      "{\"deviceId\":\"big\",\"tags\":{\"blob\":\"" + std::string(3 << 20, 'x') + "\"},\"list\":[";
  for (int i = 0; i < 100000; ++i) big += (i ? "," : "") + std::to_string(i);
  big += "]}\n";
  std::string text = big;
  for (int i = 0; i < 5000; ++i) text += "{\"deviceId\":\"d" + std::to_string(i) + "\"}\n";
  Expected<TwinSet> set = ReadTwins(text, "t.json");
  ASSERT_TRUE(set.ok()) << set.error().message;
  ASSERT_EQ(set->devices.size(), 5001u);
  EXPECT_EQ(set->devices[0].Find("deviceId")->as_string(), "big");
  EXPECT_EQ(set->devices[0].Find("tags")->Find("blob")->as_string().size(), size_t{3} << 20);
  EXPECT_EQ(set->devices[0].Find("list")->as_array()[99999].as_number(), 99999);
  EXPECT_EQ(set->devices[1].Find("deviceId")->as_string(), "d0");
  EXPECT_EQ(set->devices[2].Find("deviceId")->as_string(), "d1");
  EXPECT_EQ(set->devices[3].Find("deviceId")->as_string(), "d10");
}

// --- Values -----------------------------------------------------------------------------------

TEST(JsonReaderTest, KeyOrderIsKept) {
  Expected<TwinSet> set =
      ReadTwins("{\"z\":1,\"deviceId\":\"d\",\"a\":{\"y\":1,\"b\":2,\"$m\":3},\"m\":[]}", "t.json");
  ASSERT_TRUE(set.ok()) << set.error().message;
  const Object& o = set->devices[0].as_object();
  ASSERT_EQ(o.size(), 4u);
  EXPECT_EQ(o[0].first, "z");
  EXPECT_EQ(o[1].first, "deviceId");
  EXPECT_EQ(o[2].first, "a");
  EXPECT_EQ(o[3].first, "m");
  EXPECT_EQ(ToJson(o[2].second), "{\"y\":1,\"b\":2,\"$m\":3}");
}

TEST(JsonReaderTest, NestedValues) {
  Expected<Value> v = ParseJson(
      " {\"a\": [1, [2, [3, {\"b\": [true, false, null]}]], {}], \"c\": {\"d\": {\"e\": []}}} ",
      "t.json");
  ASSERT_TRUE(v.ok()) << v.error().message;
  EXPECT_EQ(ToJson(*v),
            "{\"a\":[1,[2,[3,{\"b\":[true,false,null]}]],{}],\"c\":{\"d\":{\"e\":[]}}}");
  const Value& a = *v->Find("a");
  ASSERT_TRUE(a.is_array());
  EXPECT_EQ(a.as_array()[0].as_number(), 1);
  const Value& inner = a.as_array()[1].as_array()[1].as_array()[1];
  EXPECT_TRUE(inner.Find("b")->as_array()[0].as_bool());
  EXPECT_FALSE(inner.Find("b")->as_array()[1].as_bool());
  EXPECT_TRUE(inner.Find("b")->as_array()[2].is_null());
  EXPECT_TRUE(v->Find("c")->Find("d")->Find("e")->as_array().empty());
}

TEST(JsonReaderTest, Scalars) {
  EXPECT_EQ(Reparse("true"), "true");
  EXPECT_EQ(Reparse(" false "), "false");
  EXPECT_EQ(Reparse("null"), "null");
  EXPECT_EQ(Reparse("\"\""), "\"\"");
  EXPECT_EQ(Reparse("\n12\n"), "12");
  Expected<Value> s = ParseJson("\"abc\"", "t.json");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->as_string(), "abc");
}

TEST(JsonReaderTest, Numbers) {
  auto number = [](std::string_view text) {
    Expected<Value> v = ParseJson(text, "t.json");
    EXPECT_TRUE(v.ok()) << text << ": " << (v.ok() ? "" : v.error().message);
    EXPECT_TRUE(v.ok() && v->is_number()) << text;
    return v.ok() && v->is_number() ? v->as_number() : std::nan("");
  };
  EXPECT_EQ(number("0"), 0);
  EXPECT_EQ(number("42"), 42);
  EXPECT_EQ(number("-17"), -17);
  EXPECT_EQ(number("1.5"), 1.5);
  EXPECT_EQ(number("-0.25"), -0.25);
  EXPECT_EQ(number("1e3"), 1000);
  EXPECT_EQ(number("1E+3"), 1000);
  EXPECT_EQ(number("2.5e-3"), 0.0025);
  EXPECT_EQ(number("123.456e2"), 12345.6);
  EXPECT_EQ(number("1.7976931348623157e308"), 1.7976931348623157e308);
  EXPECT_EQ(number("5e-324"), 5e-324);
  EXPECT_EQ(number("1e-400"), 0);  // underflow rounds to zero
  // -0: simdjson reads the integer literal as the integer 0 (positive zero); -0.0 keeps its sign.
  EXPECT_EQ(number("-0"), 0);
  EXPECT_FALSE(std::signbit(number("-0")));
  EXPECT_EQ(number("-0.0"), 0);
  EXPECT_TRUE(std::signbit(number("-0.0")));
  EXPECT_EQ(Reparse("-0.0"), "0");
  // The 2^53 boundary: exact integers are accepted up to and including 2^53.
  EXPECT_EQ(number("9007199254740991"), 9007199254740991.0);
  EXPECT_EQ(number("9007199254740992"), 9007199254740992.0);
  EXPECT_EQ(number("-9007199254740992"), -9007199254740992.0);
  EXPECT_EQ(Reparse("[9007199254740991,-9007199254740991,9007199254740992]"),
            "[9007199254740991,-9007199254740991,9007199254740992]");
  // A literal with a fraction or exponent is a float: rounded, not rejected.
  EXPECT_EQ(number("9007199254740993.0"), 9007199254740992.0);
  EXPECT_EQ(number("1e20"), 1e20);
  EXPECT_EQ(number("12345678901234567890123e0"), 12345678901234567890123e0);
}

TEST(JsonReaderTest, IntegersBeyondTwoToThe53AreErrors) {
  EXPECT_EQ(ParseError("9007199254740993"),
            "t.json:1:1: integer 9007199254740993 is outside the exact range [-2^53, 2^53] of a "
            "double");
  EXPECT_EQ(ParseError("[1, -9007199254740993]"),
            "t.json:1:5: integer -9007199254740993 is outside the exact range [-2^53, 2^53] of a "
            "double");
  EXPECT_EQ(ParseError("{\"a\":\n 18446744073709551615}"),  // uint64 in simdjson
            "t.json:2:2: integer 18446744073709551615 is outside the exact range [-2^53, 2^53] of "
            "a double");
  EXPECT_EQ(ParseError("123456789012345678901234"),  // beyond 64 bits: simdjson's own error
            "t.json:1:1: integer 123456789012345678901234 is outside the exact range [-2^53, 2^53] "
            "of a double");
  EXPECT_EQ(ParseError("-9223372036854775808"),
            "t.json:1:1: integer -9223372036854775808 is outside the exact range [-2^53, 2^53] of "
            "a double");
  EXPECT_EQ(ReadError("{\"deviceId\":\"a\"}\n{\"deviceId\":\"b\",\"version\":10000000000000000}"),
            "t.json:2:27: integer 10000000000000000 is outside the exact range [-2^53, 2^53] of a "
            "double");
}

TEST(JsonReaderTest, NumberErrors) {
  EXPECT_EQ(ParseError("1e400"), "t.json:1:1: number 1e400 is out of the range of a double");
  EXPECT_EQ(ParseError("[-1.5e309]"),
            "t.json:1:2: number -1.5e309 is out of the range of a double");
  EXPECT_EQ(ParseError("01"), "t.json:1:1: invalid number '01'");
  EXPECT_EQ(ParseError("[1.]"), "t.json:1:2: invalid number '1.'");
  EXPECT_EQ(ParseError("[.5]"), "t.json:1:2: expected a value, found '.'");
  EXPECT_EQ(ParseError("-"), "t.json:1:1: invalid number '-'");
  EXPECT_EQ(ParseError("1e"), "t.json:1:1: invalid number '1e'");
  EXPECT_EQ(ParseError("1e+"), "t.json:1:1: invalid number '1e+'");
  EXPECT_EQ(ParseError("+1"), "t.json:1:1: expected a value, found '+'");
  EXPECT_EQ(ParseError("[1x]"), "t.json:1:2: invalid number '1x'");
  EXPECT_EQ(ParseError("-Infinity"), "t.json:1:1: invalid number '-Infinity'");
  EXPECT_EQ(ParseError("NaN"), "t.json:1:1: expected a value, found 'N'");
  EXPECT_EQ(ParseError("0x10"), "t.json:1:1: invalid number '0x10'");
}

TEST(JsonReaderTest, StringsWithEscapesAndUnicode) {
  Expected<Value> v = ParseJson(R"("q\"b\\s\/b\bf\fn\nr\rt\t u\u0041\u00e9\u20ac\ud83d\ude00 raw:)"
                                "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\"",
                                "t.json");
  ASSERT_TRUE(v.ok()) << v.error().message;
  EXPECT_EQ(v->as_string(),
            "q\"b\\s/b\bf\fn\nr\rt\t uA\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80 "
            "raw:\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80");
  // NUL is allowed when escaped.
  Expected<Value> nul = ParseJson(R"("a\u0000b")", "t.json");
  ASSERT_TRUE(nul.ok());
  EXPECT_EQ(nul->as_string(), std::string("a\0b", 3));
  // Escaped keys are compared after unescaping.
  EXPECT_EQ(Reparse(R"({"\u0064eviceId":1})"), "{\"deviceId\":1}");
  EXPECT_EQ(Reparse(R"("\u001f\"")"), R"("\u001f\"")");
}

TEST(JsonReaderTest, StringErrors) {
  EXPECT_EQ(ParseError("\"abc"), "t.json:1:1: unterminated string");
  EXPECT_EQ(ParseError("[\"abc\\"), "t.json:1:2: unterminated string");
  EXPECT_EQ(ParseError("[\"ab\ncd\"]"),
            "t.json:1:5: unterminated string (line break before the closing quote)");
  EXPECT_EQ(ParseError("\"a\tb\""), "t.json:1:3: unescaped control character U+0009 in string");
  EXPECT_EQ(ParseError("\"a\\qb\""), "t.json:1:3: invalid escape sequence '\\q' in string");
  EXPECT_EQ(ParseError("\"a\\\x01\""),
            "t.json:1:3: invalid escape sequence: '\\' followed by byte 0x01");
  EXPECT_EQ(ParseError(R"("\u12G4")"),
            "t.json:1:2: invalid \\u escape in string (expected 4 hex digits)");
  EXPECT_EQ(ParseError(R"(["\u12"])"),
            "t.json:1:3: invalid \\u escape in string (expected 4 hex digits)");
  EXPECT_EQ(ParseError(R"("x\ud800")"), "t.json:1:3: unpaired surrogate \\ud800 in string");
  EXPECT_EQ(ParseError(R"("x\uD800\u0041")"), "t.json:1:3: unpaired surrogate \\uD800 in string");
  EXPECT_EQ(ParseError(R"("x\udc00")"), "t.json:1:3: unpaired surrogate \\udc00 in string");
  EXPECT_EQ(ParseError(R"("\ud83d\ude00\ude00")"),
            "t.json:1:14: unpaired surrogate \\ude00 in string");
}

TEST(JsonReaderTest, InvalidUtf8) {
  EXPECT_EQ(ParseError("\"ab\xFF\""), "t.json:1:4: invalid UTF-8 (byte 0xff)");
  EXPECT_EQ(ParseError("[\"\xC3\xA9\",\n \"\xC0\xAF\"]"),  // overlong '/'
            "t.json:2:3: invalid UTF-8 (byte 0xc0)");
  EXPECT_EQ(ParseError("\"\xED\xA0\x80\""),  // UTF-8 encoded surrogate U+D800
            "t.json:1:2: invalid UTF-8 (byte 0xed)");
  EXPECT_EQ(ParseError("\"\xF4\x90\x80\x80\""),  // above U+10FFFF
            "t.json:1:2: invalid UTF-8 (byte 0xf4)");
  EXPECT_EQ(ParseError("\"\xE2\x82\""), "t.json:1:2: invalid UTF-8 (byte 0xe2)");  // truncated
  EXPECT_EQ(ParseError("[1,\x80]"), "t.json:1:4: invalid UTF-8 (byte 0x80)");
  EXPECT_EQ(ReadError("{\"deviceId\":\"a\"}\n{\"deviceId\":\"b\",\"x\":\"ok\xE2\x82\xAC\xFF\"}"),
            "t.json:2:27: invalid UTF-8 (byte 0xff)");
  // Valid UTF-8 outside a string is an unexpected character.
  EXPECT_EQ(ParseError("[\xC3\xA9]"), "t.json:1:2: expected a value, found '\xC3\xA9'");
}

TEST(JsonReaderTest, StructureErrors) {
  EXPECT_EQ(ParseError(""), "t.json:1:1: expected a value, found end of input");
  EXPECT_EQ(ParseError("  \n "), "t.json:2:2: expected a value, found end of input");
  EXPECT_EQ(ParseError("{} x"),
            "t.json:1:4: expected end of input after the JSON value, found 'x'");
  EXPECT_EQ(ParseError("1 2"), "t.json:1:3: expected end of input after the JSON value, found '2'");
  EXPECT_EQ(ParseError("{\"a\":1,}"), "t.json:1:8: expected a string key, found '}'");
  EXPECT_EQ(ParseError("[1,]"), "t.json:1:4: expected a value, found ']'");
  EXPECT_EQ(ParseError("[1 2]"), "t.json:1:4: expected ',' or ']' after array element, found '2'");
  EXPECT_EQ(ParseError("{\"a\" 1}"), "t.json:1:6: expected ':' after key \"a\", found '1'");
  EXPECT_EQ(ParseError("{a:1}"), "t.json:1:2: expected a string key or '}', found 'a'");
  EXPECT_EQ(ParseError("{\"a\":1]"),
            "t.json:1:7: expected ',' or '}' after object member, found ']'");
  EXPECT_EQ(ParseError("[1}"), "t.json:1:3: expected ',' or ']' after array element, found '}'");
  EXPECT_EQ(ParseError("{\"a\":}"), "t.json:1:6: expected a value, found '}'");
  EXPECT_EQ(ParseError("{\"a\":1"),
            "t.json:1:7: expected ',' or '}' after object member, found end of input");
  EXPECT_EQ(ParseError("'a'"), "t.json:1:1: expected a value, found '''");
  EXPECT_EQ(ParseError("tru"), "t.json:1:1: invalid literal 'tru'");
  EXPECT_EQ(ParseError("[truex]"), "t.json:1:2: invalid literal 'truex'");
  EXPECT_EQ(ParseError("nul"), "t.json:1:1: invalid literal 'nul'");
  EXPECT_EQ(ParseError("[\x01]"), "t.json:1:2: expected a value, found byte 0x01");
}

TEST(JsonReaderTest, MalformedDocumentInStream) {
  // The column points at the offending byte, on the right line.
  EXPECT_EQ(ReadError("{\"deviceId\":\"a\"}\n"
                      "{\"deviceId\":\"b\"}\n"
                      "{\"deviceId\":\"c\" \"x\":1}\n"
                      "{\"deviceId\":\"d\"}\n"),
            "t.json:3:17: expected ',' or '}' after object member, found '\"'");
  // Truncated last document.
  EXPECT_EQ(ReadError("{\"deviceId\":\"a\"}\n{\"deviceId\":\"b\","),
            "t.json:2:17: expected a string key, found end of input");
  EXPECT_EQ(ReadError("{\"deviceId\":\"a\"}\n{\"deviceId\":\"b"),
            "t.json:2:13: unterminated string");
  // A document missing its closing brace runs into the next one.
  EXPECT_EQ(ReadError("{\"deviceId\":\"a\"\n{\"deviceId\":\"b\"}\n"),
            "t.json:2:1: expected ',' or '}' after object member, found '{'");
  // A missing closing quote.
  EXPECT_EQ(ReadError("{\"deviceId\":\"a}\n{\"deviceId\":\"b\"}\n"),
            "t.json:1:16: unterminated string (line break before the closing quote)");
  // Stray closing brackets and separators between documents.
  EXPECT_EQ(ReadError("{\"deviceId\":\"a\"}}\n"), "t.json:1:17: expected a value, found '}'");
  EXPECT_EQ(ReadError("{\"deviceId\":\"a\"}\n]"), "t.json:2:1: expected a value, found ']'");
  EXPECT_EQ(ReadError("{\"deviceId\":\"a\"},{\"deviceId\":\"b\"}"),
            "t.json:1:17: expected a value, found ','");
  EXPECT_EQ(ReadError("{\"deviceId\":\"a\"} x"), "t.json:1:18: expected a value, found 'x'");
  EXPECT_EQ(ReadError("[{\"deviceId\":\"a\"},]"), "t.json:1:19: expected a value, found ']'");
  // A pretty-printed array with a missing comma on line 4.
  EXPECT_EQ(ReadError("[\n"
                      "  {\"deviceId\": \"a\"},\n"
                      "  {\"deviceId\": \"b\"}\n"
                      "  {\"deviceId\": \"c\"}\n"
                      "]\n"),
            "t.json:4:3: expected ',' or ']' after array element, found '{'");
  // The first error in the input wins over later ones.
  EXPECT_EQ(ReadError("{\"deviceId\":\"a\",}\n{\"deviceId\":\"b\" x}\n"),
            "t.json:1:17: expected a string key, found '}'");
}

TEST(JsonReaderTest, DuplicateKeys) {
  EXPECT_EQ(ReadError("{\"deviceId\":\"a\",\"x\":1,\"x\":2}"),
            "t.json:1:23: duplicate key \"x\" in object");
  EXPECT_EQ(ReadError("{\"deviceId\":\"a\",\"deviceId\":\"b\"}"),
            "t.json:1:17: duplicate key \"deviceId\" in object");
  EXPECT_EQ(
      ReadError("{\"deviceId\":\"a\"}\n{\"deviceId\":\"b\",\"tags\":{\n  \"k\":1,\n  \"k\":1}}"),
      "t.json:4:3: duplicate key \"k\" in object");
  // Escapes are resolved before comparing.
  EXPECT_EQ(ParseError(R"({"a":1,"\u0061":2})"), "t.json:1:8: duplicate key \"a\" in object");
  // The same key in different objects is fine.
  EXPECT_EQ(Reparse(R"({"a":{"a":1},"b":{"a":2}})"), R"({"a":{"a":1},"b":{"a":2}})");
  // Objects with many keys (the sorted check).
  std::string many = "{";
  for (int i = 0; i < 50; ++i) many += "\"k" + std::to_string(i) + "\":" + std::to_string(i) + ",";
  EXPECT_EQ(ParseError(many + "\"k7\":0}"), "t.json:1:432: duplicate key \"k7\" in object");
  EXPECT_EQ(ParseError(many + "\"k50\":0}").substr(0, 3), "ok:");
  // Case variants are distinct keys.
  EXPECT_EQ(Reparse(R"({"Floor":1,"floor":2})"), R"({"Floor":1,"floor":2})");
}

TEST(JsonReaderTest, Depth) {
  auto nested = [](size_t depth, std::string_view inner = "") {
    return std::string(depth, '[') + std::string(inner) + std::string(depth, ']');
  };
  Expected<Value> ok = ParseJson(nested(kMaxJsonDepth), "t.json");
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ParseError(nested(kMaxJsonDepth + 1)),
            "t.json:1:1025: nesting deeper than 1024 levels");
  EXPECT_EQ(ParseError(nested(1000000)), "t.json:1:1025: nesting deeper than 1024 levels");
  EXPECT_EQ(ParseError(std::string(1000000, '{')),
            "t.json:1:2: expected a string key or '}', found '{'");
  EXPECT_EQ(ParseError(std::string(1000000, '[')),
            "t.json:1:1025: nesting deeper than 1024 levels");
  // Inside a twin (the twin object is level 1).
  EXPECT_EQ(ReadError("{\"deviceId\":\"a\"}\n{\"deviceId\":\"b\",\"t\":" + nested(1024) + "}"),
            "t.json:2:1044: nesting deeper than 1024 levels");
  EXPECT_EQ(ReadIds("{\"deviceId\":\"b\",\"t\":" + nested(1023) + "}"), "b|");
}

// --- Twin rules -------------------------------------------------------------------------------

TEST(JsonReaderTest, DocumentsMustBeObjects) {
  EXPECT_EQ(ReadError("{\"deviceId\":\"a\"}\n42\n"),
            "t.json:2: document is not an object (got number)");
  EXPECT_EQ(ReadError("\"dev\""), "t.json:1: document is not an object (got string)");
  EXPECT_EQ(ReadError("null"), "t.json:1: document is not an object (got null)");
  EXPECT_EQ(ReadError("true"), "t.json:1: document is not an object (got bool)");
  EXPECT_EQ(ReadError("[\n  {\"deviceId\":\"a\"},\n  [{\"deviceId\":\"b\"}]\n]"),
            "t.json:3: document is not an object (got array)");
  EXPECT_EQ(ReadError("[{\"deviceId\":\"a\"},\n\n\"x\"]"),
            "t.json:3: document is not an object (got string)");
}

TEST(JsonReaderTest, DeviceIdRules) {
  EXPECT_EQ(ReadError("{\"deviceId\":\"a\"}\n\n{\"DeviceId\":\"b\"}"),
            "t.json:3: document has no \"deviceId\"");
  EXPECT_EQ(ReadError("{}"), "t.json:1: document has no \"deviceId\"");
  EXPECT_EQ(ReadError("{\"deviceId\":7}"), "t.json:1: \"deviceId\" is not a string (got number)");
  EXPECT_EQ(ReadError("{\"deviceId\":null}"), "t.json:1: \"deviceId\" is not a string (got null)");
  EXPECT_EQ(ReadError("{\"deviceId\":\"\"}"), "t.json:1: \"deviceId\" is empty");
  EXPECT_EQ(ReadError("{\"deviceId\":\"a\",\"moduleId\":1}"),
            "t.json:1: \"moduleId\" is not a string (got number)");
  EXPECT_EQ(ReadError("{\"deviceId\":\"a\",\"moduleId\":null}"),
            "t.json:1: \"moduleId\" is not a string (got null)");
  EXPECT_EQ(ReadError("{\"deviceId\":\"a\",\"moduleId\":{}}"),
            "t.json:1: \"moduleId\" is not a string (got object)");
  EXPECT_EQ(ReadError("[{\"deviceId\":\"a\"},\n {\"deviceId\":\"a\",\"moduleId\":\"\"}]"),
            "t.json:2: \"moduleId\" is empty");
  // A multi-line document is reported at the line where it starts.
  EXPECT_EQ(ReadError("{\"deviceId\":\"a\"}\n{\n  \"tags\": {},\n  \"deviceId\": false\n}"),
            "t.json:2: \"deviceId\" is not a string (got bool)");
}

TEST(JsonReaderTest, DuplicateDeviceIds) {
  EXPECT_EQ(ReadError("{\"deviceId\":\"x\"}\n"
                      "{\"deviceId\":\"y\"}\n"
                      "{\"deviceId\":\"dev-1\"}\n"
                      "{\"deviceId\":\"z\"}\n"
                      "{\"deviceId\":\"dev-1\",\"moduleId\":\"m\"}\n"
                      "\n"
                      "{\"deviceId\":\"w\"}\n"
                      "{\"deviceId\":\"v\"}\n"
                      "{\"deviceId\":\"dev-1\"}\n"
                      "{\"deviceId\":\"dev-1\"}\n"),
            "t.json:9: duplicate deviceId \"dev-1\" (first at line 3)");
  // The earliest repetition is reported, whatever the sort order of the ids.
  EXPECT_EQ(ReadError("{\"deviceId\":\"b\"}\n{\"deviceId\":\"a\"}\n"
                      "{\"deviceId\":\"b\"}\n{\"deviceId\":\"a\"}\n"),
            "t.json:3: duplicate deviceId \"b\" (first at line 1)");
  // Ids are quoted as JSON strings; case matters.
  EXPECT_EQ(ReadIds("{\"deviceId\":\"Dev\"}{\"deviceId\":\"dev\"}"), "Dev,dev|");
  EXPECT_EQ(ReadError("{\"deviceId\":\"q\\\"x\"} {\"deviceId\":\"q\\\"x\"}"),
            "t.json:1: duplicate deviceId \"q\\\"x\" (first at line 1)");
  // In a pretty-printed array, lines are those of the elements.
  EXPECT_EQ(ReadError("[\n  {\"deviceId\": \"a\"},\n  {\"deviceId\": \"b\"},\n"
                      "  {\"deviceId\": \"a\", \"tags\": {\"x\": [1, \"]\", {}]}},\n"
                      "  {\n    \"deviceId\": \"b\"\n  }\n]"),
            "t.json:4: duplicate deviceId \"a\" (first at line 2)");
}

TEST(JsonReaderTest, DuplicateModuleIds) {
  EXPECT_EQ(ReadError("{\"deviceId\":\"d\",\"moduleId\":\"m\"}\n"
                      "{\"deviceId\":\"d\",\"moduleId\":\"n\"}\n"
                      "{\"deviceId\":\"e\",\"moduleId\":\"m\"}\n"
                      "{\"deviceId\":\"d\"}\n"
                      "{\"deviceId\":\"d\",\"moduleId\":\"m\"}\n"),
            "t.json:5: duplicate moduleId \"m\" of deviceId \"d\" (first at line 1)");
  // The earliest repetition among devices and modules is reported.
  EXPECT_EQ(ReadError("{\"deviceId\":\"d\"}\n{\"deviceId\":\"d\",\"moduleId\":\"m\"}\n"
                      "{\"deviceId\":\"d\",\"moduleId\":\"m\"}\n{\"deviceId\":\"d\"}\n"),
            "t.json:3: duplicate moduleId \"m\" of deviceId \"d\" (first at line 2)");
  EXPECT_EQ(ReadError("{\"deviceId\":\"d\"}\n{\"deviceId\":\"d\",\"moduleId\":\"m\"}\n"
                      "{\"deviceId\":\"d\"}\n{\"deviceId\":\"d\",\"moduleId\":\"m\"}\n"),
            "t.json:3: duplicate deviceId \"d\" (first at line 1)");
}

// A line that starts with '{' and parses whole is taken as one document without the
// byte-by-byte scan; every other layout goes the general way from the same place. Mixed here:
// CRLF and trailing blanks, two documents on a line, one over three lines, a line that holds a
// '{' inside a string, blank lines; then an error after them, at its line and column.
TEST(JsonReaderTest, MixedLayoutsBetweenNdjsonLines) {
  const std::string mixed =
      "{\"deviceId\":\"a\"}\r\n"
      "  {\"deviceId\":\"b\",\"tags\":{\"s\":\"{\\n\"}}   \n"
      "{\"deviceId\":\"c\"} {\"deviceId\":\"d\"}\n"
      "\n"
      "{\"deviceId\":\n"
      " \"e\",\"moduleId\":\"m\"\n"
      "}\n"
      "{\"deviceId\":\"f\"}";
  EXPECT_EQ(ReadIds(mixed), "a,b,c,d,f|e/m");
  EXPECT_EQ(ReadError(mixed + "\n{\"deviceId\":\"g\",}\n"),
            "t.json:9:17: expected a string key, found '}'");
  Expected<TwinSet> set = ReadTwins(mixed, "t.json");
  ASSERT_TRUE(set.ok());
  EXPECT_EQ(ToJson(set->devices[1]), "{\"deviceId\":\"b\",\"tags\":{\"s\":\"{\\n\"}}");
}

TEST(JsonReaderTest, SyntaxErrorsComeBeforeDuplicates) {
  EXPECT_EQ(ReadError("{\"deviceId\":\"a\"}\n{\"deviceId\":\"a\"}\n{\"deviceId\":\"c\""),
            "t.json:3:16: expected ',' or '}' after object member, found end of input");
}

TEST(JsonReaderTest, EmptyNameIsShownAsInput) {
  Expected<TwinSet> set = ReadTwins("[1]", "");
  ASSERT_FALSE(set.ok());
  EXPECT_EQ(set.error().message, "<input>:1: document is not an object (got number)");
}

// --- Round trip -------------------------------------------------------------------------------

// A device twin as the service returns it (reference A.8), compact.
constexpr std::string_view kTwin =
    R"({"deviceId":"devA","etag":"AAAAAAAAAAc=","deviceEtag":"NTk0ODUyODgx","status":"enabled",)"
    R"("statusReason":"provisioned","statusUpdateTime":"0001-01-01T00:00:00Z",)"
    R"("connectionState":"Disconnected","lastActivityTime":"2020-07-17T06:12:26.8402249Z",)"
    R"("cloudToDeviceMessageCount":0,"authenticationType":"sas",)"
    R"("x509Thumbprint":{"primaryThumbprint":null,"secondaryThumbprint":null},"modelId":"",)"
    R"("version":8,"tags":{"deploymentLocation":{"building":"43","floor":"1"},"weights":[0.5,-2,1e+21]},)"
    R"("properties":{"desired":{"telemetryConfig":{"sendFrequency":"5m"},)"
    R"("$metadata":{"$lastUpdated":"2023-10-12T13:38:52.3108419Z","$lastUpdatedVersion":4,)"
    R"("telemetryConfig":{"$lastUpdated":"2023-10-12T13:38:52.3108419Z","$lastUpdatedVersion":4,)"
    R"("sendFrequency":{"$lastUpdated":"2023-10-12T13:38:52.3108419Z","$lastUpdatedVersion":4}}},)"
    R"("$version":4},"reported":{"batteryLevel":55.5,"name":"caf\u00e9 \"north\"",)"
    R"("$metadata":{"$lastUpdated":"2023-10-12T13:38:52.3108419Z",)"
    R"("batteryLevel":{"$lastUpdated":"2023-10-12T13:38:52.3108419Z"}},"$version":1}},)"
    R"("capabilities":{"iotEdge":true},"deviceScope":"ms-azure-iot-edge://devA-638278574807366710",)"
    R"("parentScopes":[]})";

TEST(JsonReaderTest, RoundTripRealisticTwin) {
  Expected<Value> v = ParseJson(kTwin, "twin.json");
  ASSERT_TRUE(v.ok()) << v.error().message;
  std::string expected(kTwin);
  // The only non-canonical spelling in kTwin: ToJson writes U+00E9 as raw UTF-8.
  expected.replace(expected.find("\\u00e9"), 6, "\xC3\xA9");
  EXPECT_EQ(ToJson(*v), expected);
  // And the output reads back to the same value.
  Expected<Value> again = ParseJson(ToJson(*v), "again.json");
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ(*again, *v);
  EXPECT_EQ(v->Find("properties")->Find("reported")->Find("batteryLevel")->as_number(), 55.5);
  EXPECT_EQ(v->FindFolded("TAGS")->FindFolded("deploymentlocation")->Find("building")->as_string(),
            "43");

  // The same twin pretty-printed inside an array, next to a module twin.
  std::string pretty =
      "[\n  " + std::string(kTwin) +
      ",\n  {\"deviceId\": \"devA\", \"moduleId\": \"$edgeAgent\", \"tags\": {}}\n]";
  Expected<TwinSet> set = ReadTwins(pretty, "fleet.json");
  ASSERT_TRUE(set.ok()) << set.error().message;
  ASSERT_EQ(set->devices.size(), 1u);
  ASSERT_EQ(set->modules.size(), 1u);
  EXPECT_EQ(set->devices[0], *v);
  EXPECT_EQ(ToJson(set->modules[0]), R"({"deviceId":"devA","moduleId":"$edgeAgent","tags":{}})");
}

// --- Files ------------------------------------------------------------------------------------

class TempFile {
 public:
  explicit TempFile(std::string_view contents) {
    char name[] = "/tmp/twinq_json_reader_XXXXXX";
    int fd = mkstemp(name);
    EXPECT_GE(fd, 0);
    path_ = name;
    if (fd >= 0) {
      EXPECT_EQ(write(fd, contents.data(), contents.size()), static_cast<ssize_t>(contents.size()));
      close(fd);
    }
  }
  ~TempFile() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(JsonReaderTest, ReadTwinsFile) {
  TempFile good("{\"deviceId\":\"b\"}\n{\"deviceId\":\"a\"}\n");
  Expected<TwinSet> set = ReadTwinsFile(good.path());
  ASSERT_TRUE(set.ok()) << set.error().message;
  EXPECT_EQ(Ids(*set), "a,b|");

  TempFile bad("{\"deviceId\":\"b\"}\n{\"deviceId\":\"b\"}\n");
  set = ReadTwinsFile(bad.path());
  ASSERT_FALSE(set.ok());
  EXPECT_EQ(set.error().message, bad.path() + ":2: duplicate deviceId \"b\" (first at line 1)");

  TempFile empty("");
  set = ReadTwinsFile(empty.path());
  ASSERT_TRUE(set.ok()) << set.error().message;
  EXPECT_EQ(Ids(*set), "|");
}

TEST(JsonReaderTest, ReadTwinsFileErrors) {
  Expected<TwinSet> set = ReadTwinsFile("/nonexistent/dir/fleet.ndjson");
  ASSERT_FALSE(set.ok());
  EXPECT_EQ(set.error().message,
            "/nonexistent/dir/fleet.ndjson: cannot read: No such file or directory");
  set = ReadTwinsFile("/tmp");
  ASSERT_FALSE(set.ok());
  EXPECT_EQ(set.error().message, "/tmp: cannot read: Is a directory");
}

// A regular file is mapped when its last page has room for simdjson's padding after its end,
// read into a padded buffer when it has not (its size a multiple of the page size, or just
// short of one), and a pipe is read in pieces: all three must read the same twins, and a
// document cut off at the very end of a file must be a syntax error, not a read past the end.
TEST(JsonReaderTest, ReadTwinsFileOfEverySizeAgainstThePageSize) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  // Twins, then spaces up to `size` bytes, then `tail` (so the file ends exactly at `size`).
  auto fleet = [](size_t size, std::string_view tail) {
    std::string text = "\xEF\xBB\xBF{\"deviceId\":\"b\",\"tags\":{\"x\":[1,2.5]}}\n";
    for (int i = 0; i < 40; ++i) text += "{\"deviceId\":\"d" + std::to_string(i) + "\"}\n";
    text.append(size - text.size() - tail.size(), ' ');
    text += tail;
    return text;
  };
  for (size_t size : {page - 200, page - 64, page - 63, page - 1, page, page + 1, 2 * page}) {
    SCOPED_TRACE(size);
    std::string text = fleet(size, "{\"deviceId\":\"last\"}");
    ASSERT_EQ(text.size(), size);
    TempFile file(text);
    Expected<TwinSet> from_file = ReadTwinsFile(file.path());
    ASSERT_TRUE(from_file.ok()) << from_file.error().message;
    Expected<TwinSet> from_text = ReadTwins(text, file.path());
    ASSERT_TRUE(from_text.ok()) << from_text.error().message;
    ASSERT_EQ(from_file->devices.size(), 42u);
    for (size_t i = 0; i < from_file->devices.size(); ++i) {
      EXPECT_EQ(ToJson(from_file->devices[i]), ToJson(from_text->devices[i]));
    }
    size_t visited = 0;
    Expected<size_t> n = VisitTwinsFile(file.path(), [&](Value, bool) { ++visited; });
    ASSERT_TRUE(n.ok()) << n.error().message;
    EXPECT_EQ(*n, 42u);
    EXPECT_EQ(visited, 42u);

    std::string cut = fleet(size, "{\"deviceId\":\"la");
    TempFile cut_file(cut);
    Expected<TwinSet> bad = ReadTwinsFile(cut_file.path());
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.error().message, ReadTwins(cut, cut_file.path()).error().message);
    EXPECT_NE(bad.error().message.find(cut_file.path() + ":42:"), std::string::npos)
        << bad.error().message;
  }
}

// VisitTwinsFile with texts: each twin that is a whole document gets its text as the file spells
// it, from '{' to '}' (after a byte order mark, around blank lines, CRLF, several documents on
// one line and one over several lines), a twin inside an array gets none, and the texts stay
// valid after the file is gone for as long as the input handle is kept. The same for a mapped
// file and for one read into memory (its size a multiple of the page size).
TEST(JsonReaderTest, VisitTwinsFileGivesTheTextOfEachDocument) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const std::vector<std::string> docs = {
      R"({"deviceId":"a","tags":{"x":[1,2.50]}})",
      R"({ "deviceId" : "b" ,"n":1e2 })",
      "{\"deviceId\":\"c\",\n  \"tags\":{}}",
      R"({"deviceId":"d","s":"\u00e9\"}"})",
  };
  std::string text = "\xEF\xBB\xBF" + docs[0] + "\r\n\n" + docs[1] + docs[2] + "\n" +
                     R"([{"deviceId":"e"}, {"deviceId":"f"}])" + "\n" + docs[3];
  for (bool read : {false, true}) {
    SCOPED_TRACE(read ? "read" : "mapped");
    std::string contents = text;
    if (read) contents.append(page - contents.size() % page, ' ');
    std::vector<std::pair<std::string, std::string>> seen;  // deviceId, text
    std::shared_ptr<const void> input;
    {
      TempFile file(contents);
      Expected<size_t> n = VisitTwinsFile(
          file.path(),
          [&](const JsonToken* twin, bool module, std::string_view spelled, bool) {
            EXPECT_FALSE(module);
            EXPECT_NE(input, nullptr);
            seen.emplace_back(TokensToValue(twin).Find("deviceId")->as_string(), spelled);
          },
          &input);
      ASSERT_TRUE(n.ok()) << n.error().message;
      EXPECT_EQ(*n, 6u);
    }
    ASSERT_EQ(seen.size(), 6u);
    EXPECT_EQ(seen[0], std::make_pair(std::string("a"), docs[0]));
    EXPECT_EQ(seen[1], std::make_pair(std::string("b"), docs[1]));
    EXPECT_EQ(seen[2], std::make_pair(std::string("c"), docs[2]));
    EXPECT_EQ(seen[3], std::make_pair(std::string("e"), std::string()));
    EXPECT_EQ(seen[4], std::make_pair(std::string("f"), std::string()));
    EXPECT_EQ(seen[5], std::make_pair(std::string("d"), docs[3]));
    EXPECT_NE(input, nullptr);
  }
}

// The texts VisitTwinsFile gives point into the input it keeps alive, after the file is gone.
TEST(JsonReaderTest, VisitTwinsFileTextsLiveAsLongAsTheInput) {
  std::vector<std::string_view> views;
  std::shared_ptr<const void> input;
  {
    TempFile file("{\"deviceId\":\"a\"}\n{\"deviceId\":\"b\",\"v\":2}\n");
    Expected<size_t> n = VisitTwinsFile(
        file.path(),
        [&](const JsonToken*, bool, std::string_view spelled, bool) { views.push_back(spelled); },
        &input);
    ASSERT_TRUE(n.ok()) << n.error().message;
  }
  ASSERT_EQ(views.size(), 2u);
  EXPECT_EQ(views[0], R"({"deviceId":"a"})");
  EXPECT_EQ(views[1], R"({"deviceId":"b","v":2})");
  EXPECT_EQ(views[1].data(), views[0].data() + views[0].size() + 1);  // the file's own bytes
  Expected<size_t> missing = VisitTwinsFile(
      "/nonexistent/x.ndjson", [](const JsonToken*, bool, std::string_view, bool) {}, &input);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().message,
            "/nonexistent/x.ndjson: cannot read: No such file or directory");
}

// The token path (VisitTwins with a TwinTokenSink, the ingest's) accepts exactly the twins the
// Value path accepts, with the same values, and refuses the rest with the same message: unique
// keys (few and many members, nested, escaped), exact integers, depth, ids, document shapes.
TEST(JsonReaderTest, TokensAreTheValuesOfTheSameTwins) {
  std::string many = "{\"deviceId\":\"m\"";
  for (int i = 0; i < 12; ++i) many += ",\"k" + std::to_string(i) + "\":" + std::to_string(i);
  auto nested = [](size_t depth) {
    std::string t = "{\"deviceId\":\"deep\",\"x\":";
    for (size_t i = 1; i < depth; ++i) t += i % 2 ? "[" : "{\"a\":";
    t += "0";
    for (size_t i = depth - 1; i >= 1; --i) t += i % 2 ? "]" : "}";
    return t + "}";
  };
  const std::vector<std::string> inputs = {
      std::string(kTwin),
      "\xEF\xBB\xBF{\"deviceId\":\"a\"}\r\n{\"deviceId\":\"a\",\"moduleId\":\"m\"}",
      R"([{"deviceId":"b","t":[]},{"deviceId":"c","moduleId":"x","t":{}}] {"deviceId":"d"})",
      R"({"deviceId":"n","v":[0,-0,1.5,-2.5e-3,1e300,9007199254740992,-9007199254740992,1E2]})",
      R"({"deviceId":"s","v":["","\u00e9","\ud83d\ude00","a\"b\\c\n\t\u0001/\/"]})",
      R"({"deviceId":"e","o":{"":{"":[[],[{}]]}},"b":[true,false,null]})",
      many + "}",
      many + ",\"k3\":0}",
      R"({"deviceId":"x","o":{"a":1,"b":{"c":1,"c":2}}})",
      R"({"deviceId":"x","a":1,"\u0061":2})",
      R"({"deviceId":"x","deviceId":"y"})",
      R"({"deviceId":"x","n":9007199254740993})",
      R"({"deviceId":"x","n":-9007199254740993})",
      R"({"deviceId":"x","n":18446744073709551615})",
      R"({"deviceId":"x","n":[1,[2,[3,12345678901234567890]]]})",
      R"({"deviceId":"x","n":1e400})",
      nested(kMaxJsonDepth - 1),
      nested(kMaxJsonDepth),
      nested(kMaxJsonDepth + 1),
      R"({"id":"x"})",
      R"({"deviceId":7})",
      R"({"deviceId":""})",
      R"({"deviceId":"x","moduleId":null})",
      R"({"deviceId":"x","moduleId":""})",
      R"({"deviceId":"x"} [1] {"deviceId":"y"})",
      R"({"deviceId":"x"} "s")",
      R"({"deviceId":"x"} {"deviceId":"x"})",
      R"({"deviceId":"x","moduleId":"m"} {"deviceId":"x","moduleId":"m"})",
      "{\"deviceId\":\"x\",\n\"v\":[1,2,}",
      "",
      "  \n ",
  };
  for (const std::string& text : inputs) {
    SCOPED_TRACE(text.substr(0, 120));
    EXPECT_EQ(VisitedAsTokens(text), VisitedAsValues(text));
  }
  // Objects of 9 to 70 members (past the pairwise comparison) whose keys share their length and
  // their first and last 8 bytes, with and without a repeated key at every position.
  for (size_t n : {9, 10, 17, 33, 70}) {
    std::vector<std::string> keys;
    for (size_t i = 0; i < n; ++i) {
      keys.push_back("abcdefgh" + std::string(1, static_cast<char>('A' + i % 26)) +
                     std::string(1, static_cast<char>('a' + i / 26)) + "stuvwxyz");
    }
    auto twin = [&](std::optional<size_t> repeat) {
      std::string t = "{\"deviceId\":\"h\",\"o\":{";
      for (size_t i = 0; i < n; ++i) t += (i ? ",\"" : "\"") + keys[i] + "\":" + std::to_string(i);
      if (repeat) t += ",\"" + keys[*repeat] + "\":0";
      return t + "}}";
    };
    ASSERT_EQ(VisitedAsTokens(twin(std::nullopt)).rfind("d {", 0), 0u);
    EXPECT_EQ(VisitedAsTokens(twin(std::nullopt)), VisitedAsValues(twin(std::nullopt)));
    for (size_t r = 0; r < n; ++r) {
      std::string text = twin(r);
      ASSERT_EQ(VisitedAsTokens(text).rfind("error: t.json:1:", 0), 0u) << text;
      EXPECT_EQ(VisitedAsTokens(text), VisitedAsValues(text));
    }
  }
  // Objects of 2 to 8 members (compared pairwise) whose keys, of 0 to 12 bytes, all have one
  // length and differ in one byte (at each position), with and without a repeated key.
  for (size_t length = 0; length <= 12; ++length) {
    for (size_t at = 0; at < std::max<size_t>(length, 1); ++at) {
      for (size_t n = 2; n <= 8; ++n) {
        std::vector<std::string> keys;
        for (size_t i = 0; i < n; ++i) {
          std::string key(length, 'k');
          if (length != 0) key[at] = static_cast<char>('a' + i);
          keys.push_back(key);
        }
        if (length == 0) keys.resize(1);  // one empty key, repeated below
        auto twin = [&](std::optional<size_t> repeat) {
          std::string t = "{\"deviceId\":\"p\",\"o\":{";
          for (size_t i = 0; i < keys.size(); ++i) {
            t += (i ? ",\"" : "\"") + keys[i] + "\":" + std::to_string(i);
          }
          if (repeat) t += ",\"" + keys[*repeat] + "\":0";
          return t + "}}";
        };
        SCOPED_TRACE(twin(std::nullopt));
        EXPECT_EQ(VisitedAsTokens(twin(std::nullopt)).rfind("d {", 0), 0u);
        for (size_t r = 0; r < keys.size(); ++r) {
          std::string text = twin(r);
          ASSERT_EQ(VisitedAsTokens(text).rfind("error: t.json:1:", 0), 0u) << text;
          EXPECT_EQ(VisitedAsTokens(text), VisitedAsValues(text));
        }
      }
    }
  }
  // Keys of different lengths whose bytes make the same word (the same first and last bytes).
  for (std::string_view t : {R"({"deviceId":"w","o":{"a":1,"aa":2,"aaa":3,"":4}})",
                             R"({"deviceId":"w","o":{"abcd":1,"abcdabcd":2,"abcdXabcd":3}})"}) {
    EXPECT_EQ(VisitedAsTokens(t).rfind("d {", 0), 0u) << t;
  }
  // Some are accepted and some refused, both ways.
  EXPECT_EQ(VisitedAsTokens(inputs[7]).rfind("error: t.json:1:", 0), 0u);
  EXPECT_EQ(VisitedAsTokens(inputs[2]).rfind("d {\"deviceId\":\"b\",\"t\":[]}\nm ", 0), 0u);
}

// `text` with 1 to `max_edits` random bytes of `alphabet` written over, inserted or erased.
std::string Mutated(std::string text, std::mt19937& rng, std::string_view alphabet, int max_edits) {
  int edits = 1 + static_cast<int>(rng() % static_cast<unsigned>(max_edits));
  for (int k = 0; k < edits; ++k) {
    size_t at = rng() % text.size();
    char c = alphabet[rng() % alphabet.size()];
    switch (rng() % 3) {
      case 0:
        text[at] = c;
        break;
      case 1:
        text.insert(text.begin() + static_cast<std::ptrdiff_t>(at), c);
        break;
      default:
        text.erase(at, 1);
    }
  }
  return text;
}

// The token path reads an NDJSON line with simdjson's On-Demand API and leaves to the DOM
// parser whatever On-Demand might read differently. What On-Demand takes, the DOM (ParseJson)
// takes too, with the same print; what the DOM refuses, On-Demand leaves to it. It takes
// ordinary twins (else every line would be parsed twice), and each line below, and each of
// many mutated lines, ends the same way as tokens and as values.
TEST(JsonReaderTest, OnDemandTakesALineOnlyAsTheDomReadsIt) {
  const std::vector<std::string> taken = {
      std::string(kTwin),
      R"({"deviceId":"n","v":[0,-0,1.5,-2.5e-3,1e300,9007199254740992,-9007199254740992,1E2]})",
      R"({"deviceId":"s","v":["","\u00e9","é","\ud83d\ude00","a\"b\\c\n\t\u0001/\/"],"\u0061b":1})",
      R"({"deviceId":"e","o":{"":{"":[[],[{}]]}},"b":[true,false,null],"m":"x"})",
      "{ \"deviceId\" : \"w\" , \"t\" : [ 1 , { } ] }  \r",
      // Numbers of more than 19 digits (simdjson 3.0.1's get_number() read the decimals as 0).
      R"({"deviceId":"d","v":[9000000.0000000000000003,12345678901234567890.5,1e-1000000000000]})",
      R"({"deviceId":"d","v":[100000000000000000000000000000e-10,-0.00000000000000000001234567]})",
      R"({"deviceId":"d","v":[-1234567890123456,1.2345678901234567890123e5,0.30000000000000004]})",
  };
  const std::vector<std::string> left = {
      // Not JSON, or not one object.
      R"({"deviceId":"x","v":[1,2)",
      R"({"deviceId":"x")",
      R"({"deviceId":"x"}})",
      R"({"deviceId":"x"}x)",
      R"({"deviceId":"x"} {})",
      R"({"deviceId":"x"} 1)",
      R"({"deviceId":"x",})",
      R"({"deviceId":"x" "a":1})",
      R"({"deviceId":"x","a"})",
      R"({"deviceId":"x","a":})",
      R"({"deviceId":"x","a":[1,]})",
      R"({"deviceId":"x","a":[,1]})",
      R"({"deviceId":"x","a":[1 2]})",
      R"({"deviceId":"x","a":{"b" 1}})",
      R"({"deviceId":"x","a":{"b":1)",
      R"({"deviceId":"x","a":tru})",
      R"({"deviceId":"x","a":truex})",
      R"({"deviceId":"x","a":nul})",
      R"({"deviceId":"x","a":nulll})",
      R"({"deviceId":"x","a":fals})",
      R"({"deviceId":"x","a":01})",
      R"({"deviceId":"x","a":1.})",
      R"({"deviceId":"x","a":-})",
      R"({"deviceId":"x","a":.5})",
      R"({"deviceId":"x","a":1e})",
      R"({"deviceId":"x","a":+1})",
      R"({"deviceId":"x","a":0x1})",
      R"({"deviceId":"x","a":"\x"})",
      R"({"deviceId":"x","a":"\u12"})",
      R"({"deviceId":"x","a":"\ud800"})",
      R"({"deviceId":"x","a\q":1})",
      R"({"deviceId":"x","a":"b)",
      R"({"deviceId":"x",'a':1})",
      "{\"deviceId\":\"x\",\"a\":\"\x01\"}",
      "{\"deviceId\":\"x\",\"a\":\"\t\"}",
      "{\"deviceId\":\"x\",\"a\":\"\xff\"}",
      "{\"deviceId\":\"x\",\"a\":\"\xed\xa0\x80\"}",
      "{\"deviceId\":\"x\",\"a\":\"\xc3\"}",
      "{\"deviceId\":\"x\",\"\xc3\":1}",
      // JSON, but not a twin's value (the DOM names the reason), or read by the DOM alone.
      R"({"deviceId":"x","a":9007199254740993})",
      R"({"deviceId":"x","a":18446744073709551615})",
      R"({"deviceId":"x","a":123456789012345678901234567890})",
      R"({"deviceId":"x","a":-9223372036854775809})",
      R"({"deviceId":"x","a":1e400})",
      R"({"deviceId":"x","a":1,"a":2})",
      R"({"deviceId":"x","o":{"b":1,"\u0062":2}})",
      R"([{"deviceId":"x"}])",
      R"("s")",
      "{",
  };
  // `line` without the whitespace after it, which On-Demand's `printed` is about.
  auto trimmed = [](std::string_view line) {
    while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.remove_suffix(1);
    return std::string(line);
  };
  for (const std::vector<std::string>* lines : {&taken, &left}) {
    for (const std::string& line : *lines) {
      SCOPED_TRACE(line);
      std::optional<OnDemandLine> read = OnDemandTokensForTesting(line);
      EXPECT_EQ(read.has_value(), lines == &taken);
      Expected<Value> dom = ParseJson(line, "t.json");
      if (read) {
        ASSERT_TRUE(dom.ok()) << dom.error().message;
        EXPECT_EQ(read->print, ToJson(*dom));
        if (read->printed) {
          EXPECT_EQ(trimmed(line), read->print);
        }
      }
      EXPECT_EQ(VisitedAsTokens(line), VisitedAsValues(line));
    }
  }
  // As it reads a line, On-Demand finds whether the line is spelled as the tokens' print: it
  // says so for these, and not for a line with whitespace between tokens, an escape (even where
  // the print has the same), or a number spelled otherwise than printed.
  const std::vector<std::pair<std::string, bool>> spellings = {
      {R"({"deviceId":"p","a":[1,-2,0,1.5,-0.25,1e+300,true,false,null,"",{},[]],"s":"a b"})",
       true},
      {R"({"deviceId":"p","o":{"a":{"b":[[],[[1]]],"c":{}},"d":null},"e":"é"})", true},
      {R"({"deviceId":"p"}  )", true},  // (whitespace after the document is not its own)
      {R"({"deviceId":"p","a":-0})", false},
      {R"({"deviceId":"p","a":1.50})", false},
      {R"({"deviceId":"p","a":1E2})", false},
      {R"({"deviceId":"p","a":100.0})", false},
      {R"({"deviceId":"p","a":1e300})", false},
      {R"({"deviceId":"p","s":"a\"b"})", false},
      {R"({"deviceId":"p","s":"\u0041"})", false},
      {R"({"deviceId":"p","\u0061":1})", false},
      {R"({"deviceId":"p","a\"":1})", false},
      {R"({ "deviceId":"p"})", false},
      {R"({"deviceId" :"p"})", false},
      {R"({"deviceId": "p"})", false},
      {R"({"deviceId":"p" })", false},
      {R"({"deviceId":"p" ,"a":1})", false},
      {R"({"deviceId":"p", "a":1})", false},
      {R"({"deviceId":"p","a":1 })", false},
      {R"({"deviceId":"p","a":-1 ,"b":2})", false},
      {R"({"deviceId":"p","a":1.5 ,"b":2})", false},
      {R"({"deviceId":"p","a":true })", false},
      {R"({"deviceId":"p","a":null ,"b":2})", false},
      {R"({"deviceId":"p","a":[ ]})", false},
      {R"({"deviceId":"p","a":{ }})", false},
      {R"({"deviceId":"p","a":[ 1]})", false},
      {R"({"deviceId":"p","a":[1 ,2]})", false},
      {R"({"deviceId":"p","a":[1, 2]})", false},
      {R"({"deviceId":"p","a":[[1] ]})", false},
      {R"({"deviceId":"p","a":[[1] ,2]})", false},
      {R"({"deviceId":"p","a":{"b":1} ,"c":2})", false},
      {R"({"deviceId":"p","a":{"b":1 }})", false},
      {"{\"deviceId\":\"p\",\"a\":\"x\"\t}", false},
  };
  for (const auto& [line, printed] : spellings) {
    SCOPED_TRACE(line);
    std::optional<OnDemandLine> read = OnDemandTokensForTesting(line);
    ASSERT_TRUE(read.has_value());
    EXPECT_EQ(read->printed, printed);
    if (printed) {
      EXPECT_EQ(trimmed(line), read->print);
    }
  }
  // Mutated twins: whatever On-Demand takes, the DOM reads the same.
  std::mt19937 rng(777);
  const std::string alphabet = "{}[]\",:\\ 0123456789-+.eEtrufalsn\x01\xC3\xA9\xFF";
  const std::vector<std::string> bases = {taken[0], taken[1], taken[2], taken[3]};
  size_t read_count = 0, left_count = 0, printed_count = 0;
  for (int round = 0; round < 8000; ++round) {
    std::string line = Mutated(bases[round % bases.size()], rng, alphabet, 2);
    if (line.find('\n') != std::string::npos) continue;
    std::optional<OnDemandLine> read = OnDemandTokensForTesting(line);
    Expected<Value> dom = ParseJson(line, "t.json");
    if (read) {
      ++read_count;
      ASSERT_TRUE(dom.ok()) << line << "\n" << dom.error().message;
      EXPECT_EQ(read->print, ToJson(*dom)) << line;
      if (read->printed) {
        EXPECT_EQ(trimmed(line), read->print);
      }
      printed_count += read->printed;
    } else {
      ++left_count;
    }
  }
  EXPECT_GT(read_count, 1000u);
  EXPECT_GT(left_count, 2000u);
  EXPECT_GT(printed_count, 200u);
}

// AppendJson(t) with every string (keys too) put between quotes as it is, unescaped: what a
// matcher that skipped the escape test would take for the print.
void AppendUnescaped(const JsonToken* t, std::string* out) {
  if (t->kind == ValueKind::kString) {
    *out += '"' + std::string(t->string) + '"';
  } else if (t->kind == ValueKind::kArray || t->kind == ValueKind::kObject) {
    const bool object = t->kind == ValueKind::kObject;
    out->push_back(object ? '{' : '[');
    const JsonToken* c = t + 1;
    for (uint32_t i = 0; i < t->size; ++i, c += c->span) {
      if (i != 0) out->push_back(',');
      if (object) *out += '"' + std::string(c->key) + "\":";
      AppendUnescaped(c, out);
    }
    out->push_back(object ? '}' : ']');
  } else {
    AppendJson(t, out);
  }
}

// SpellsAsJson(tokens, text) is the print-and-compare AppendJson(tokens) == text without the
// print: checked against it on every twin of hand-written inputs, of the compact print of each,
// of that print cut short or extended, of the print with its strings unescaped, and of mutated
// prints.
TEST(JsonReaderTest, SpellsAsJsonAgreesWithPrintingAndComparing) {
  size_t same = 0, different = 0, source_same = 0, source_different = 0, known_printed = 0;
  // SourceSpellsAsJson on every twin of `text`, with the tokens read from the text it is given.
  auto check_source = [&](const std::string& text) {
    (void)VisitTwins(
        text, "t.json", [&](const JsonToken* twin, bool, std::string_view given, bool known) {
          if (given.empty()) return;  // a twin inside an array has no text of its own
          std::string printed;
          AppendJson(twin, &printed);
          EXPECT_EQ(SourceSpellsAsJson(twin, given), printed == given) << "source " << given;
          // What the reader found as it read the text (On-Demand, a line of its own).
          if (known) {
            EXPECT_EQ(given, printed) << "known printed";
          }
          ++(printed == given ? source_same : source_different);
          known_printed += known;
        });
  };
  // Every twin of `text` (with the text the file gives it, or `spelled` when set).
  auto check = [&](const std::string& text, std::optional<std::string> spelled = std::nullopt) {
    (void)VisitTwins(
        text, "t.json", [&](const JsonToken* twin, bool, std::string_view given, bool) {
          std::string printed;
          AppendJson(twin, &printed);
          std::vector<std::string> candidates = {std::string(given), printed};
          if (spelled) candidates.push_back(*spelled);
          candidates.emplace_back();
          AppendUnescaped(twin, &candidates.back());
          if (!printed.empty()) {
            candidates.push_back(printed.substr(0, printed.size() - 1));
            candidates.push_back(printed + " ");
            candidates.push_back(printed + "}");
            candidates.push_back(" " + printed);
          }
          for (const std::string& c : candidates) {
            bool expected = printed == c;
            EXPECT_EQ(SpellsAsJson(twin, c), expected) << "tokens of " << printed << "\ntext " << c;
            ++(expected ? same : different);
            if (c != given) check_source(c);  // (`given` is checked here, below)
          }
          EXPECT_EQ(SourceSpellsAsJson(twin, given), printed == given) << "source " << given;
          ++(printed == given ? source_same : source_different);
        });
  };
  const std::vector<std::string> inputs = {
      std::string(kTwin),
      R"({"deviceId":"n","v":[0,-0,1.5,-2.5e-3,1e300,9007199254740992,1E2,1.0,0.10,-1.50]})",
      R"({"deviceId":"n","v":[0,0,1.5,-0.0025,1e+300,9007199254740992,100,1,0.1,-1.5]})",
      R"({"deviceId":"s","v":["","\u00e9","é","\ud83d\ude00","a\"b\\c\n\t\u0001/\/"]})",
      R"({"deviceId":"s","v":["a\"b","a\u0022b","\\","\\\\","\"","\b\f\r\u001f\u007f"]})",
      R"({"deviceId":"e","o":{"":{"":[[],[{}]]}},"b":[true,false,null]})",
      "{ \"deviceId\" : \"w\" , \"t\" : [ 1 , { } ] }",
      "{\"deviceId\":\"w\",\"t\":[1,{}]}\r\n{\"deviceId\":\"v\"}",
      R"([{"deviceId":"b","t":[]},{"deviceId":"c","moduleId":"x","t":{}}])",
      R"({"deviceId":"k","\u0061":1,"a\"":2,"tab\t":3})",
  };
  for (const std::string& text : inputs) check(text);
  // Strings of every length up to 20 with a character that needs an escape at every position
  // (the word-at-a-time comparison's whole words, last overlapping word and short tails).
  for (size_t n = 1; n <= 20; ++n) {
    for (size_t at = 0; at < n; ++at) {
      for (std::string_view esc : {"\\\"", "\\\\", "\\n", "\\u0001"}) {
        std::string v = std::string(at, 'a') + std::string(esc) + std::string(n - at - 1, 'b');
        check(R"({"deviceId":"l","v":")" + v + R"(",")" + v + R"(":1})");
      }
    }
  }
  // A key or string whose bytes are right but whose quotes are not.
  check(R"({"deviceId":"q","ab":"cd"})", R"({"deviceId":"q","ab":"cd'})");
  check(R"({"deviceId":"q","ab":"cd"})", R"({"deviceId":"q","ab:"cd"})");
  check(R"({"deviceId":"q","ab":"cd"})", R"({"deviceId":"q","ab","cd"})");
  check(R"({"deviceId":"q","a":[1,2]})", R"({"deviceId":"q","a":[1,2}})");
  check(R"({"deviceId":"q","a":[1,2]})", R"({"deviceId":"q","a":[1;2]})");
  // Mutated compact prints (mostly still valid JSON: digits, letters, spaces, quotes).
  std::mt19937 rng(4242);
  const std::string alphabet = " 0123456789.eE-+\"\\/ute{}[],:abn";
  for (int round = 0; round < 4000; ++round) {
    check(Mutated(inputs[round % inputs.size()], rng, alphabet, 2));
  }
  // Number literals of every form, integers (those within 2^53 are matched by their digits) and
  // doubles, alone and twice in an array.
  for (std::string_view n : {"0", "-0", "7", "-7", "10", "-120", "9007199254740991",
                             "-9007199254740991", "9007199254740992", "-9007199254740992", "1E2",
                             "1e2", "100", "1.0", "0.5", "-0.0", "12345678901234567"}) {
    check(R"({"deviceId":"i","v":)" + std::string(n) + "}");
    check(R"({"deviceId":"i","v":[)" + std::string(n) + "," + std::string(n) + "]}");
  }
  // (Most mutations make the input invalid, and its twins are not visited.)
  EXPECT_GT(same, 1000u);
  EXPECT_GT(different, 4000u);
  EXPECT_GT(source_same, 1000u);
  EXPECT_GT(source_different, 500u);
  EXPECT_GT(known_printed, 1000u);  // (the reader found these as it read them)
}

// SourceSpellsAsJson takes a string without backslashes to be spelled as it is printed: it
// relies on the reader refusing a control character that is not escaped.
TEST(JsonReaderTest, AControlCharacterInAStringMustBeEscaped) {
  for (int c = 0; c < 0x20; ++c) {
    std::string text = std::string(R"({"deviceId":"a)") + static_cast<char>(c) + R"(b"})";
    size_t visited = 0;
    Expected<size_t> n = VisitTwins(
        text, "t.json", [&](const JsonToken*, bool, std::string_view, bool) { ++visited; });
    EXPECT_FALSE(n.ok()) << c;
    EXPECT_EQ(visited, 0u) << c;
  }
}

TEST(JsonReaderTest, ReadTwinsFileFromAPipe) {
  char dir[] = "/tmp/twinq_json_reader_fifo_XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string fifo = std::string(dir) + "/twins";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  std::string text;
  for (int i = 0; i < 5000; ++i) text += "{\"deviceId\":\"d" + std::to_string(i) + "\"}\n";
  std::thread writer([&] {
    int fd = open(fifo.c_str(), O_WRONLY);
    if (fd < 0) return;
    size_t done = 0;
    while (done < text.size()) {
      ssize_t n = write(fd, text.data() + done, text.size() - done);
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    close(fd);
  });
  Expected<TwinSet> set = ReadTwinsFile(fifo);
  writer.join();
  std::remove(fifo.c_str());
  rmdir(dir);
  ASSERT_TRUE(set.ok()) << set.error().message;
  EXPECT_EQ(set->devices.size(), 5000u);
}

// --- Robustness -------------------------------------------------------------------------------

// True when `message` ends with one of simdjson's own error texts, i.e. the scalar diagnoser did
// not find the problem simdjson reported (a disagreement between the two).
bool IsFallbackMessage(const std::string& message) {
  for (int code = 1; code < simdjson::NUM_ERROR_CODES; ++code) {
    std::string_view text = simdjson::error_message(static_cast<simdjson::error_code>(code));
    if (message.size() >= text.size() &&
        message.compare(message.size() - text.size(), text.size(), text) == 0) {
      return true;
    }
  }
  return false;
}

TEST(JsonReaderTest, MutatedInputsNeverCrashAndAreAlwaysLocated) {
  std::string base = std::string(kTwin) + "\n" +
                     R"({"deviceId":"m","moduleId":"x","n":[1,-2.5e3,true,null,"\ud83d\ude00"]})";
  const std::string alphabet = "{}[]\",:\\ \n0123456789-+.eEtrufalsn\x01\x7f\xC3\xA9\xFF\xED";
  const int kRounds =
      std::getenv("TWINQ_MUTATION_ROUNDS") ? std::atoi(std::getenv("TWINQ_MUTATION_ROUNDS")) : 3000;
  std::mt19937 rng(12345);
  auto mutate = [&](std::string text) { return Mutated(std::move(text), rng, alphabet, 3); };
  int errors = 0;
  int parsed = 0;
  for (int round = 0; round < kRounds; ++round) {
    std::string text = mutate(base);
    Expected<TwinSet> set = ReadTwins(text, "m.json");
    if (!set.ok()) {
      ++errors;
      EXPECT_EQ(set.error().message.rfind("m.json:", 0), 0u) << set.error().message;
      EXPECT_FALSE(IsFallbackMessage(set.error().message))
          << set.error().message << "\ninput: " << text;
    }
    EXPECT_EQ(VisitedAsTokens(text), VisitedAsValues(text)) << "input: " << text;
    text = mutate(std::string(kTwin));
    EXPECT_EQ(VisitedAsTokens(text), VisitedAsValues(text)) << "input: " << text;
    Expected<Value> value = ParseJson(text, "m.json");
    if (!value.ok()) {
      EXPECT_EQ(value.error().message.rfind("m.json:", 0), 0u) << value.error().message;
      EXPECT_FALSE(IsFallbackMessage(value.error().message))
          << value.error().message << "\ninput: " << text;
    } else {
      // Whatever parses must print and read back to the same value.
      ++parsed;
      Expected<Value> again = ParseJson(ToJson(*value), "again");
      ASSERT_TRUE(again.ok()) << again.error().message;
      EXPECT_EQ(*again, *value);
    }
  }
  EXPECT_GT(parsed, 100);
  EXPECT_GT(errors, 1000);
}

}  // namespace
}  // namespace twinq
