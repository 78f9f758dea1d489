#include <cstdio>
#include <iostream>

#include "engine/parse/parser.h"
#include "tools/commands.h"

namespace twinq::tools {

int CmdParse(const Args& args) {
  bool condition = false;
  bool ranges = false;
  std::string text;
  bool have_text = false;
  for (const std::string& a : args) {
    if (a == "--condition") {
      condition = true;
    } else if (a == "--ranges") {
      ranges = true;
    } else if (a == "-h" || a == "--help") {
      std::cout << "usage: twinq parse [--condition] [--ranges] 'TEXT'\n"
                   "  Prints the AST of a query (or, with --condition, of a job condition).\n"
                   "  Exit 0 with the AST on stdout, or 2 with diagnostics on stderr.\n";
      return 0;
    } else if (!have_text) {
      text = a;
      have_text = true;
    } else {
      std::cerr << "twinq parse: unexpected argument '" << a << "'\n";
      return 1;
    }
  }
  if (!have_text) {
    std::cerr << "usage: twinq parse [--condition] [--ranges] 'TEXT'\n";
    return 1;
  }
  Source source(condition ? "<condition>" : "<query>", text);
  Result<ast::Ast> ast = condition ? ParseCondition(source) : ParseQuery(source);
  if (!ast.ok()) {
    std::cerr << Render(ast.diagnostics(), source);
    return 2;
  }
  ast::PrintOptions opts;
  opts.ranges = ranges;
  std::cout << ast::Print(*ast, opts) << "\n";
  return 0;
}

}  // namespace twinq::tools
