#include "engine/check/semantics.h"

#include <cmath>

namespace twinq::sem {

int OrderSameKind(const Value& a, const Value& b) {
  switch (a.kind()) {
    case ValueKind::kNumber: {
      double x = a.as_number(), y = b.as_number();
      return x < y ? -1 : x > y ? 1 : 0;
    }
    case ValueKind::kString: {
      int c = a.as_string().compare(b.as_string());
      return c < 0 ? -1 : c > 0 ? 1 : 0;
    }
    case ValueKind::kBool:
      return static_cast<int>(a.as_bool()) - static_cast<int>(b.as_bool());
    default:
      return 0;
  }
}

Value Compare(ast::Op op, const Value& a, const Value& b) {
  if (!a.is_primitive() || !b.is_primitive() || a.kind() != b.kind()) return Value();
  if (a.is_null()) {
    if (op == ast::Op::kEq) return Value::Bool(true);
    if (op == ast::Op::kNe) return Value::Bool(false);
    return Value();
  }
  int c = OrderSameKind(a, b);
  switch (op) {
    case ast::Op::kEq:
      return Value::Bool(c == 0);
    case ast::Op::kNe:
      return Value::Bool(c != 0);
    case ast::Op::kLt:
      return Value::Bool(c < 0);
    case ast::Op::kLe:
      return Value::Bool(c <= 0);
    case ast::Op::kGt:
      return Value::Bool(c > 0);
    case ast::Op::kGe:
      return Value::Bool(c >= 0);
    default:
      return Value();
  }
}

Value Arithmetic(ast::Op op, const Value& a, const Value& b) {
  if (!a.is_number() || !b.is_number()) return Value();
  double x = a.as_number(), y = b.as_number(), r = 0;
  switch (op) {
    case ast::Op::kAdd:
      r = x + y;
      break;
    case ast::Op::kSub:
      r = x - y;
      break;
    case ast::Op::kMul:
      r = x * y;
      break;
    case ast::Op::kDiv:
      if (y == 0) return Value();
      r = x / y;
      break;
    case ast::Op::kMod:
      if (y == 0) return Value();
      r = std::fmod(x, y);
      break;
    default:
      return Value();
  }
  if (!std::isfinite(r)) return Value();
  return Value::Number(r);
}

Value Unary(ast::Op op, const Value& a) {
  if (!a.is_number()) return Value();
  return Value::Number(op == ast::Op::kNeg ? -a.as_number() : a.as_number());
}

Value Not(const Value& a) {
  if (!a.is_bool()) return Value();
  return Value::Bool(!a.as_bool());
}

Value And(const Value& a, const Value& b) {
  if (IsFalse(a) || IsFalse(b)) return Value::Bool(false);
  if (IsTrue(a) && IsTrue(b)) return Value::Bool(true);
  return Value();
}

Value Or(const Value& a, const Value& b) {
  if (IsTrue(a) || IsTrue(b)) return Value::Bool(true);
  if (IsFalse(a) && IsFalse(b)) return Value::Bool(false);
  return Value();
}

Value In(const Value& x, const Value& list) {
  Value acc = Value::Bool(false);
  for (const Value& e : list.as_array()) {
    acc = Or(acc, Compare(ast::Op::kEq, x, e));
    if (IsTrue(acc)) break;
  }
  return acc;
}

bool SameJson(const Value& a, const Value& b) {
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case ValueKind::kArray: {
      const Array& x = a.as_array();
      const Array& y = b.as_array();
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i) {
        if (!SameJson(x[i], y[i])) return false;
      }
      return true;
    }
    case ValueKind::kObject: {
      const Object& x = a.as_object();
      const Object& y = b.as_object();
      if (x.size() != y.size()) return false;
      for (const Member& m : x) {  // member order does not matter; keys are unique
        const Value* other = b.Find(m.first);
        if (other == nullptr || !SameJson(m.second, *other)) return false;
      }
      return true;
    }
    default:
      return a == b;
  }
}

}  // namespace twinq::sem
