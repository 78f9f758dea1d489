#include "engine/common/json_reader.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <simdjson.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <set>
#include <utility>

namespace twinq {
namespace {

namespace dom = simdjson::dom;
namespace ondemand = simdjson::ondemand;

static_assert(kMaxJsonDepth == simdjson::DEFAULT_MAX_DEPTH,
              "the diagnoser must enforce the same depth limit as simdjson");

constexpr int64_t kMaxExactInteger = int64_t{1} << 53;
constexpr std::string_view kMaxExactIntegerText = "9007199254740992";  // 2^53

// ---------------------------------------------------------------------------------------------
// Small text helpers.

bool IsJsonSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
// Characters that can continue a number or literal token (anything else ends it).
bool IsTokenChar(char c) {
  return IsDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' || c == '+' ||
         c == '-';
}
bool IsStructural(char c) {
  return c == '{' || c == '}' || c == '[' || c == ']' || c == '"' || c == ',' || c == ':';
}

// Length of the valid UTF-8 sequence starting at s[i] (a non-ASCII lead byte), or 0 when the
// bytes there are not valid UTF-8 (overlong forms, surrogates and values above U+10FFFF included).
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  auto at = [&](size_t k) -> unsigned { return static_cast<unsigned char>(s[k]); };
  auto cont = [&](size_t k, unsigned lo = 0x80, unsigned hi = 0xBF) {
    return k < s.size() && at(k) >= lo && at(k) <= hi;
  };
  unsigned c = at(i);
  if (c >= 0xC2 && c <= 0xDF) return cont(i + 1) ? 2 : 0;
  if (c == 0xE0) return cont(i + 1, 0xA0) && cont(i + 2) ? 3 : 0;
  if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) return cont(i + 1) && cont(i + 2) ? 3 : 0;
  if (c == 0xED) return cont(i + 1, 0x80, 0x9F) && cont(i + 2) ? 3 : 0;
  if (c == 0xF0) return cont(i + 1, 0x90) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  if (c >= 0xF1 && c <= 0xF3) return cont(i + 1) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  if (c == 0xF4) return cont(i + 1, 0x80, 0x8F) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  return 0;
}

std::string Quoted(std::string_view s) {
  std::string out;
  AppendJsonString(s, &out);
  return out;
}

// A token shown in a message, shortened when long.
std::string Shown(std::string_view token) {
  constexpr size_t kMax = 40;
  if (token.size() <= kMax) return std::string(token);
  return fmt::format("{}...", token.substr(0, kMax));
}

// The reason given for an integer literal that a double cannot hold exactly.
std::string OutOfRangeInteger(std::string_view digits) {
  return fmt::format("integer {} is outside the exact range [-2^53, 2^53] of a double", digits);
}

std::string_view KindName(dom::element_type t) {
  switch (t) {
    case dom::element_type::ARRAY:
      return ValueKindName(ValueKind::kArray);
    case dom::element_type::OBJECT:
      return ValueKindName(ValueKind::kObject);
    case dom::element_type::INT64:
    case dom::element_type::UINT64:
    case dom::element_type::DOUBLE:
      return ValueKindName(ValueKind::kNumber);
    case dom::element_type::STRING:
      return ValueKindName(ValueKind::kString);
    case dom::element_type::BOOL:
      return ValueKindName(ValueKind::kBool);
    case dom::element_type::NULL_VALUE:
      return ValueKindName(ValueKind::kNull);
  }
  return "?";
}

struct Location {
  size_t line;
  size_t column;
};

// 1-based line and byte column of `offset` in `text`.
Location LocationOf(std::string_view text, size_t offset) {
  offset = std::min(offset, text.size());
  std::string_view before = text.substr(0, offset);
  size_t line = 1 + static_cast<size_t>(std::count(before.begin(), before.end(), '\n'));
  size_t last_newline = before.rfind('\n');
  size_t column = last_newline == std::string_view::npos ? offset + 1 : offset - last_newline;
  return {line, column};
}

std::string_view StripBom(std::string_view text) {
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
  return text;
}

// ---------------------------------------------------------------------------------------------
// Diagnoser: a strict, scalar JSON validator used only after simdjson (or the conversion below)
// rejected a document. It accepts exactly what the fast path accepts and reports the first
// problem in text order with its byte offset. Iterative, so any nesting is safe.

struct Problem {
  size_t offset;
  std::string reason;
};

class Diagnoser {
 public:
  // Validates text[begin, end) as exactly one JSON value with optional surrounding whitespace.
  Diagnoser(std::string_view text, size_t begin, size_t end)
      : text_(text.substr(0, end)), pos_(begin) {}

  std::optional<Problem> Run();

 private:
  enum class State { kValue, kValueOrClose, kKeyOrClose, kKey, kAfterValue };
  struct Frame {
    bool object;
    std::set<std::string> keys;
  };

  bool AtEnd() const { return pos_ >= text_.size(); }
  char Peek() const { return text_[pos_]; }
  void SkipSpace() {
    while (!AtEnd() && IsJsonSpace(Peek())) ++pos_;
  }
  std::string_view TokenAt(size_t at) const {
    size_t end = at;
    while (end < text_.size() && IsTokenChar(text_[end])) ++end;
    return text_.substr(at, end - at);
  }
  std::string Describe(size_t at) const;
  Problem InvalidUtf8(size_t at) const {
    return {at,
            fmt::format("invalid UTF-8 (byte 0x{:02x})", static_cast<unsigned char>(text_[at]))};
  }
  // "expected X, found Y" at the current position (or an invalid UTF-8 report).
  Problem Unexpected(std::string_view expected) const;
  bool Hex4(size_t at, uint32_t* out) const;

  std::optional<Problem> ScanString(std::string* out);
  std::optional<Problem> ScanNumber();
  std::optional<Problem> ScanLiteral();

  std::string_view text_;
  size_t pos_;
};

std::string Diagnoser::Describe(size_t at) const {
  if (at >= text_.size()) return "end of input";
  unsigned char c = static_cast<unsigned char>(text_[at]);
  if (c >= 0x20 && c < 0x7F) return fmt::format("'{}'", static_cast<char>(c));
  if (c >= 0x80) {
    size_t n = Utf8SequenceLength(text_, at);
    if (n > 0) return fmt::format("'{}'", text_.substr(at, n));
  }
  return fmt::format("byte 0x{:02x}", c);
}

Problem Diagnoser::Unexpected(std::string_view expected) const {
  if (!AtEnd() && static_cast<unsigned char>(Peek()) >= 0x80 &&
      Utf8SequenceLength(text_, pos_) == 0) {
    return InvalidUtf8(pos_);
  }
  return {pos_, fmt::format("expected {}, found {}", expected, Describe(pos_))};
}

bool Diagnoser::Hex4(size_t at, uint32_t* out) const {
  if (at + 4 > text_.size()) return false;
  uint32_t v = 0;
  for (size_t i = at; i < at + 4; ++i) {
    char c = text_[i];
    uint32_t d;
    if (c >= '0' && c <= '9') {
      d = static_cast<uint32_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      d = static_cast<uint32_t>(c - 'a' + 10);
    } else if (c >= 'A' && c <= 'F') {
      d = static_cast<uint32_t>(c - 'A' + 10);
    } else {
      return false;
    }
    v = v * 16 + d;
  }
  *out = v;
  return true;
}

