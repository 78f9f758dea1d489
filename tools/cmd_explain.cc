// twinq explain [--plan] 'TEXT' [--twins F | --index F]: the VM program of a condition (or of a
// query's WHERE clause), one instruction per line; with --plan, the decisions taken: the access
// path per term with estimated and actual row counts.
#include <cctype>
#include <iostream>

#include "engine/vm/query.h"
#include "index/fleet.h"
#include "tools/commands.h"
#include "tools/frontend.h"

namespace twinq::tools {

namespace {

bool LooksLikeQuery(const std::string& text) {
  size_t i = 0;
  while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  return text.size() - i >= 6 && EqualsIgnoreCase(std::string_view(text).substr(i, 6), "select");
}

}  // namespace

int CmdExplain(const Args& args) {
  const char* usage =
      "usage: twinq explain [--plan] [--strict] [--twins FILE | --index FILE] 'TEXT'\n"
      "  Prints the VM program of a job condition, or of the WHERE clause of a query (TEXT\n"
      "  starting with SELECT). With --plan, prints the plan instead: each index or residual\n"
      "  step with its access path, estimated rows and actual rows over the fleet. Without a\n"
      "  fleet, the program is compiled against an empty index (no statistics).\n";
  bool plan = false, strict = false, have_text = false;
  std::string twins, index_file, text;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-h" || a == "--help") {
      std::cout << usage;
      return 0;
    } else if (a == "--plan") {
      plan = true;
    } else if (a == "--strict") {
      strict = true;
    } else if ((a == "--twins" || a == "--index") && i + 1 < args.size()) {
      (a == "--twins" ? twins : index_file) = args[++i];
    } else if (!have_text && (a.empty() || a[0] != '-' || a == "*")) {
      text = a;
      have_text = true;
    } else {
      std::cerr << "twinq explain: unexpected argument '" << a << "'\n" << usage;
      return 1;
    }
  }
  if (!have_text || (!twins.empty() && !index_file.empty())) {
    std::cerr << usage;
    return 1;
  }
  std::unique_ptr<index::Fleet> fleet = std::make_unique<index::Fleet>();
  if (!twins.empty()) {
    Expected<size_t> n = fleet->LoadTwinsFile(twins);
    if (!n.ok()) {
      std::cerr << "twinq explain: " << n.error().message << "\n";
      return 1;
    }
  } else if (!index_file.empty()) {
    auto opened = index::Fleet::Open(index_file);
    if (!opened.ok()) {
      std::cerr << "twinq explain: " << opened.error().message << "\n";
      return 1;
    }
    fleet = std::move(opened.value());
  }
  index::Snapshot snap = fleet->snapshot();
  check::BindOptions bind;
  bind.strict = strict;
  vm::Program program;
  const index::Table* table = nullptr;
  if (LooksLikeQuery(text)) {
    Source source("<query>", text);
    auto q = CompileQuery(source, bind);
    if (!q.ok()) {
      std::cerr << Render(q.diagnostics(), source);
      return 2;
    }
    table = &vm::TableOf(snap, q->collection);
    program = vm::CompileFilter(q->where.get(), *table);
    std::cout << (plan ? vm::Plan(program, *table) : program.Explain());
    return 0;
  }
  Source source("<condition>", text);
  auto c = CompileCondition(source, bind);
  if (!c.ok()) {
    std::cerr << Render(c.diagnostics(), source);
    return 2;
  }
  table = &vm::TableOf(snap, c->collection);
  program = vm::CompileFilter(c->all ? nullptr : c->expr.get(), *table);
  std::cout << (plan ? vm::Plan(program, *table) : program.Explain());
  return 0;
}

}  // namespace twinq::tools
