// The subcommands of the twinq tool. Each returns the process exit code:
//   0 success, 1 unreadable or malformed input files / usage errors, 2 query diagnostics.
#ifndef TWINQ_TOOLS_COMMANDS_H_
#define TWINQ_TOOLS_COMMANDS_H_

#include <memory>
#include <string>
#include <vector>

#include "engine/common/result.h"
#include "index/fleet.h"

namespace twinq::tools {

using Args = std::vector<std::string>;

int CmdParse(const Args& args);
int CmdQuery(const Args& args);
int CmdTargets(const Args& args);
int CmdExplain(const Args& args);
int CmdGen(const Args& args);
int CmdIndex(const Args& args);
int CmdRepl(const Args& args);
int CmdJob(const Args& args);

// Fleet::Open behind a check that PATH is not a directory (Fleet::Open would try to allocate the
// directory's seek size and abort). For every --index option.
Expected<std::unique_ptr<index::Fleet>> OpenIndexFile(const std::string& path);

}  // namespace twinq::tools

#endif  // TWINQ_TOOLS_COMMANDS_H_