std::optional<Problem> Diagnoser::ScanString(std::string* out) {
  size_t open = pos_++;
  for (;;) {
    if (AtEnd()) return Problem{open, "unterminated string"};
    unsigned char c = static_cast<unsigned char>(Peek());
    if (c == '"') {
      ++pos_;
      return std::nullopt;
    }
    if (c == '\n')
      return Problem{pos_, "unterminated string (line break before the closing quote)"};
    if (c < 0x20) {
      return Problem{pos_, fmt::format("unescaped control character U+{:04X} in string", c)};
    }
    if (c >= 0x80) {
      size_t n = Utf8SequenceLength(text_, pos_);
      if (n == 0) return InvalidUtf8(pos_);
      if (out != nullptr) out->append(text_.substr(pos_, n));
      pos_ += n;
      continue;
    }
    if (c != '\\') {
      if (out != nullptr) out->push_back(static_cast<char>(c));
      ++pos_;
      continue;
    }
    size_t esc = pos_;
    if (esc + 1 >= text_.size()) return Problem{open, "unterminated string"};
    char e = text_[esc + 1];
    char simple = 0;
    switch (e) {
      case '"':
      case '\\':
      case '/':
        simple = e;
        break;
      case 'b':
        simple = '\b';
        break;
      case 'f':
        simple = '\f';
        break;
      case 'n':
        simple = '\n';
        break;
      case 'r':
        simple = '\r';
        break;
      case 't':
        simple = '\t';
        break;
      case 'u':
        break;
      default:
        if (e >= 0x20 && e < 0x7F) {
          return Problem{esc, fmt::format("invalid escape sequence '\\{}' in string", e)};
        }
        return Problem{
            esc, fmt::format("invalid escape sequence: '\\' followed by {}", Describe(esc + 1))};
    }
    if (simple != 0) {
      if (out != nullptr) out->push_back(simple);
      pos_ += 2;
      continue;
    }
    uint32_t cp;
    if (!Hex4(esc + 2, &cp)) {
      return Problem{esc, "invalid \\u escape in string (expected 4 hex digits)"};
    }
    pos_ = esc + 6;
    if (cp >= 0xDC00 && cp <= 0xDFFF) {
      return Problem{esc, fmt::format("unpaired surrogate {} in string", text_.substr(esc, 6))};
    }
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      uint32_t low;
      if (pos_ + 1 < text_.size() && text_[pos_] == '\\' && text_[pos_ + 1] == 'u' &&
          Hex4(pos_ + 2, &low) && low >= 0xDC00 && low <= 0xDFFF) {
        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        pos_ += 6;
      } else {
        return Problem{esc, fmt::format("unpaired surrogate {} in string", text_.substr(esc, 6))};
      }
    }
    if (out != nullptr) AppendUtf8(cp, out);
  }
}

std::optional<Problem> Diagnoser::ScanNumber() {
  size_t start = pos_;
  std::string_view tok = TokenAt(start);
  // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
  size_t i = 0;
  auto digits = [&] {
    size_t from = i;
    while (i < tok.size() && IsDigit(tok[i])) ++i;
    return i - from;
  };
  bool ok = true;
  if (i < tok.size() && tok[i] == '-') ++i;
  size_t int_begin = i;
  size_t int_digits = digits();
  if (int_digits == 0 || (int_digits > 1 && tok[int_begin] == '0')) ok = false;
  std::string_view int_part = tok.substr(int_begin, int_digits);
  std::string_view frac_part;
  int64_t exponent = 0;
  bool integer = true;
  if (ok && i < tok.size() && tok[i] == '.') {
    integer = false;
    ++i;
    size_t frac_begin = i;
    if (digits() == 0) ok = false;
    frac_part = tok.substr(frac_begin, i - frac_begin);
  }
  if (ok && i < tok.size() && (tok[i] == 'e' || tok[i] == 'E')) {
    integer = false;
    ++i;
    bool negative = false;
    if (i < tok.size() && (tok[i] == '+' || tok[i] == '-')) negative = tok[i++] == '-';
    size_t exp_begin = i;
    if (digits() == 0) ok = false;
    for (size_t k = exp_begin; k < i; ++k) {
      exponent = std::min<int64_t>(exponent * 10 + (tok[k] - '0'), int64_t{1} << 40);
    }
    if (negative) exponent = -exponent;
  }
  if (!ok || i != tok.size()) return Problem{start, fmt::format("invalid number '{}'", Shown(tok))};
  pos_ += tok.size();

  if (integer) {
    if (int_part.size() > kMaxExactIntegerText.size() ||
        (int_part.size() == kMaxExactIntegerText.size() && int_part > kMaxExactIntegerText)) {
      return Problem{start, OutOfRangeInteger(Shown(tok))};
    }
    return std::nullopt;
  }
  double d;
  if (std::from_chars(tok.data(), tok.data() + tok.size(), d).ec ==
      std::errc::result_out_of_range) {
    // Overflow or underflow: decide by the decimal exponent of the leading significant digit.
    // Underflow rounds to zero (as simdjson does); overflow is an error.
    int64_t lead;
    if (int_part != "0") {
      lead = static_cast<int64_t>(int_part.size()) - 1;
    } else {
      size_t zeros = frac_part.find_first_not_of('0');
      if (zeros == std::string_view::npos) return std::nullopt;  // zero
      lead = -static_cast<int64_t>(zeros) - 1;
    }
    if (lead + exponent > 0) {
      return Problem{start, fmt::format("number {} is out of the range of a double", Shown(tok))};
    }
  }
  return std::nullopt;
}

std::optional<Problem> Diagnoser::ScanLiteral() {
  std::string_view tok = TokenAt(pos_);
  if (tok != "true" && tok != "false" && tok != "null") {
    return Problem{pos_, fmt::format("invalid literal '{}'", Shown(tok))};
  }
  pos_ += tok.size();
  return std::nullopt;
}

