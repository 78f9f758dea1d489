#include "tools/frontend.h"

#include "engine/parse/parser.h"

namespace twinq::tools {

Result<check::BoundQuery> CompileQuery(const Source& source, const check::BindOptions& options) {
  Result<ast::Ast> ast = ParseQuery(source);
  if (!ast.ok()) return ast.take_diagnostics();
  return check::BindQuery(*ast->query, options);
}

Result<check::BoundCondition> CompileCondition(const Source& source,
                                               const check::BindOptions& options) {
  Result<ast::Ast> ast = ParseCondition(source);
  if (!ast.ok()) return ast.take_diagnostics();
  return check::BindCondition(*ast->condition, options);
}

}  // namespace twinq::tools
