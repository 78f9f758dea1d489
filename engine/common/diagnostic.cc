#include "engine/common/diagnostic.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

namespace twinq {

std::string DiagCodeName(DiagCode code) { return fmt::format("E{}", static_cast<int>(code)); }

std::string_view DiagCodeDescription(DiagCode code) {
  switch (code) {
#define TWINQ_DIAG_DESC(name, number, desc) \
  case DiagCode::name:                      \
    return desc;
    TWINQ_DIAG_CODES(TWINQ_DIAG_DESC)
#undef TWINQ_DIAG_DESC
  }
  return "unknown diagnostic";
}

const std::vector<DiagCode>& AllDiagCodes() {
  static const std::vector<DiagCode> all = {
#define TWINQ_DIAG_LIST(name, number, desc) DiagCode::name,
      TWINQ_DIAG_CODES(TWINQ_DIAG_LIST)
#undef TWINQ_DIAG_LIST
  };
  return all;
}

namespace {

// Number of code points in a UTF-8 byte string.
size_t CodePoints(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// Makes a source line printable: control characters other than tab become a space, so the caret
// line stays aligned (one column per code point).
std::string Printable(std::string_view line) {
  std::string out;
  out.reserve(line.size());
  for (unsigned char c : line) out.push_back((c < 0x20 && c != '\t') || c == 0x7f ? ' ' : char(c));
  return out;
}

}  // namespace

std::string Render(const Diagnostic& d, const Source& source) {
  LineCol lc = source.Locate(d.range.begin);
  std::string out =
      fmt::format("{}[{}] {}:{}:{}: {}\n", d.severity == Severity::kError ? "error" : "note",
                  DiagCodeName(d.code), source.name(), lc.line, lc.column, d.message);
  std::string_view line = source.Line(lc.line);
  out += " | ";
  out += Printable(line);
  out += "\n | ";
  // Prefix: keep tabs so the caret lines up under a tab-indented line.
  size_t col = 1;
  for (size_t i = 0; i < line.size() && col < lc.column; ++i) {
    unsigned char c = static_cast<unsigned char>(line[i]);
    if ((c & 0xC0) == 0x80) continue;
    out.push_back(c == '\t' ? '\t' : ' ');
    ++col;
  }
  // Underline the part of the range that lies on this line, with at least one caret.
  size_t width = 1;
  if (d.range.end > d.range.begin) {
    LineCol end_lc = source.Locate(d.range.end);
    size_t last_col = end_lc.line == lc.line ? end_lc.column : CodePoints(line) + 1;
    if (last_col > lc.column) width = last_col - lc.column;
  }
  out.push_back('^');
  out.append(width - 1, '~');
  out.push_back('\n');
  return out;
}

std::string Render(const Diagnostics& ds, const Source& source) {
  std::string out;
  for (const Diagnostic& d : ds) out += Render(d, source);
  return out;
}

std::string RenderShort(const Diagnostic& d, const Source& source) {
  LineCol lc = source.Locate(d.range.begin);
  return fmt::format("{} {}:{}: {}", DiagCodeName(d.code), lc.line, lc.column, d.message);
}

size_t EditDistanceIgnoreCase(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      bool same = std::tolower(static_cast<unsigned char>(a[i - 1])) ==
                  std::tolower(static_cast<unsigned char>(b[j - 1]));
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (same ? 0 : 1)});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string_view ClosestMatch(std::string_view word,
                              const std::vector<std::string_view>& candidates) {
  if (word.empty() || word.size() > 64) return {};
  // Allow one edit for short words, two for longer ones; never suggest the word itself.
  size_t budget = word.size() <= 4 ? 1 : 2;
  std::string_view best;
  size_t best_d = budget + 1;
  for (std::string_view c : candidates) {
    size_t d = EditDistanceIgnoreCase(word, c);
    if (d == 0) continue;
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  return best;
}

}  // namespace twinq
