#include "tests/runner/test_file.h"

#include <sstream>

namespace twinq::testing {

namespace {

bool StartsWithWord(const std::string& line, const std::string& word, std::string* rest) {
  if (line.compare(0, word.size(), word) != 0) return false;
  if (line.size() == word.size()) {
    *rest = "";
    return true;
  }
  if (line[word.size()] != ' ') return false;
  *rest = line.substr(word.size() + 1);
  return true;
}

}  // namespace

bool ParseTestFile(const std::string& path, const std::string& text, TestFile* out,
                   std::string* error) {
  out->path = path;
  std::vector<std::string> lines;
  {
    std::istringstream in(text);
    std::string l;
    while (std::getline(in, l)) {
      if (!l.empty() && l.back() == '\r') l.pop_back();
      lines.push_back(l);
    }
  }
  auto fail = [&](size_t line, const std::string& msg) {
    *error = path + ":" + std::to_string(line) + ": " + msg;
    return false;
  };
  size_t i = 0;
  while (i < lines.size()) {
    const std::string& l = lines[i];
    if (l.empty() || l[0] == '#') {
      ++i;
      continue;
    }
    Record r;
    r.line = i + 1;
    std::string rest;
    bool expects_result = true;
    if (StartsWithWord(l, "fleet", &rest)) {
      r.kind = Record::Kind::kFleet;
      r.arg = rest;
      expects_result = false;
    } else if (StartsWithWord(l, "mode", &rest)) {
      r.kind = Record::Kind::kMode;
      r.arg = rest;
      if (rest != "strict" && rest != "default") return fail(r.line, "mode is strict or default");
      out->records.push_back(r);
      ++i;
      continue;
    } else if (StartsWithWord(l, "targets", &rest)) {
      r.kind = Record::Kind::kTargets;
      r.arg = rest;
    } else if (StartsWithWord(l, "count", &rest)) {
      r.kind = Record::Kind::kCount;
      r.arg = rest;
    } else if (StartsWithWord(l, "query-paged", &rest)) {
      r.kind = Record::Kind::kQueryPaged;
      size_t sp = rest.find(' ');
      if (sp == std::string::npos) return fail(r.line, "query-paged N QUERY");
      try {
        r.page_size = std::stoul(rest.substr(0, sp));
      } catch (...) {
        return fail(r.line, "query-paged needs a page size");
      }
      if (r.page_size == 0) return fail(r.line, "page size must be positive");
      r.arg = rest.substr(sp + 1);
    } else if (StartsWithWord(l, "query", &rest)) {
      r.kind = Record::Kind::kQuery;
      r.arg = rest;
    } else if (StartsWithWord(l, "error-condition", &rest)) {
      r.kind = Record::Kind::kErrorCondition;
      r.arg = rest;
    } else if (StartsWithWord(l, "error", &rest)) {
      r.kind = Record::Kind::kError;
      r.arg = rest;
    } else {
      return fail(r.line, "unknown directive: " + l);
    }
    ++i;
    if (!expects_result) {
      // fleet: inline documents up to a blank line (none when a file is named).
      while (i < lines.size() && !lines[i].empty()) r.body.push_back(lines[i++]);
      if (r.arg.empty() && r.body.empty()) return fail(r.line, "fleet without documents");
      out->records.push_back(std::move(r));
      continue;
    }
    // The text may continue on following lines up to "----" (multi-line queries).
    while (i < lines.size() && lines[i] != "----" && !lines[i].empty()) r.arg += "\n" + lines[i++];
    if (i >= lines.size() || lines[i] != "----") return fail(r.line, "missing ---- line");
    ++i;
    while (i < lines.size() && !lines[i].empty()) r.body.push_back(lines[i++]);
    out->records.push_back(std::move(r));
  }
  return true;
}

}  // namespace twinq::testing
