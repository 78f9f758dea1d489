// The twinq command: one binary, several subcommands.
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "tools/commands.h"

namespace {

struct Command {
  const char* name;
  int (*run)(const twinq::tools::Args&);
  const char* summary;
};

const Command kCommands[] = {
    {"parse", twinq::tools::CmdParse, "print the AST of a query or condition"},
    {"query", twinq::tools::CmdQuery, "run a query over a twins file, print JSON rows"},
    {"targets", twinq::tools::CmdTargets, "print the ids a job condition targets"},
    {"explain", twinq::tools::CmdExplain, "print the VM program (or --plan) of a condition"},
    {"gen", twinq::tools::CmdGen, "write a seeded fleet of realistic twins as NDJSON"},
    {"index", twinq::tools::CmdIndex, "build a columnar index file from twins, or describe one"},
    {"repl", twinq::tools::CmdRepl, "interactive shell (the default, on a built-in demo fleet)"},
    {"job", twinq::tools::CmdJob, "schedule twin updates and direct methods (IoT Hub jobs)"},
};

void Usage(std::ostream& out) {
  out << "usage: twinq <command> [options]\n\ncommands:\n";
  for (const Command& c : kCommands) {
    out << "  " << c.name << std::string(10 - std::strlen(c.name), ' ') << c.summary << "\n";
  }
  out << "\nRun 'twinq <command> --help' for a command's options.\n";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return twinq::tools::CmdRepl({});  // the REPL on the built-in demo fleet
  std::string name = argv[1];
  if (name == "-h" || name == "--help" || name == "help") {
    Usage(std::cout);
    return 0;
  }
  twinq::tools::Args args(argv + 2, argv + argc);
  for (const Command& c : kCommands) {
    if (name == c.name) return c.run(args);
  }
  std::cerr << "twinq: unknown command '" << name << "'\n";
  Usage(std::cerr);
  return 1;
}
