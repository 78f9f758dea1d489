// Which simdjson API flattens twins into tokens faster: the DOM (parse, then walk the tape), or
// On-Demand (walk the input as it is parsed). The ingest's tokenizer (json_reader.cc) needs
// every value of every twin, in order, with its key; this harness makes the same flat token list
// both ways from each line of an NDJSON file and checks that the two lists are equal.
//
//   ninja -C build-bench bench_json_api
//   build-bench/bench/bench_json_api --twins /tmp/f40k.ndjson [--reps 5]
//
// Built as json_reader.cc is, without CPU flags. simdjson 3.0.1 picks the kernel of either
// API's first stage (finding the structure) at run time; On-Demand's walk is the kernel the
// compile flags allow (`simdjson::ondemand`, here the portable one), as in the reader.
#include <simdjson.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace dom = simdjson::dom;
namespace od = simdjson::ondemand;

enum class Kind : uint8_t { kObject, kArray, kInteger, kDouble, kString, kBool, kNull };

struct Token {
  std::string_view key;
  std::string_view string;
  double number = 0;
  Kind kind = Kind::kNull;
  bool boolean = false;
  uint32_t size = 0;  // members or elements
  uint32_t span = 0;  // tokens, this one included
};

bool SameTokens(const std::vector<Token>& a, const std::vector<Token>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const Token& x, const Token& y) {
    return x.key == y.key && x.string == y.string && x.number == y.number && x.kind == y.kind &&
           x.boolean == y.boolean && x.size == y.size && x.span == y.span;
  });
}

// DOM: simdjson builds the tape, then the walk reads it (as json_reader.cc's Tokenizer does).
class DomTokens {
 public:
  [[gnu::noinline]] bool Tokenize(std::string_view line) {
    dom::element root;
    if (parser_.parse(line.data(), line.size(), /*realloc_if_needed=*/false).get(root)) {
      return false;
    }
    tokens_.clear();
    return Add(root, {});
  }
  const std::vector<Token>& tokens() const { return tokens_; }

 private:
  bool Add(dom::element e, std::string_view key) {
    const size_t at = tokens_.size();
    tokens_.emplace_back().key = key;
    switch (e.type()) {
      case dom::element_type::OBJECT: {
        dom::object object;
        if (e.get(object)) return false;
        uint32_t n = 0;
        for (dom::key_value_pair m : object) {
          if (!Add(m.value, m.key)) return false;
          ++n;
        }
        tokens_[at].kind = Kind::kObject;
        tokens_[at].size = n;
        break;
      }
      case dom::element_type::ARRAY: {
        dom::array array;
        if (e.get(array)) return false;
        uint32_t n = 0;
        for (dom::element v : array) {
          if (!Add(v, {})) return false;
          ++n;
        }
        tokens_[at].kind = Kind::kArray;
        tokens_[at].size = n;
        break;
      }
      case dom::element_type::INT64: {
        int64_t i;
        if (e.get(i)) return false;
        tokens_[at].kind = Kind::kInteger;
        tokens_[at].number = static_cast<double>(i);
        break;
      }
      case dom::element_type::DOUBLE:
        if (e.get(tokens_[at].number)) return false;
        tokens_[at].kind = Kind::kDouble;
        break;
      case dom::element_type::STRING:
        if (e.get(tokens_[at].string)) return false;
        tokens_[at].kind = Kind::kString;
        break;
      case dom::element_type::BOOL:
        if (e.get(tokens_[at].boolean)) return false;
        tokens_[at].kind = Kind::kBool;
        break;
      case dom::element_type::NULL_VALUE:
        tokens_[at].kind = Kind::kNull;
        break;
      default:  // UINT64
        return false;
    }
    tokens_[at].span = static_cast<uint32_t>(tokens_.size() - at);
    return true;
  }

  dom::parser parser_;
  std::vector<Token> tokens_;
};

// On-Demand: the walk drives the parse; every value is asked for (none is skipped), so every
// value is validated, and the document must end after the root object.
class OnDemandTokens {
 public:
  // `capacity`: readable bytes from line.data() on (at least line.size() + the padding).
  [[gnu::noinline]] bool Tokenize(std::string_view line, size_t capacity) {
    od::document doc;
    if (parser_.iterate(line.data(), line.size(), capacity).get(doc)) return false;
    od::object root;
    if (doc.get_object().get(root)) return false;
    tokens_.clear();
    tokens_.emplace_back();
    if (!AddMembers(root, 0)) return false;
    return doc.current_location().error() == simdjson::OUT_OF_BOUNDS;  // nothing follows
  }
  const std::vector<Token>& tokens() const { return tokens_; }

 private:
  bool AddMembers(od::object object, size_t at) {
    uint32_t n = 0;
    for (auto member : object) {
      if (member.error()) return false;
      od::field field = std::move(member).value_unsafe();
      std::string_view key;
      if (field.unescaped_key().get(key)) return false;
      if (!Add(field.value(), key)) return false;
      ++n;
    }
    tokens_[at].kind = Kind::kObject;
    tokens_[at].size = n;
    tokens_[at].span = static_cast<uint32_t>(tokens_.size() - at);
    return true;
  }

