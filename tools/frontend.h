// Text to bound IR in one call: parse, then bind. Used by the tools and the test runner.
#ifndef TWINQ_TOOLS_FRONTEND_H_
#define TWINQ_TOOLS_FRONTEND_H_

#include "engine/check/binder.h"
#include "engine/common/result.h"
#include "engine/common/source.h"

namespace twinq::tools {

Result<check::BoundQuery> CompileQuery(const Source& source,
                                       const check::BindOptions& options = {});
Result<check::BoundCondition> CompileCondition(const Source& source,
                                               const check::BindOptions& options = {});

}  // namespace twinq::tools

#endif  // TWINQ_TOOLS_FRONTEND_H_
