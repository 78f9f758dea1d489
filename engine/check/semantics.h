// The scalar semantics of the language over Values (DESIGN.md, semantics decisions 3-6): the one
// definition shared by constant folding (binder) and the reference evaluator. The fast engine is
// checked against these functions.
#ifndef TWINQ_ENGINE_CHECK_SEMANTICS_H_
#define TWINQ_ENGINE_CHECK_SEMANTICS_H_

#include "engine/ast/ast.h"
#include "engine/common/value.h"

namespace twinq::sem {

// Booleans are Value::Bool or undefined. Anything else counts as undefined in logic.
inline bool IsTrue(const Value& v) { return v.is_bool() && v.as_bool(); }
inline bool IsFalse(const Value& v) { return v.is_bool() && !v.as_bool(); }

// = != < <= > >= on two values: defined only for two primitives of the same JSON type.
Value Compare(ast::Op op, const Value& a, const Value& b);
// Three-way order of two primitives of the same type (numbers, strings by bytes, false < true).
// Returns -1, 0 or 1; callers guarantee the same kind.
int OrderSameKind(const Value& a, const Value& b);
// + - * / % on numbers; undefined for anything else, division or modulo by zero, and
// non-finite results.
Value Arithmetic(ast::Op op, const Value& a, const Value& b);
// Unary - and +: numbers only.
Value Unary(ast::Op op, const Value& a);
// x IN list: the OR of x = element over the list (decision 5). NIN is NOT of that.
Value In(const Value& x, const Value& list);
// Kleene logic.
Value Not(const Value& a);
Value And(const Value& a, const Value& b);
Value Or(const Value& a, const Value& b);

// JSON equality used for de-duplicating IN lists and ARRAY_CONTAINS: same kind and equal
// contents (numbers numerically, objects by key regardless of member order).
bool SameJson(const Value& a, const Value& b);

}  // namespace twinq::sem

#endif  // TWINQ_ENGINE_CHECK_SEMANTICS_H_
