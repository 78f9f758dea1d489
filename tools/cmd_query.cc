// twinq query / twinq targets over a twins file or a saved index, on the reference engine.
#include <iostream>
#include <memory>

#include "engine/common/json_reader.h"
#include "engine/ref/query.h"
#include "index/fleet.h"
#include "tools/commands.h"
#include "tools/frontend.h"

namespace twinq::tools {

namespace {

struct CommonOptions {
  std::string twins;
  std::string index;  // a file saved by 'twinq index build'
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
    } else if (a == "--index") {
      if (!value(&o->index)) return 1;
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
  if (!o->twins.empty() && !o->index.empty()) {
    std::cerr << "twinq " << cmd << ": give either --twins or --index, not both\n";
    return 1;
  }
  if ((o->twins.empty() && o->index.empty()) || !have_text) {
    std::cerr << usage;
    return 1;
  }
  return -1;
}

// The twins of --twins FILE, or the live documents of --index FILE in id order.
Expected<TwinSet> LoadTwins(const CommonOptions& o) {
  if (o.index.empty()) return ReadTwinsFile(o.twins);
  Expected<std::unique_ptr<index::Fleet>> fleet = index::Fleet::Open(o.index);
  if (!fleet.ok()) return fleet.error();
  return index::ToTwinSet((*fleet)->snapshot());
}

}  // namespace

int CmdQuery(const Args& args) {
  const char* usage =
      "usage: twinq query (--twins FILE | --index INDEX) [--page-size N]\n"
      "                   [--continuation TOKEN] [--strict] 'QUERY'\n"
      "  Runs a query over the twins in FILE (NDJSON, a JSON array or objects) or in INDEX (saved\n"
      "  by 'twinq index build') and prints the rows as one JSON array. With --page-size, prints\n"
      "  one page and, when more rows follow, the continuation token on stderr as\n"
      "  'continuation: TOKEN'.\n"
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
  Expected<TwinSet> twins = LoadTwins(o);
  if (!twins.ok()) {
    std::cerr << "twinq query: " << twins.error().message << "\n";
    return 1;
  }
  PageRequest page{o.page_size, o.continuation};
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
      "usage: twinq targets (--twins FILE | --index INDEX) [--strict] 'CONDITION'\n"
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
  Expected<TwinSet> twins = LoadTwins(o);
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
