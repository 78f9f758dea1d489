// The reference evaluator: a plain tree walk over JSON documents with the exact semantics of
// docs/language.md. It is the executable specification and the oracle of the fast engine, so
// it favours clarity over speed.
#ifndef TWINQ_ENGINE_REF_EVALUATOR_H_
#define TWINQ_ENGINE_REF_EVALUATOR_H_

#include <string_view>
#include <vector>

#include "engine/check/bound.h"
#include "engine/common/value.h"

namespace twinq::ref {

// Follows a path through a document (DESIGN.md decision 2). A missing step, a name step on a
// non-object, or an index step on a non-array (or out of range) gives undefined. When the last
// step is a name and the value exists, `*last_spelling` receives the key as stored.
Value ResolvePath(const std::vector<check::PathStep>& path, const Value& doc,
                  std::string_view* last_spelling = nullptr);

// The value of a bound expression for one document.
Value Evaluate(const check::BoundExpr& e, const Value& doc);

// True when the condition selects the document: it evaluates to boolean true. A null condition
// selects everything.
bool Selects(const check::BoundExpr* condition, const Value& doc);

}  // namespace twinq::ref

#endif  // TWINQ_ENGINE_REF_EVALUATOR_H_