std::optional<Problem> Diagnoser::Run() {
  std::vector<Frame> stack;
  State state = State::kValue;
  for (;;) {
    SkipSpace();
    switch (state) {
      case State::kValueOrClose:
        if (!AtEnd() && Peek() == ']') {
          ++pos_;
          stack.pop_back();
          state = State::kAfterValue;
          continue;
        }
        [[fallthrough]];
      case State::kValue: {
        if (AtEnd()) return Unexpected("a value");
        char c = Peek();
        if (c == '{' || c == '[') {
          if (stack.size() >= kMaxJsonDepth) {
            return Problem{pos_, fmt::format("nesting deeper than {} levels", kMaxJsonDepth)};
          }
          stack.push_back(Frame{c == '{', {}});
          ++pos_;
          state = c == '{' ? State::kKeyOrClose : State::kValueOrClose;
          continue;
        }
        std::optional<Problem> p;
        if (c == '"') {
          p = ScanString(nullptr);
        } else if (c == '-' || IsDigit(c)) {
          p = ScanNumber();
        } else if (c == 't' || c == 'f' || c == 'n') {
          p = ScanLiteral();
        } else {
          return Unexpected("a value");
        }
        if (p) return p;
        state = State::kAfterValue;
        continue;
      }
      case State::kKeyOrClose:
        if (!AtEnd() && Peek() == '}') {
          ++pos_;
          stack.pop_back();
          state = State::kAfterValue;
          continue;
        }
        if (AtEnd() || Peek() != '"') return Unexpected("a string key or '}'");
        [[fallthrough]];
      case State::kKey: {
        if (AtEnd() || Peek() != '"') return Unexpected("a string key");
        size_t key_at = pos_;
        std::string key;
        if (auto p = ScanString(&key)) return p;
        if (!stack.back().keys.insert(key).second) {
          return Problem{key_at, fmt::format("duplicate key {} in object", Quoted(key))};
        }
        SkipSpace();
        if (AtEnd() || Peek() != ':') {
          return Unexpected(fmt::format("':' after key {}", Quoted(key)));
        }
        ++pos_;
        state = State::kValue;
        continue;
      }
      case State::kAfterValue: {
        if (stack.empty()) {
          if (AtEnd()) return std::nullopt;
          return Unexpected("end of input after the JSON value");
        }
        bool object = stack.back().object;
        if (!AtEnd() && Peek() == ',') {
          ++pos_;
          state = object ? State::kKey : State::kValue;
          continue;
        }
        if (!AtEnd() && Peek() == (object ? '}' : ']')) {
          ++pos_;
          stack.pop_back();
          continue;
        }
        return Unexpected(object ? "',' or '}' after object member"
                                 : "',' or ']' after array element");
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Conversion of a simdjson DOM element into a Value, with the checks simdjson does not make
// (duplicate keys, integers beyond 2^53). On failure `reason()` says why; the caller then runs
// the Diagnoser for the exact position. Iterative (an explicit stack of frames): recursion 1024
// levels deep overflows an 8 MB stack in sanitizer builds.

class Converter {
 public:
  bool Convert(dom::element root, Value* out);
  const std::string& reason() const { return reason_; }

 private:
  // An array or object being built; iterative, so that deep nesting cannot exhaust the stack.
  struct Frame {
    bool is_object = false;
    dom::array::iterator array_at, array_end;
    dom::object::iterator object_at, object_end;
    Array array;
    Object object;
  };
  enum class Begun { kError, kScalar, kContainer };

  // Converts a scalar into *scalar, or pushes a frame for a container.
  Begun Begin(dom::element e, Value* scalar);
  bool CheckUniqueKeys(const Object& members);

  std::string reason_;
  std::vector<Frame> frames_;
  std::vector<std::string_view> keys_scratch_;
};

bool Converter::CheckUniqueKeys(const Object& members) {
  constexpr size_t kLinearLimit = 8;
  if (members.size() <= kLinearLimit) {
    for (size_t i = 1; i < members.size(); ++i) {
      for (size_t j = 0; j < i; ++j) {
        if (members[i].first == members[j].first) {
          reason_ = fmt::format("duplicate key {} in object", Quoted(members[i].first));
          return false;
        }
      }
    }
    return true;
  }
  // keys_scratch_ is reused across objects; nested objects were checked before this one.
  keys_scratch_.clear();
  for (const Member& m : members) keys_scratch_.push_back(m.first);
  std::sort(keys_scratch_.begin(), keys_scratch_.end());
  auto dup = std::adjacent_find(keys_scratch_.begin(), keys_scratch_.end());
  if (dup != keys_scratch_.end()) {
    reason_ = fmt::format("duplicate key {} in object", Quoted(*dup));
    return false;
  }
  return true;
}

Converter::Begun Converter::Begin(dom::element e, Value* scalar) {
  switch (e.type()) {
    case dom::element_type::OBJECT: {
      dom::object object;
      if (e.get(object) != simdjson::SUCCESS) break;
      Frame& f = frames_.emplace_back();
      f.is_object = true;
      f.object_at = object.begin();
      f.object_end = object.end();
      f.object.reserve(object.size());
      return Begun::kContainer;
    }
    case dom::element_type::ARRAY: {
      dom::array array;
      if (e.get(array) != simdjson::SUCCESS) break;
      Frame& f = frames_.emplace_back();
      f.array_at = array.begin();
      f.array_end = array.end();
      f.array.reserve(array.size());
      return Begun::kContainer;
    }
    case dom::element_type::INT64: {
      int64_t i;
      if (e.get(i) != simdjson::SUCCESS) break;
      if (i > kMaxExactInteger || i < -kMaxExactInteger) {
        reason_ = OutOfRangeInteger(std::to_string(i));
        return Begun::kError;
      }
      *scalar = Value::Number(static_cast<double>(i));
      return Begun::kScalar;
    }
    case dom::element_type::UINT64: {
      uint64_t u;
      if (e.get(u) != simdjson::SUCCESS) break;
      reason_ = OutOfRangeInteger(std::to_string(u));
      return Begun::kError;
    }
    case dom::element_type::DOUBLE: {
      double d;
      if (e.get(d) != simdjson::SUCCESS) break;
      *scalar = Value::Number(d);
      return Begun::kScalar;
    }
    case dom::element_type::STRING: {
      std::string_view s;
      if (e.get(s) != simdjson::SUCCESS) break;
      *scalar = Value::String(std::string(s));
      return Begun::kScalar;
    }
    case dom::element_type::BOOL: {
      bool b;
      if (e.get(b) != simdjson::SUCCESS) break;
      *scalar = Value::Bool(b);
      return Begun::kScalar;
    }
    case dom::element_type::NULL_VALUE:
      *scalar = Value::Null();
      return Begun::kScalar;
  }
  reason_ = "internal error: unexpected JSON element";
  return Begun::kError;
}

bool Converter::Convert(dom::element root, Value* out) {
  frames_.clear();
  Value done;  // the value completed last
  Begun begun = Begin(root, &done);
  for (;;) {
    if (begun == Begun::kError) {
      frames_.clear();
      return false;
    }
    if (begun == Begun::kScalar) {
      // `done` is complete: it is the result, or the next member of the innermost container.
      if (frames_.empty()) {
        *out = std::move(done);
        return true;
      }
      Frame& f = frames_.back();
      if (f.is_object) {
        f.object.emplace_back(std::string(f.object_at.key()), std::move(done));
        ++f.object_at;
      } else {
        f.array.push_back(std::move(done));
        ++f.array_at;
      }
    }
    Frame& f = frames_.back();
    if (f.is_object ? f.object_at != f.object_end : f.array_at != f.array_end) {
      begun = Begin(f.is_object ? f.object_at.value() : *f.array_at, &done);
      continue;
    }
    if (f.is_object) {
      if (!CheckUniqueKeys(f.object)) {
        frames_.clear();
        return false;
      }
      done = Value::MakeObject(std::move(f.object));
    } else {
      done = Value::MakeArray(std::move(f.array));
    }
    frames_.pop_back();
    begun = Begun::kScalar;  // a completed container is handled like a scalar
  }
}

// ---------------------------------------------------------------------------------------------
// Flattening a simdjson DOM element into JsonTokens, with the Converter's checks. It only says
// whether the element passes them: on false the caller converts the element, and the Converter
// (and the Diagnoser) give the reason and the position.

class Tokenizer {
 public:
  // The tokens of `root` in tokens(); false when the Converter would reject it.
  bool Tokenize(dom::element root) {
    tokens_.clear();
    return Add(root, {}, 0);
  }
  // The same for the document `text` (an object; `capacity` readable bytes from text.data()
  // on, at least text.size() + simdjson::SIMDJSON_PADDING), read with simdjson's On-Demand API:
  // every value is asked for, so every value is validated, and nothing may follow the object.
  // Also false on any error, and for a twin nested as deep as the DOM refuses: the caller
  // then parses `text` into a DOM, which decides (and names the problem).
  //
  // It also finds out, from where On-Demand found each value, whether `text` (without the
  // whitespace around it) is spelled exactly as AppendJson prints the tokens: printed().
  bool TokenizeOnDemand(ondemand::parser& parser, std::string_view text, size_t capacity) {
    tokens_.clear();
    ondemand::document doc;
    ondemand::object root;
    if (parser.iterate(text.data(), text.size(), capacity).get(doc) != simdjson::SUCCESS ||
        doc.get_object().get(root) != simdjson::SUCCESS) {
      return false;
    }
    size_t end = text.size();
    while (end > 0 && IsJsonSpace(text[end - 1])) --end;
    printed_ = !text.empty() && text[0] == '{';
    next_ = text.data() + 1;
    tokens_.emplace_back();
    if (!AddMembers(root, 0, 0) || doc.current_location().error() != simdjson::OUT_OF_BOUNDS) {
      return false;
    }
    printed_ = printed_ && next_ == text.data() + end;
    return true;
  }
  const JsonToken* tokens() const { return tokens_.data(); }
  // After TokenizeOnDemand: true if its text is AppendJson(tokens()) exactly. False says nothing
  // (a string with an escape, a number it does not check): SourceSpellsAsJson decides then.
  bool printed() const { return printed_; }

 private:
  // The spelling check (printed_) follows the text as AppendJson would print the tokens:
  // next_ is where the next token would begin in that print. Each value must begin there (so
  // nothing, not even whitespace, came between), and its text must be its print: a string of
  // as many bytes as its value plus the quotes (then it has no escape, and no byte that would
  // need one: the reader refuses control characters unescaped), a number's literal as printed,
  // a literal of its length (no whitespace follows). The separators and brackets in between are
  // the single bytes the print has there: a member's quote is one past the previous value's end
  // (the ','), its value right after '"key":' (an escaped key is longer than its value, so its
  // value would begin later), and a closing bracket is the byte at next_.

  // Closes the container at next_ with `bracket`.
  void CloseAt(char bracket) {
    if (!printed_) return;
    printed_ = *next_ == bracket;
    ++next_;
  }

  // On-Demand: the members of `object` (at tokens_[at], `depth` deep) after it.
  // (The DOM parser refuses a container `kMaxJsonDepth - 1` deep, which On-Demand accepts:
  // such a twin is left to the DOM.)
  bool AddMembers(ondemand::object object, size_t at, size_t depth) {
    if (depth + 1 >= kMaxJsonDepth) return false;
    uint32_t n = 0;
    for (auto member : object) {
      if (member.error() != simdjson::SUCCESS) return false;
      ondemand::field field = std::move(member).value_unsafe();
      const char* quote = field.key().raw() - 1;  // (unescaped_key consumes the key)
      std::string_view key;
      if (field.unescaped_key().get(key) != simdjson::SUCCESS) return false;
      if (printed_) {
        printed_ = quote == next_ + (n != 0 ? 1 : 0);
        next_ = quote + key.size() + 3;  // past '"', the key, '"' and ':'
      }
      if (!Add(field.value(), key, depth + 1)) return false;
      ++n;
    }
    CloseAt('}');
    tokens_[at].kind = ValueKind::kObject;
    tokens_[at].size = n;
    if (!UniqueKeys(at)) return false;
    tokens_[at].span = static_cast<uint32_t>(tokens_.size() - at);
    return true;
  }

  bool Add(ondemand::value v, std::string_view key, size_t depth) {
    const size_t at = tokens_.size();
    tokens_.emplace_back().key = key;
    // The value's text: from its first byte to the next structural character (so with any
    // whitespace after it); for a container, its bracket.
    std::string_view raw;
    if (printed_) {
      raw = v.raw_json_token();
      printed_ = raw.data() == next_;
    }
    ondemand::json_type type;
    if (v.type().get(type) != simdjson::SUCCESS) return false;
    switch (type) {
      case ondemand::json_type::object: {
        ondemand::object object;
        if (printed_) ++next_;  // past '{'
        return v.get_object().get(object) == simdjson::SUCCESS && AddMembers(object, at, depth);
      }
      case ondemand::json_type::array: {
        ondemand::array array;
        if (depth + 1 >= kMaxJsonDepth || v.get_array().get(array) != simdjson::SUCCESS) {
          return false;
        }
        if (printed_) ++next_;  // past '['
        uint32_t n = 0;
        for (auto element : array) {
          ondemand::value e;
          if (element.get(e) != simdjson::SUCCESS) return false;
          if (printed_ && n != 0) ++next_;  // past ','
          if (!Add(e, {}, depth + 1)) return false;
          ++n;
        }
        CloseAt(']');
        tokens_[at].kind = ValueKind::kArray;
        tokens_[at].size = n;
        break;
      }
      case ondemand::json_type::number: {
        // get_number() in simdjson 3.0.1 gives 0 for a decimal of more than 19 digits (found by
        // fuzz_patch: 9000000.0000000000000003 read as 0), where get_double() and the DOM read
        // it right. A literal that long is read by its type instead; a shorter one cannot have
        // that many digits.
        bool integer = false;
        int64_t i = 0;
        double d = 0;
        if (v.raw_json_token().size() <= 19) {
          ondemand::number number;
          if (v.get_number().get(number) != simdjson::SUCCESS) return false;
          if (number.is_int64()) {
            integer = true;
            i = number.get_int64();
          } else if (number.is_double()) {
            d = number.get_double();
          } else {
            return false;  // an integer beyond int64 (the DOM's UINT64)
          }
        } else {
          ondemand::number_type kind;
          if (v.get_number_type().get(kind) != simdjson::SUCCESS) return false;
          if (kind == ondemand::number_type::signed_integer) {
            integer = true;
            if (v.get_int64().get(i) != simdjson::SUCCESS) return false;
          } else if (kind == ondemand::number_type::floating_point_number) {
            if (v.get_double().get(d) != simdjson::SUCCESS) return false;
          } else {
            return false;  // an integer beyond int64 (the DOM's UINT64)
          }
        }
        JsonToken& t = tokens_[at];
        t.kind = ValueKind::kNumber;
        if (integer) {
          if (i > kMaxExactInteger || i < -kMaxExactInteger) return false;
          t.number = static_cast<double>(i);
          t.integer = true;
          // Printed as its digits below 2^53 (AppendNumber), which the literal is, unless it is
          // "-0" (printed "0") or whitespace follows.
          if (printed_) {
            printed_ = (i < kMaxExactInteger && i > -kMaxExactInteger) &&
                       !(i == 0 && raw[0] == '-') && !IsJsonSpace(raw.back());
          }
        } else {  // as the DOM's DOUBLE (`integer` stays false)
          t.number = d;
          if (printed_) {
            // Most decimals are judged by their spelling; others are printed and compared.
            const PrintedVerdict verdict = DecimalSpelledAsPrinted(raw);
            if (verdict == PrintedVerdict::kUnsure) {
              scratch_.clear();
              AppendNumber(t.number, &scratch_);
              printed_ = raw == scratch_;
            } else {
              printed_ = verdict == PrintedVerdict::kYes;
            }
          }
        }
        break;
      }
      case ondemand::json_type::string:
        if (v.get_string().get(tokens_[at].string) != simdjson::SUCCESS) return false;
        tokens_[at].kind = ValueKind::kString;
        printed_ = printed_ && raw.size() == tokens_[at].string.size() + 2;
        break;
      case ondemand::json_type::boolean:
        if (v.get_bool().get(tokens_[at].boolean) != simdjson::SUCCESS) return false;
        tokens_[at].kind = ValueKind::kBool;
        printed_ = printed_ && raw.size() == (tokens_[at].boolean ? 4u : 5u);
        break;
      case ondemand::json_type::null: {
        bool null = false;
        if (v.is_null().get(null) != simdjson::SUCCESS || !null) return false;
        tokens_[at].kind = ValueKind::kNull;
        printed_ = printed_ && raw.size() == 4;
        break;
      }
      default:
        return false;
    }
    if (printed_ && type != ondemand::json_type::array) next_ = raw.data() + raw.size();
    tokens_[at].span = static_cast<uint32_t>(tokens_.size() - at);
    return true;
  }

  // DOM: `e` and its subtree.
  bool Add(dom::element e, std::string_view key, size_t depth) {
    const size_t at = tokens_.size();
    JsonToken& t = tokens_.emplace_back();
    t.key = key;
    switch (e.type()) {
      case dom::element_type::OBJECT: {
        dom::object object;
        // (simdjson refuses nesting deeper than kMaxJsonDepth; the bound keeps the recursion
        // within it whatever a DOM holds.)
        if (e.get(object) != simdjson::SUCCESS || depth >= kMaxJsonDepth) return false;
        tokens_[at].kind = ValueKind::kObject;
        uint32_t n = 0;
        for (dom::key_value_pair m : object) {
          if (!Add(m.value, m.key, depth + 1)) return false;
          ++n;
        }
        tokens_[at].size = n;
        if (!UniqueKeys(at)) return false;
        break;
      }
      case dom::element_type::ARRAY: {
        dom::array array;
        if (e.get(array) != simdjson::SUCCESS || depth >= kMaxJsonDepth) return false;
        tokens_[at].kind = ValueKind::kArray;
        uint32_t n = 0;
        for (dom::element v : array) {
          if (!Add(v, {}, depth + 1)) return false;
          ++n;
        }
        tokens_[at].size = n;
        break;
      }
      case dom::element_type::INT64: {
        int64_t i;
        if (e.get(i) != simdjson::SUCCESS) return false;
        if (i > kMaxExactInteger || i < -kMaxExactInteger) return false;
        t.kind = ValueKind::kNumber;
        t.number = static_cast<double>(i);
        t.integer = true;
        break;
      }
      case dom::element_type::DOUBLE: {
        if (e.get(t.number) != simdjson::SUCCESS) return false;
        t.kind = ValueKind::kNumber;
        break;
      }
      case dom::element_type::STRING:
        if (e.get(t.string) != simdjson::SUCCESS) return false;
        t.kind = ValueKind::kString;
        break;
      case dom::element_type::BOOL:
        if (e.get(t.boolean) != simdjson::SUCCESS) return false;
        t.kind = ValueKind::kBool;
        break;
      case dom::element_type::NULL_VALUE:
        t.kind = ValueKind::kNull;
        break;
      default:  // UINT64: beyond 2^53
        return false;
    }
    tokens_[at].span = static_cast<uint32_t>(tokens_.size() - at);
    return true;
  }

  // Whether the members of the object at tokens_[at] have distinct keys (as CheckUniqueKeys).
  bool UniqueKeys(size_t at) {
    const JsonToken* object = &tokens_[at];
    constexpr size_t kLinearLimit = 8;
    if (object->size <= kLinearLimit) {
      // Pairwise, by KeyWord and length first: the keys themselves are compared only when both
      // are equal and the keys are longer than a word.
      const JsonToken* seen[kLinearLimit];  // (left uninitialised: only [0, n) is read)
      uint64_t words[kLinearLimit];
      size_t n = 0;
      for (const JsonToken* m = object + 1; n < object->size; m += m->span) {
        const uint64_t word = KeyWord(m->key);
        for (size_t j = 0; j < n; ++j) {
          if (words[j] == word && seen[j]->key.size() == m->key.size() &&
              (m->key.size() <= 8 || seen[j]->key == m->key)) {
            return false;
          }
        }
        seen[n] = m;
        words[n++] = word;
      }
      return true;
    }
    // More members: an open-addressing table of members, at most half full, hashed by the key's
    // length and KeyWord; equal slots compare the keys.
    size_t capacity = 32;
    while (capacity < 2 * size_t{object->size}) capacity *= 2;
    slots_.assign(capacity, 0);
    const JsonToken* m = object + 1;
    for (uint32_t i = 0; i < object->size; ++i, m += m->span) {
      for (size_t at = KeyHash(m->key) & (capacity - 1);; at = (at + 1) & (capacity - 1)) {
        if (slots_[at] == 0) {
          slots_[at] = static_cast<uint32_t>(m - object);  // (never 0: members follow)
          break;
        }
        if (object[slots_[at]].key == m->key) return false;
      }
    }
    return true;
  }

  // The bytes of `key` in one word: all of them for a key of up to 8 bytes (so two such keys
  // of one length are equal exactly when their words are), the first and last 4 of a longer one.
  static uint64_t KeyWord(std::string_view key) {
    const auto* p = reinterpret_cast<const unsigned char*>(key.data());
    const size_t n = key.size();
    if (n >= 4) {
      uint32_t first, last;
      std::memcpy(&first, p, 4);
      std::memcpy(&last, p + n - 4, 4);
      return uint64_t{first} | uint64_t{last} << 32;
    }
    if (n == 0) return 0;
    return uint64_t{p[0]} | uint64_t{p[n / 2]} << 8 | uint64_t{p[n - 1]} << 16;
  }

  static uint64_t KeyHash(std::string_view key) {
    return ((KeyWord(key) ^ key.size()) * 0x9E3779B97F4A7C15ULL) >> 32;
  }

  std::vector<JsonToken> tokens_;
  bool printed_ = false;  // TokenizeOnDemand's spelling check (above AddMembers)
  const char* next_ = nullptr;
  std::string scratch_;          // a double's print
  std::vector<uint32_t> slots_;  // UniqueKeys: members' offsets from their object, 0 if free
};

// ---------------------------------------------------------------------------------------------
// Splitting a stream into top-level documents. A cheap structural scan (strings and bracket
// depth only); each span is then parsed by simdjson, which does the validation. A span that is
// not valid JSON (a stray '}', an unterminated document running to the end of input) fails
// there and is diagnosed. simdjson's own parse_many is not used: in 3.0.1 it silently drops
// valid documents before a stray closing bracket (reporting them as "truncated bytes") and
// its iterator's source() crashes on a document that failed.

struct DocSpan {
  size_t begin = 0;
  size_t end = 0;
  std::vector<size_t> elements;  // for a top-level array: offset of each element
};

// Index of the quote closing the string opened at text[open], or text.size() if none.
size_t SkipString(std::string_view text, size_t open) {
  size_t i = open + 1;
  while (i < text.size()) {
    char c = text[i];
    if (c == '"') return i;
    i += c == '\\' ? 2 : 1;
  }
  return text.size();
}

// Finds the next document at or after *pos; false at end of input (only whitespace left).
bool NextDocument(std::string_view text, size_t* pos, DocSpan* doc) {
  size_t n = text.size();
  size_t i = *pos;
  while (i < n && IsJsonSpace(text[i])) ++i;
  if (i == n) {
    *pos = n;
    return false;
  }
  doc->begin = i;
  doc->elements.clear();
  char first = text[i];
  if (first == '{' || first == '[') {
    bool array = first == '[';
    size_t depth = 0;
    bool want_element = false;
    for (; i < n; ++i) {
      char c = text[i];
      if (want_element && !IsJsonSpace(c)) {
        if (c != ']') doc->elements.push_back(i);
        want_element = false;
      }
      switch (c) {
        case '"':
          i = SkipString(text, i);
          break;
        case '{':
        case '[':
          if (++depth == 1 && array) want_element = true;
          break;
        case '}':
        case ']':
          if (--depth == 0) {
            doc->end = *pos = i + 1;
            return true;
          }
          break;
        case ',':
          if (array && depth == 1) want_element = true;
          break;
        default:
          break;
      }
    }
    doc->end = *pos = n;  // unterminated: simdjson will say so
    return true;
  }
  if (first == '"') {
    doc->end = *pos = std::min(SkipString(text, i) + 1, n);
    return true;
  }
  size_t j = i;
  while (j < n && !IsJsonSpace(text[j]) && !IsStructural(text[j])) ++j;
  if (j == i) j = i + 1;  // a lone ',', ':', '}' or ']'
  doc->end = *pos = j;
  return true;
}

std::string DisplayName(std::string_view name) {
  return name.empty() ? std::string("<input>") : std::string(name);
}

// Error for a document that simdjson or the Converter rejected: the Diagnoser's first problem
// in the span, else `fallback` at the start of the span.
Error SyntaxError(std::string_view text, std::string_view name, size_t begin, size_t end,
                  std::string_view fallback) {
  std::optional<Problem> problem = Diagnoser(text, begin, end).Run();
  size_t offset = problem ? problem->offset : begin;
  Location loc = LocationOf(text, offset);
  return Error{fmt::format("{}:{}:{}: {}", DisplayName(name), loc.line, loc.column,
                           problem ? problem->reason : std::string(fallback))};
}

// ---------------------------------------------------------------------------------------------
// Twin collection.

class TwinCollector {
 public:
  // `sink` (optional) receives every valid twin in input order; without one, the collector
  // keeps the twins for Finish(). With `token_sink` instead, the twins go to it as tokens.
  TwinCollector(std::string_view text, std::string_view name, const TwinSink* sink,
                const TwinTokenSink* token_sink = nullptr)
      : text_(text), name_(name), sink_(sink), token_sink_(token_sink) {}

  bool wants_tokens() const { return token_sink_ != nullptr; }
  // Checks the twin's ids and keeps it (or passes it to the sink); false (with *error) when the
  // ids are invalid. With a token sink, a twin comes here only after AddTokens refused it, so it
  // is an error either way.
  bool Add(Value twin, size_t offset, Error* error);
  // The same for the tokens of a twin that passed the Converter's checks, with `spelled` (its
  // text in the input, or empty) for the token sink. False, with no error and nothing kept, when
  // the ids are invalid: the caller then converts the twin and Add names the problem.
  bool AddTokens(const JsonToken* twin, size_t offset, std::string_view spelled, bool printed);
  // Checks for duplicate ids (the first repetition in input order is reported).
  std::optional<Error> CheckDuplicates();
  // Sorts and checks for duplicates; the kept twins by id.
  Expected<TwinSet> Finish();
  size_t count() const { return devices_.size() + modules_.size(); }

 private:
  struct Entry {
    std::string device_id;
    std::string module_id;
    size_t offset;
    size_t ordinal;  // position in values_ (when the collector keeps the twins)
  };

  Error At(size_t offset, std::string_view problem) const {
    return Error{
        fmt::format("{}:{}: {}", DisplayName(name_), LocationOf(text_, offset).line, problem)};
  }
  // The earliest second occurrence of a key in `entries` (sorted by key, then offset).
  static std::optional<std::pair<const Entry*, const Entry*>> FirstDuplicate(
      const std::vector<Entry>& entries);

  std::string_view text_;
  std::string_view name_;
  const TwinSink* sink_;
  const TwinTokenSink* token_sink_;
  std::vector<Value> values_;
  std::vector<Entry> devices_;
  std::vector<Entry> modules_;
};

bool TwinCollector::Add(Value twin, size_t offset, Error* error) {
  const Value* device_id = twin.Find("deviceId");
  if (device_id == nullptr) {
    *error = At(offset, "document has no \"deviceId\"");
    return false;
  }
  if (!device_id->is_string()) {
    *error = At(offset, fmt::format("\"deviceId\" is not a string (got {})",
                                    ValueKindName(device_id->kind())));
    return false;
  }
  if (device_id->as_string().empty()) {
    *error = At(offset, "\"deviceId\" is empty");
    return false;
  }
  const Value* module_id = twin.Find("moduleId");
  if (module_id != nullptr && !module_id->is_string()) {
    *error = At(offset, fmt::format("\"moduleId\" is not a string (got {})",
                                    ValueKindName(module_id->kind())));
    return false;
  }
  if (module_id != nullptr && module_id->as_string().empty()) {
    *error = At(offset, "\"moduleId\" is empty");
    return false;
  }
  if (token_sink_ != nullptr) {
    // The token path refused a twin these checks accept: never dropped silently.
    *error = At(offset, "internal error: a twin the token reader refused is valid");
    return false;
  }
  Entry entry{device_id->as_string(), module_id != nullptr ? module_id->as_string() : "", offset,
              values_.size()};
  bool module = module_id != nullptr;
  (module ? modules_ : devices_).push_back(std::move(entry));
  if (sink_ != nullptr) {
    (*sink_)(std::move(twin), module);
  } else {
    values_.push_back(std::move(twin));
  }
  return true;
}

bool TwinCollector::AddTokens(const JsonToken* twin, size_t offset, std::string_view spelled,
                              bool printed) {
  const JsonToken* device_id = nullptr;
  const JsonToken* module_id = nullptr;
  const JsonToken* m = twin + 1;
  for (uint32_t i = 0; i < twin->size; ++i, m += m->span) {
    if (m->key == "deviceId") device_id = m;
    if (m->key == "moduleId") module_id = m;
  }
  auto valid = [](const JsonToken* id) {
    return id->kind == ValueKind::kString && !id->string.empty();
  };
  if (device_id == nullptr || !valid(device_id) || (module_id != nullptr && !valid(module_id))) {
    return false;
  }
  const bool module = module_id != nullptr;
  (module ? modules_ : devices_)
      .push_back(Entry{std::string(device_id->string),
                       module ? std::string(module_id->string) : std::string(), offset, 0});
  (*token_sink_)(twin, module, spelled, printed);
  return true;
}

std::optional<std::pair<const TwinCollector::Entry*, const TwinCollector::Entry*>>
TwinCollector::FirstDuplicate(const std::vector<Entry>& entries) {
  std::optional<std::pair<const Entry*, const Entry*>> best;
  for (size_t i = 1; i < entries.size(); ++i) {
    const Entry& a = entries[i - 1];
    const Entry& b = entries[i];
    if (a.device_id != b.device_id || a.module_id != b.module_id) continue;
    // Only the second of a run matters: it is the run's earliest repetition.
    if (i >= 2 && entries[i - 2].device_id == a.device_id &&
        entries[i - 2].module_id == a.module_id) {
      continue;
    }
    if (!best || b.offset < best->second->offset) best = std::make_pair(&a, &b);
  }
  return best;
}

std::optional<Error> TwinCollector::CheckDuplicates() {
  auto by_key = [](const Entry& a, const Entry& b) {
    if (a.device_id != b.device_id) return a.device_id < b.device_id;
    if (a.module_id != b.module_id) return a.module_id < b.module_id;
    return a.offset < b.offset;
  };
  // A fleet is often written in id order already (`twinq gen`, a saved SELECT *): one pass.
  for (std::vector<Entry>* entries : {&devices_, &modules_}) {
    if (!std::is_sorted(entries->begin(), entries->end(), by_key)) {
      std::sort(entries->begin(), entries->end(), by_key);
    }
  }
  auto device_dup = FirstDuplicate(devices_);
  auto module_dup = FirstDuplicate(modules_);
  if (device_dup && (!module_dup || device_dup->second->offset < module_dup->second->offset)) {
    return At(device_dup->second->offset,
              fmt::format("duplicate deviceId {} (first at line {})",
                          Quoted(device_dup->first->device_id),
                          LocationOf(text_, device_dup->first->offset).line));
  }
  if (module_dup) {
    return At(
        module_dup->second->offset,
        fmt::format("duplicate moduleId {} of deviceId {} (first at line {})",
                    Quoted(module_dup->first->module_id), Quoted(module_dup->first->device_id),
                    LocationOf(text_, module_dup->first->offset).line));
  }
  return std::nullopt;
}

Expected<TwinSet> TwinCollector::Finish() {
  if (std::optional<Error> dup = CheckDuplicates()) return *dup;
  TwinSet set;
  set.devices.reserve(devices_.size());
  for (Entry& e : devices_) set.devices.push_back(std::move(values_[e.ordinal]));
  set.modules.reserve(modules_.size());
  for (Entry& e : modules_) set.modules.push_back(std::move(values_[e.ordinal]));
  devices_.clear();
  modules_.clear();
  values_.clear();
  return set;
}

// `text` must be followed by at least simdjson::SIMDJSON_PADDING readable bytes.
// Parses every twin into `collector`; the first syntax, shape or id error.
std::optional<Error> CollectTwinsPadded(std::string_view text, std::string_view name,
                                        TwinCollector& collector) {
  dom::parser parser;
  ondemand::parser ondemand_parser;
  Converter converter;
  Tokenizer tokenizer;
  DocSpan doc;
  size_t pos = 0;
  while (true) {
    dom::element root;
    // NDJSON: a line that starts with '{' and parses as one document is that document, and
    // NextDocument would have found the same span. Taking it this way saves NextDocument's
    // byte-by-byte scan of the input (simdjson finds the structure with SIMD). Anything else
    // (a document over several lines, two on a line, an array, an error) goes the general way
    // from the same position, so its spans and error messages are unchanged.
    size_t start = pos;
    while (start < text.size() && IsJsonSpace(text[start])) ++start;
    bool whole_line = false;
    if (start < text.size() && text[start] == '{') {
      const void* nl = std::memchr(text.data() + start, '\n', text.size() - start);
      size_t line_end = nl != nullptr ? static_cast<const char*>(nl) - text.data() : text.size();
      // The token path reads such a line with On-Demand, which builds no DOM (docs/index.md,
      // "Ingest"). A line it does not take (an error, a twin the tokens refuse) is read again
      // below, into a DOM, as if On-Demand had not been tried.
      if (collector.wants_tokens()) {
        size_t end = line_end;
        while (end > start && IsJsonSpace(text[end - 1])) --end;
        if (tokenizer.TokenizeOnDemand(ondemand_parser, text.substr(start, line_end - start),
                                       text.size() + simdjson::SIMDJSON_PADDING - start) &&
            collector.AddTokens(tokenizer.tokens(), start, text.substr(start, end - start),
                                tokenizer.printed())) {
          pos = line_end;
          continue;
        }
      }
      if (parser.parse(text.data() + start, line_end - start, /*realloc_if_needed=*/false)
              .get(root) == simdjson::SUCCESS) {
        doc.begin = start;
        doc.end = line_end;
        while (doc.end > start && IsJsonSpace(text[doc.end - 1])) --doc.end;
        doc.elements.clear();
        pos = line_end;
        whole_line = true;
      }
    }
    if (!whole_line) {
      if (!NextDocument(text, &pos, &doc)) break;
      size_t length = doc.end - doc.begin;
      simdjson::error_code code =
          parser.parse(text.data() + doc.begin, length, /*realloc_if_needed=*/false).get(root);
      if (code != simdjson::SUCCESS) {
        return SyntaxError(text, name, doc.begin, doc.end, simdjson::error_message(code));
      }
    }
    Error error;
    // `spelled`: the twin's text, when it is the whole document.
    auto add = [&](dom::element e, size_t offset, std::string_view spelled) {
      if (e.type() != dom::element_type::OBJECT) {
        error = Error{fmt::format("{}:{}: document is not an object (got {})", DisplayName(name),
                                  LocationOf(text, offset).line, KindName(e.type()))};
        return false;
      }
      // The token path; a twin it refuses is converted below, which names the problem.
      if (collector.wants_tokens() && tokenizer.Tokenize(e) &&
          collector.AddTokens(tokenizer.tokens(), offset, spelled, /*printed=*/false)) {
        return true;
      }
      Value twin;
      if (!converter.Convert(e, &twin)) {
        error = SyntaxError(text, name, doc.begin, doc.end, converter.reason());
        return false;
      }
      return collector.Add(std::move(twin), offset, &error);
    };
    if (root.type() == dom::element_type::ARRAY) {
      dom::array array;
      if (root.get(array) != simdjson::SUCCESS) return Error{"internal error: array expected"};
      size_t index = 0;
      for (dom::element e : array) {
        // The scan's element offsets match simdjson's elements for valid JSON; be safe anyway.
        size_t offset = index < doc.elements.size() ? doc.elements[index] : doc.begin;
        ++index;
        if (!add(e, offset, {})) return error;
      }
    } else if (!add(root, doc.begin, text.substr(doc.begin, doc.end - doc.begin))) {
      return error;
    }
  }
  return std::nullopt;
}

// `text` must be followed by at least simdjson::SIMDJSON_PADDING readable bytes.
Expected<TwinSet> ReadTwinsPadded(std::string_view text, std::string_view name) {
  text = StripBom(text);
  TwinCollector collector(text, name, nullptr);
  if (std::optional<Error> e = CollectTwinsPadded(text, name, collector)) return *e;
  return collector.Finish();
}

// The same for VisitTwins, to a Value sink or a token sink (one of them).
Expected<size_t> VisitTwinsPadded(std::string_view text, std::string_view name,
                                  const TwinSink* sink, const TwinTokenSink* token_sink) {
  text = StripBom(text);
  TwinCollector collector(text, name, sink, token_sink);
  if (std::optional<Error> e = CollectTwinsPadded(text, name, collector)) return *e;
  if (std::optional<Error> dup = collector.CheckDuplicates()) return *dup;
  return collector.count();
}

// A file's contents, followed by at least simdjson::SIMDJSON_PADDING readable bytes.
//
// A regular file whose last page has room for the padding after its end is mapped (the kernel
// fills the rest of that page with zeros): the parser then reads the page cache itself. Reading
// it into a buffer would cost fresh memory, and on the benchmark VM fresh memory costs more
// than parsing (bench/BENCHLOG.md, "What fresh memory costs on this VM"). Any other regular
// file is read into one buffer of its size plus the padding; anything else (a pipe) is read in
// pieces and copied once into a padded buffer.
//
// A mapped file that another process truncates while it is being read can raise SIGBUS, as for
// any program that maps its input; `twinq index build` reads its input once and copies what it
// keeps.
class PaddedFile {
 public:
  PaddedFile() = default;
  PaddedFile(const PaddedFile&) = delete;
  PaddedFile& operator=(const PaddedFile&) = delete;
  ~PaddedFile() {
    if (map_ != nullptr) ::munmap(map_, map_size_);
  }

  // Nullopt on success, else `PATH: cannot read: <strerror>`.
  std::optional<Error> Read(const std::string& path) {
    auto fail = [&](int err) {
      return Error{fmt::format("{}: cannot read: {}", path, std::strerror(err))};
    };
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail(errno);
    std::optional<Error> error = ReadOpen(fd, fail);
    ::close(fd);
    return error;
  }

  std::string_view text() const { return text_; }

 private:
  template <typename Fail>
  std::optional<Error> ReadOpen(int fd, const Fail& fail) {
    struct stat st;
    if (::fstat(fd, &st) != 0) return fail(errno);
    if (S_ISDIR(st.st_mode)) return fail(EISDIR);
    if (!S_ISREG(st.st_mode)) return ReadPieces(fd, fail);
    const size_t size = static_cast<size_t>(st.st_size);
    const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    const size_t slack = size % page == 0 ? 0 : page - size % page;
    if (size > 0 && slack >= simdjson::SIMDJSON_PADDING) {
      void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
      if (p != MAP_FAILED) {
        ::madvise(p, size, MADV_SEQUENTIAL);
        map_ = p;
        map_size_ = size;
        text_ = std::string_view(static_cast<const char*>(p), size);
        return std::nullopt;
      }
      // Not mappable (some special file systems): read it instead.
    }
    owned_ = simdjson::padded_string(size);
    size_t got = 0;
    while (got < size) {
      ssize_t n = ::read(fd, owned_.data() + got, size - got);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return fail(errno);
      if (n == 0) break;  // the file shrank meanwhile: parse what there was
      got += static_cast<size_t>(n);
    }
    text_ = std::string_view(owned_.data(), got);
    return std::nullopt;
  }

  template <typename Fail>
  std::optional<Error> ReadPieces(int fd, const Fail& fail) {
    std::string contents;
    char buffer[1 << 16];
    for (;;) {
      ssize_t n = ::read(fd, buffer, sizeof buffer);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return fail(errno);
      if (n == 0) break;
      contents.append(buffer, static_cast<size_t>(n));
    }
    owned_ = simdjson::padded_string(contents);
    text_ = std::string_view(owned_.data(), owned_.size());
    return std::nullopt;
  }

  void* map_ = nullptr;
  size_t map_size_ = 0;
  simdjson::padded_string owned_;
  std::string_view text_;
};

}  // namespace

Expected<TwinSet> ReadTwins(std::string_view text, std::string_view name) {
  simdjson::padded_string padded(text);
  return ReadTwinsPadded(std::string_view(padded.data(), padded.size()), name);
}

Expected<size_t> VisitTwins(std::string_view text, std::string_view name, const TwinSink& sink) {
  simdjson::padded_string padded(text);
  return VisitTwinsPadded(std::string_view(padded.data(), padded.size()), name, &sink, nullptr);
}

Expected<size_t> VisitTwins(std::string_view text, std::string_view name,
                            const TwinTokenSink& sink) {
  simdjson::padded_string padded(text);
  return VisitTwinsPadded(std::string_view(padded.data(), padded.size()), name, nullptr, &sink);
}

Expected<TwinSet> ReadTwinsFile(const std::string& path) {
  PaddedFile file;
  if (std::optional<Error> e = file.Read(path)) return *e;
  return ReadTwinsPadded(file.text(), path);
}

Expected<size_t> VisitTwinsFile(const std::string& path, const TwinSink& sink) {
  PaddedFile file;
  if (std::optional<Error> e = file.Read(path)) return *e;
  return VisitTwinsPadded(file.text(), path, &sink, nullptr);
}

Expected<size_t> VisitTwinsFile(const std::string& path, const TwinTokenSink& sink,
                                std::shared_ptr<const void>* input) {
  auto file = std::make_shared<PaddedFile>();
  if (std::optional<Error> e = file->Read(path)) return *e;
  *input = file;
  return VisitTwinsPadded(file->text(), path, nullptr, &sink);
}

Value TokensToValue(const JsonToken* t) {
  switch (t->kind) {
    case ValueKind::kUndefined:
    case ValueKind::kNull:
      return Value::Null();
    case ValueKind::kBool:
      return Value::Bool(t->boolean);
    case ValueKind::kNumber:
      return Value::Number(t->number);
    case ValueKind::kString:
      return Value::String(std::string(t->string));
    case ValueKind::kArray: {
      Array a;
      a.reserve(t->size);
      const JsonToken* e = t + 1;
      for (uint32_t i = 0; i < t->size; ++i, e += e->span) a.push_back(TokensToValue(e));
      return Value::MakeArray(std::move(a));
    }
    case ValueKind::kObject: {
      Object o;
      o.reserve(t->size);
      const JsonToken* m = t + 1;
      for (uint32_t i = 0; i < t->size; ++i, m += m->span) {
        o.emplace_back(std::string(m->key), TokensToValue(m));
      }
      return Value::MakeObject(std::move(o));
    }
  }
  return Value::Null();
}

void AppendJson(const JsonToken* t, std::string* out) {
  switch (t->kind) {
    case ValueKind::kUndefined:
    case ValueKind::kNull:
      out->append("null");
      return;
    case ValueKind::kBool:
      out->append(t->boolean ? "true" : "false");
      return;
    case ValueKind::kNumber:
      AppendNumber(t->number, out);
      return;
    case ValueKind::kString:
      AppendJsonString(t->string, out);
      return;
    case ValueKind::kArray:
    case ValueKind::kObject: {
      const bool object = t->kind == ValueKind::kObject;
      out->push_back(object ? '{' : '[');
      const JsonToken* c = t + 1;
      for (uint32_t i = 0; i < t->size; ++i, c += c->span) {
        if (i != 0) out->push_back(',');
        if (object) {
          AppendJsonString(c->key, out);
          out->push_back(':');
        }
        AppendJson(c, out);
      }
      out->push_back(object ? '}' : ']');
      return;
    }
  }
}

namespace {

// Matches what AppendJson appends for a subtree against the text from pos_ on, and advances pos_
// past it; scratch_ holds what is printed to be compared (numbers, strings with escapes).
// `source`: the text is the one the tokens were read from (SourceSpellsAsJson).
class SpellingMatcher {
 public:
  SpellingMatcher(std::string_view text, bool source)
      : text_(text),
        source_(source),
        raw_strings_(source && text.find('\\') == std::string_view::npos) {}

  bool Match(const JsonToken* t) {
    switch (t->kind) {
      case ValueKind::kUndefined:
      case ValueKind::kNull:
        return Literal("null");
      case ValueKind::kBool:
        return Literal(t->boolean ? "true" : "false");
      case ValueKind::kNumber:
        // AppendNumber prints an integer below 2^53 as its digits (0 as "0", -0 included).
        if (source_ && t->integer && std::fabs(t->number) < 9007199254740992.0) {
          return Integer(t->number == 0);
        }
        scratch_.clear();
        AppendNumber(t->number, &scratch_);
        return Literal(scratch_);
      case ValueKind::kString:
        return String(t->string);
      case ValueKind::kArray:
      case ValueKind::kObject: {
        const bool object = t->kind == ValueKind::kObject;
        if (!Char(object ? '{' : '[')) return false;
        const JsonToken* c = t + 1;
        for (uint32_t i = 0; i < t->size; ++i, c += c->span) {
          if (i != 0 && !Char(',')) return false;
          if (object && !(String(c->key) && Char(':'))) return false;
          if (!Match(c)) return false;
        }
        return Char(object ? '}' : ']');
      }
    }
    return false;
  }
  bool AtEnd() const { return pos_ == text_.size(); }

 private:
  bool Char(char c) {
    if (pos_ >= text_.size() || text_[pos_] != c) return false;
    ++pos_;
    return true;
  }
  bool Literal(std::string_view s) {
    if (text_.size() - pos_ < s.size() || text_.compare(pos_, s.size(), s) != 0) return false;
    pos_ += s.size();
    return true;
  }
  // An integer literal of the source: the text's next token is it, so its sign and digits are
  // the ones the literal was read from, and they are its print unless it is a zero with a sign.
  bool Integer(bool zero) {
    size_t end = pos_;
    if (end < text_.size() && text_[end] == '-') {
      if (zero) return false;
      ++end;
    }
    const size_t digits = end;
    while (end < text_.size() && text_[end] >= '0' && text_[end] <= '9') ++end;
    if (end == digits) return false;  // a space, or not a literal of the source
    pos_ = end;
    return true;
  }
  // AppendJsonString(s): without escapes, the quotes around the bytes of `s`.
  bool String(std::string_view s) {
    if (!raw_strings_) return ComparedString(s);
    // The text's next token is this string, spelled without escapes: its bytes are those of `s`
    // (no quote, no backslash, no control character), and so is its print.
    const size_t n = s.size();
    const char* p = text_.data() + pos_;
    if (text_.size() - pos_ < n + 2 || p[0] != '"' || p[n + 1] != '"') return false;
    pos_ += n + 2;
    return true;
  }
  // String(s) with its bytes compared (kept apart, so that the loop above stays small).
  [[gnu::noinline]] bool ComparedString(std::string_view s) {
    const size_t n = s.size();
    const char* p = text_.data() + pos_;
    if (text_.size() - pos_ >= n + 2 && p[0] == '"' && p[n + 1] == '"' &&
        SpelledUnescaped(s, p + 1)) {
      pos_ += n + 2;
      return true;
    }
    // A string with escapes is printed to be compared; any other is spelled otherwise.
    if (!JsonStringNeedsEscape(s)) return false;
    scratch_.clear();
    AppendJsonString(s, &scratch_);
    return Literal(scratch_);
  }

  std::string_view text_;
  const bool source_;
  const bool raw_strings_;  // the source holds no backslash
  size_t pos_ = 0;
  std::string scratch_;
};

}  // namespace

bool SpellsAsJson(const JsonToken* tokens, std::string_view text) {
  SpellingMatcher m(text, /*source=*/false);
  return m.Match(tokens) && m.AtEnd();
}

bool SourceSpellsAsJson(const JsonToken* tokens, std::string_view source) {
  SpellingMatcher m(source, /*source=*/true);
  return m.Match(tokens) && m.AtEnd();
}

std::optional<OnDemandLine> OnDemandTokensForTesting(std::string_view line) {
  simdjson::padded_string padded(line);
  ondemand::parser parser;
  Tokenizer tokenizer;
  if (!tokenizer.TokenizeOnDemand(parser, std::string_view(padded.data(), padded.size()),
                                  padded.size() + simdjson::SIMDJSON_PADDING)) {
    return std::nullopt;
  }
  OnDemandLine read;
  AppendJson(tokenizer.tokens(), &read.print);
  read.printed = tokenizer.printed();
  return read;
}

Expected<Value> ParseJson(std::string_view text, std::string_view name) {
  text = StripBom(text);
  simdjson::padded_string padded(text);
  std::string_view view(padded.data(), padded.size());
  // Small texts (twin documents and patches, parsed once per write) reuse one parser per thread
  // instead of allocating its buffers every time; large ones get their own, so no thread keeps a
  // huge buffer. The Converter below does not parse JSON, so the reuse is never re-entered.
  constexpr size_t kReusedParserBytes = 64 * 1024;
  thread_local dom::parser reused;
  dom::parser own;
  dom::parser& parser = text.size() <= kReusedParserBytes ? reused : own;
  dom::element root;
  simdjson::error_code code = parser.parse(padded).get(root);
  if (code != simdjson::SUCCESS) {
    return SyntaxError(view, name, 0, view.size(), simdjson::error_message(code));
  }
  Converter converter;
  Value value;
  if (!converter.Convert(root, &value)) {
    return SyntaxError(view, name, 0, view.size(), converter.reason());
  }
  return value;
}

}  // namespace twinq
