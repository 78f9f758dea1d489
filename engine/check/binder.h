// The binder: AST to bound IR. Resolves paths and functions, checks arity, aggregates, GROUP BY
// and collection rules, folds constants and de-duplicates IN lists. Reports every independent
// error in one pass, each with the range of the offending text.
#ifndef TWINQ_ENGINE_CHECK_BINDER_H_
#define TWINQ_ENGINE_CHECK_BINDER_H_

#include "engine/ast/ast.h"
#include "engine/check/bound.h"
#include "engine/common/result.h"

namespace twinq::check {

struct BindOptions {
  // Accept only what real IoT Hub twin queries accept: IS_DEFINED, STARTSWITH, ENDSWITH and
  // the aggregates. Other functions are E202.
  bool strict = false;
  // Fold constant subtrees (turned off by the "no optimisation" engine configuration).
  bool fold = true;
};

Result<BoundQuery> BindQuery(const ast::Query& query, const BindOptions& options = {});
Result<BoundCondition> BindCondition(const ast::Condition& condition,
                                     const BindOptions& options = {});

}  // namespace twinq::check

#endif  // TWINQ_ENGINE_CHECK_BINDER_H_