  bool Add(od::value v, std::string_view key) {
    const size_t at = tokens_.size();
    tokens_.emplace_back().key = key;
    od::json_type type;
    if (v.type().get(type)) return false;
    switch (type) {
      case od::json_type::object: {
        od::object object;
        if (v.get_object().get(object)) return false;
        return AddMembers(object, at);
      }
      case od::json_type::array: {
        od::array array;
        if (v.get_array().get(array)) return false;
        uint32_t n = 0;
        for (auto element : array) {
          od::value e;
          if (element.get(e) || !Add(e, {})) return false;
          ++n;
        }
        tokens_[at].kind = Kind::kArray;
        tokens_[at].size = n;
        break;
      }
      case od::json_type::number: {
        od::number number;
        if (v.get_number().get(number)) return false;
        if (number.is_int64()) {
          tokens_[at].kind = Kind::kInteger;
          tokens_[at].number = static_cast<double>(number.get_int64());
        } else if (number.is_double()) {
          tokens_[at].kind = Kind::kDouble;
          tokens_[at].number = number.get_double();
        } else {
          return false;  // UINT64
        }
        break;
      }
      case od::json_type::string:
        if (v.get_string().get(tokens_[at].string)) return false;
        tokens_[at].kind = Kind::kString;
        break;
      case od::json_type::boolean:
        if (v.get_bool().get(tokens_[at].boolean)) return false;
        tokens_[at].kind = Kind::kBool;
        break;
      case od::json_type::null: {
        bool null = false;
        if (v.is_null().get(null) || !null) return false;
        tokens_[at].kind = Kind::kNull;
        break;
      }
    }
    tokens_[at].span = static_cast<uint32_t>(tokens_.size() - at);
    return true;
  }

  od::parser parser_;
  std::vector<Token> tokens_;
};

[[noreturn]] void Die(const char* message) {
  std::fprintf(stderr, "bench_json_api: %s\n", message);
  std::exit(1);
}

// Calls f(line) for every non-empty line of `text`.
template <typename F>
void ForEachLine(std::string_view text, const F& f) {
  size_t pos = 0;
  while (pos < text.size()) {
    const void* nl = std::memchr(text.data() + pos, '\n', text.size() - pos);
    size_t end = nl != nullptr ? static_cast<const char*>(nl) - text.data() : text.size();
    if (end > pos) f(pos, text.substr(pos, end - pos));
    pos = end + 1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string path;
  int reps = 5;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--twins" && i + 1 < argc) {
      path = argv[++i];
    } else if (a == "--reps" && i + 1 < argc) {
      reps = std::max(1, std::atoi(argv[++i]));
    } else {
      Die("usage: bench_json_api --twins FILE.ndjson [--reps N]");
    }
  }
  if (path.empty()) Die("usage: bench_json_api --twins FILE.ndjson [--reps N]");
  std::ifstream in(path, std::ios::binary);
  if (!in) Die("cannot read the twins file");
  std::stringstream contents;
  contents << in.rdbuf();
  std::string buffer = contents.str();
  const size_t size = buffer.size();
  buffer.append(simdjson::SIMDJSON_PADDING, '\0');
  const std::string_view text(buffer.data(), size);

  DomTokens dom_tokens;
  OnDemandTokens od_tokens;
  // Both ways must give the same tokens for every line (else the timing compares nothing).
  size_t lines = 0, tokens = 0;
  ForEachLine(text, [&](size_t pos, std::string_view line) {
    if (!dom_tokens.Tokenize(line)) Die("a line the DOM walk refuses (use valid NDJSON twins)");
    if (!od_tokens.Tokenize(line, buffer.size() - pos)) Die("a line On-Demand refuses");
    if (!SameTokens(dom_tokens.tokens(), od_tokens.tokens())) Die("the two token lists differ");
    ++lines;
    tokens += dom_tokens.tokens().size();
  });
  std::printf("%s: %zu bytes, %zu lines, %zu tokens; %s\n", path.c_str(), size, lines, tokens,
              "each way checked to give the same tokens");

  auto seconds = [&](auto&& tokenize) {
    auto start = std::chrono::steady_clock::now();
    ForEachLine(text, tokenize);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  std::vector<double> dom_mbs, od_mbs;
  for (int r = 0; r < reps; ++r) {  // alternated, so drift hits both alike
    dom_mbs.push_back(size / 1e6 / seconds([&](size_t, std::string_view line) {
                        if (!dom_tokens.Tokenize(line)) Die("DOM walk failed");
                      }));
    od_mbs.push_back(size / 1e6 / seconds([&](size_t pos, std::string_view line) {
                       if (!od_tokens.Tokenize(line, buffer.size() - pos)) Die("On-Demand failed");
                     }));
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  std::printf("| API | median MB/s | runs (MB/s) |\n|---|---:|---|\n");
  for (auto [name, runs] :
       {std::pair{"DOM parse + tape walk", &dom_mbs}, std::pair{"On-Demand walk", &od_mbs}}) {
    std::string all;
    for (double m : *runs) all += (all.empty() ? "" : " / ") + std::to_string(static_cast<int>(m));
    std::printf("| %s | %.0f | %s |\n", name, median(*runs), all.c_str());
  }
  return 0;
}
