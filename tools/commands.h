// The subcommands of the twinq tool. Each returns the process exit code:
//   0 success, 1 unreadable or malformed input files / usage errors, 2 query diagnostics.
#ifndef TWINQ_TOOLS_COMMANDS_H_
#define TWINQ_TOOLS_COMMANDS_H_

#include <string>
#include <vector>

namespace twinq::tools {

using Args = std::vector<std::string>;

int CmdParse(const Args& args);
int CmdQuery(const Args& args);
int CmdTargets(const Args& args);
int CmdExplain(const Args& args);
int CmdGen(const Args& args);
int CmdIndex(const Args& args);

}  // namespace twinq::tools

#endif  // TWINQ_TOOLS_COMMANDS_H_
