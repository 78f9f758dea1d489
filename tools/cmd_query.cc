// twinq query / twinq targets over a twins file, on the reference engine.
#include <iostream>

#include "engine/common/json_reader.h"
#include "engine/ref/query.h"
#include "tools/commands.h"
#include "tools/frontend.h"

namespace twinq::tools {

namespace {

struct CommonOptions {
  std::string twins;
  std::string text;
  bool strict = false;
  size_t page_size = 0;
  std::string continuation;
};

// Parses the shared options; returns an exit code >= 0 to stop, -1 to go on.
int ParseOptions(const char* cmd, const char* usage, bool paging, const Args& args,
                 CommonOptions* o) {
  bool have_text = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](std::string* out) {
      if (i + 1 >= args.size()) {
        std::cerr << "twinq " << cmd << ": " << a << " needs a value\n";
        return false;
      }
      *out = args[++i];
      return true;
    };
    if (a == "-h" || a == "--help") {
      std::cout << usage;
      return 0;
    } else if (a == "--twins") {
      if (!value(&o->twins)) return 1;
    } else if (a == "--strict") {
      o->strict = true;
    } else if (paging && a == "--page-size") {
      std::string v;
      if (!value(&v)) return 1;
      char* end = nullptr;
      unsigned long n = std::strtoul(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || n == 0 || v[0] == '-') {
        std::cerr << "twinq " << cmd << ": --page-size needs a positive integer, not '" << v
                  << "'\n";
        return 1;
      }
      o->page_size = n;
    } else if (paging && a == "--continuation") {
      if (!value(&o->continuation)) return 1;
    } else if (!have_text && (a.empty() || a[0] != '-' || a == "-" || a == "*")) {
      o->text = a;
      have_text = true;
    } else {
      std::cerr << "twinq " << cmd << ": unexpected argument '" << a << "'\n" << usage;
      return 1;
    }
  }
  if (o->twins.empty() || !have_text) {
    std::cerr << usage;
    return 1;
  }
  return -1;
}

}  // namespace

int CmdQuery(const Args& args) {
  const char* usage =
      "usage: twinq query --twins FILE [--page-size N] [--continuation TOKEN] [--strict] "
      "'QUERY'\n"
      "  Runs a query over the twins in FILE (NDJSON, a JSON array or objects) and prints the\n"
      "  rows as one JSON array. With --page-size, prints one page and, when more rows follow,\n"
      "  the continuation token on stderr as 'continuation: TOKEN'.\n"
      "  Exit 0 on success, 1 for unreadable or malformed input, 2 for query errors.\n";
  CommonOptions o;
  if (int rc = ParseOptions("query", usage, true, args, &o); rc >= 0) return rc;
  check::BindOptions bind;
  bind.strict = o.strict;
  Source source("<query>", o.text);
  auto bound = CompileQuery(source, bind);
  if (!bound.ok()) {
    std::cerr << Render(bound.diagnostics(), source);
    return 2;
  }
  Expected<TwinSet> twins = ReadTwinsFile(o.twins);
  if (!twins.ok()) {
    std::cerr << "twinq query: " << twins.error().message << "\n";
    return 1;
  }
  ref::PageRequest page{o.page_size, o.continuation};
  auto result = ref::RunQuery(*bound, {twins->devices, twins->modules, {}}, page);
  if (!result.ok()) {
    std::cerr << "twinq query: " << result.error().message << "\n";
    return 1;
  }
  std::string out = "[";
  for (size_t i = 0; i < result->rows.size(); ++i) {
    out += i == 0 ? "\n" : ",\n";
    AppendJson(result->rows[i], &out);
  }
  out += result->rows.empty() ? "]\n" : "\n]\n";
  std::cout << out;
  if (!result->continuation.empty()) std::cerr << "continuation: " << result->continuation << "\n";
  return 0;
}

int CmdTargets(const Args& args) {
  const char* usage =
      "usage: twinq targets --twins FILE [--strict] 'CONDITION'\n"
      "  Prints the ids a job condition targets, one per line, ordered by deviceId then\n"
      "  moduleId: deviceId for device twins, deviceId/moduleId for module targets\n"
      "  (FROM devices.modules WHERE ...). '*' targets every device.\n"
      "  Exit 0 on success, 1 for unreadable or malformed input, 2 for condition errors.\n";
  CommonOptions o;
  if (int rc = ParseOptions("targets", usage, false, args, &o); rc >= 0) return rc;
  check::BindOptions bind;
  bind.strict = o.strict;
  Source source("<condition>", o.text);
  auto bound = CompileCondition(source, bind);
  if (!bound.ok()) {
    std::cerr << Render(bound.diagnostics(), source);
    return 2;
  }
  Expected<TwinSet> twins = ReadTwinsFile(o.twins);
  if (!twins.ok()) {
    std::cerr << "twinq targets: " << twins.error().message << "\n";
    return 1;
  }
  std::string out;
  for (const std::string& id : ref::TargetIds(*bound, {twins->devices, twins->modules, {}})) {
    out += id;
    out += '\n';
  }
  std::cout << out;
  return 0;
}

}  // namespace twinq::tools
