// The lexical helpers shared by both parsers (moved unchanged from parser.cc).
#include "engine/parse/lexical.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <utility>
#include <vector>

#include "engine/common/value.h"

namespace twinq::parse_internal {

namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

// Returns the byte offset of the first invalid UTF-8 sequence, or npos.
size_t FindInvalidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      // Runs of ASCII, eight bytes at a time.
      while (i + 8 <= s.size()) {
        uint64_t w;
        std::memcpy(&w, s.data() + i, 8);
        if ((w & 0x8080808080808080ULL) != 0) break;
        i += 8;
      }
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return i;
    }
    if (i + len > s.size()) return i;
    for (size_t k = 1; k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are invalid.
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
      return i;
    }
    i += len;
  }
  return std::string_view::npos;
}

// Decodes a STRING token (quotes included). Escapes: \' \" \\ \/ \b \f \n \r \t \uXXXX (UTF-16
// surrogate pairs combine), and a doubled quote stands for one quote.
bool DecodeString(std::string_view text, uint32_t base, std::string* out, Diagnostics* diags) {
  char quote = text.front();
  std::string_view body = text.substr(1, text.size() - 2);
  bool ok = true;
  for (size_t i = 0; i < body.size(); ++i) {
    char c = body[i];
    if (c == quote) {  // doubled quote (the lexer guarantees the pair)
      out->push_back(quote);
      ++i;
      continue;
    }
    if (c != '\\') {
      out->push_back(c);
      continue;
    }
    uint32_t at = base + 1 + static_cast<uint32_t>(i);
    char e = i + 1 < body.size() ? body[i + 1] : '\0';
    switch (e) {
      case '\'':
        out->push_back('\'');
        ++i;
        continue;
      case '"':
        out->push_back('"');
        ++i;
        continue;
      case '\\':
        out->push_back('\\');
        ++i;
        continue;
      case '/':
        out->push_back('/');
        ++i;
        continue;
      case 'b':
        out->push_back('\b');
        ++i;
        continue;
      case 'f':
        out->push_back('\f');
        ++i;
        continue;
      case 'n':
        out->push_back('\n');
        ++i;
        continue;
      case 'r':
        out->push_back('\r');
        ++i;
        continue;
      case 't':
        out->push_back('\t');
        ++i;
        continue;
      case 'u':
        break;
      default: {
        // The escaped character may be multi-byte: underline all of it.
        uint32_t len = 1;
        while (i + 1 + len < body.size() &&
               (static_cast<unsigned char>(body[i + 1 + len]) & 0xC0) == 0x80) {
          ++len;
        }
        diags->push_back({DiagCode::kBadEscape,
                          Severity::kError,
                          {at, at + 1 + len},
                          fmt::format("unknown escape sequence '\\{}'; valid escapes are \\' \\\" "
                                      "\\\\ \\/ \\b \\f \\n \\r \\t and \\uXXXX",
                                      body.substr(i + 1, len))});
        ok = false;
        i += len;
        continue;
      }
    }
    // \uXXXX
    auto read_hex4 = [&](size_t pos, uint32_t* v) {
      if (pos + 4 > body.size()) return false;
      uint32_t r = 0;
      for (size_t k = 0; k < 4; ++k) {
        int h = HexValue(body[pos + k]);
        if (h < 0) return false;
        r = r * 16 + static_cast<uint32_t>(h);
      }
      *v = r;
      return true;
    };
    uint32_t cp;
    if (!read_hex4(i + 2, &cp)) {
      diags->push_back({DiagCode::kBadEscape,
                        Severity::kError,
                        {at, at + 2},
                        "\\u must be followed by exactly four hex digits"});
      ok = false;
      ++i;
      continue;
    }
    size_t consumed = 6;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      uint32_t lo;
      if (i + 7 < body.size() && body[i + 6] == '\\' && body[i + 7] == 'u' &&
          read_hex4(i + 8, &lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        consumed = 12;
      } else {
        diags->push_back({DiagCode::kBadEscape,
                          Severity::kError,
                          {at, at + 6},
                          "unpaired UTF-16 high surrogate in \\u escape"});
        ok = false;
        i += 5;
        continue;
      }
    } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
      diags->push_back({DiagCode::kBadEscape,
                        Severity::kError,
                        {at, at + 6},
                        "unpaired UTF-16 low surrogate in \\u escape"});
      ok = false;
      i += 5;
      continue;
    }
    AppendUtf8(cp, out);
    i += consumed - 1;
  }
  return ok;
}

// Parses a NUMBER token: decimal (with fraction and exponent) or 0x hex.
bool ParseNumber(std::string_view text, double* out) {
  if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(text.data() + 2, text.data() + text.size(), v, 16);
    if (ec != std::errc() || p != text.data() + text.size()) return false;
    *out = static_cast<double>(v);
    return true;
  }
  // from_chars does not accept a leading '.', or a trailing '.' before an exponent; normalise.
  std::string norm;
  if (text.front() == '.') norm.push_back('0');
  for (size_t i = 0; i < text.size(); ++i) {
    norm.push_back(text[i]);
    if (text[i] == '.' && (i + 1 == text.size() || text[i + 1] == 'e' || text[i + 1] == 'E')) {
      norm.push_back('0');
    }
  }
  double d = 0;
  auto [p, ec] = std::from_chars(norm.data(), norm.data() + norm.size(), d);
  if (ec != std::errc() || p != norm.data() + norm.size() || !std::isfinite(d)) return false;
  *out = d;
  return true;
}

// Only white space, as the lexer's WS rule defines it (U+00A0 and U+FEFF included).
bool IsBlank(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    char c = s[i];
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v') {
      ++i;
    } else if (s.substr(i, 2) == "\xC2\xA0") {
      i += 2;
    } else if (s.substr(i, 3) == "\xEF\xBB\xBF") {
      i += 3;
    } else {
      return false;
    }
  }
  return true;
}

size_t AstDepth(const ast::Expr* root) {
  size_t max_depth = 0;
  std::vector<std::pair<const ast::Expr*, size_t>> stack = {{root, 1}};
  while (!stack.empty()) {
    auto [e, d] = stack.back();
    stack.pop_back();
    max_depth = std::max(max_depth, d);
    for (const ast::Expr* c : e->children) stack.push_back({c, d + 1});
  }
  return max_depth;
}

}  // namespace twinq::parse_internal
