#include "engine/ref/evaluator.h"

#include "engine/check/functions.h"
#include "engine/check/semantics.h"

namespace twinq::ref {

using check::BoundExpr;
using check::BoundKind;

Value ResolvePath(const std::vector<check::PathStep>& path, const Value& doc,
                  std::string_view* last_spelling) {
  const Value* cur = &doc;
  std::string_view spelling;
  for (const check::PathStep& step : path) {
    if (step.is_index) {
      if (!cur->is_array() || step.index >= cur->as_array().size()) return Value();
      cur = &cur->as_array()[step.index];
      spelling = {};
    } else {
      cur = cur->FindFolded(step.name, &spelling);
      if (cur == nullptr) return Value();
    }
  }
  if (last_spelling != nullptr) *last_spelling = spelling;
  return *cur;
}

Value Evaluate(const BoundExpr& e, const Value& doc) {
  switch (e.kind) {
    case BoundKind::kConst:
      return e.value;
    case BoundKind::kPath:
      return ResolvePath(e.path, doc);
    case BoundKind::kCall: {
      std::vector<Value> args;
      args.reserve(e.children.size());
      for (const auto& c : e.children) args.push_back(Evaluate(*c, doc));
      return check::CallFunction(e.function->id, args);
    }
    case BoundKind::kUnary:
      return sem::Unary(e.op, Evaluate(*e.children[0], doc));
    case BoundKind::kArith:
      return sem::Arithmetic(e.op, Evaluate(*e.children[0], doc), Evaluate(*e.children[1], doc));
    case BoundKind::kCompare:
      return sem::Compare(e.op, Evaluate(*e.children[0], doc), Evaluate(*e.children[1], doc));
    case BoundKind::kIn: {
      Value r = sem::In(Evaluate(*e.children[0], doc), e.value);
      return e.op == ast::Op::kNin ? sem::Not(r) : r;
    }
    case BoundKind::kNot:
      return sem::Not(Evaluate(*e.children[0], doc));
    case BoundKind::kAnd: {
      // Kleene AND over all operands; no short-circuit tricks: this is the specification.
      Value acc = Value::Bool(true);
      for (const auto& c : e.children) acc = sem::And(acc, Evaluate(*c, doc));
      return acc;
    }
    case BoundKind::kOr: {
      Value acc = Value::Bool(false);
      for (const auto& c : e.children) acc = sem::Or(acc, Evaluate(*c, doc));
      return acc;
    }
  }
  return Value();
}

bool Selects(const BoundExpr* condition, const Value& doc) {
  return condition == nullptr || sem::IsTrue(Evaluate(*condition, doc));
}

}  // namespace twinq::ref
