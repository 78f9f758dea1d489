#include <fmt/format.h>

#include "engine/ast/ast.h"

namespace twinq::ast {

const char* OpName(Op op) {
  switch (op) {
    case Op::kNone:
      return "none";
    case Op::kNeg:
      return "neg";
    case Op::kPos:
      return "pos";
    case Op::kMul:
      return "mul";
    case Op::kDiv:
      return "div";
    case Op::kMod:
      return "mod";
    case Op::kAdd:
      return "add";
    case Op::kSub:
      return "sub";
    case Op::kEq:
      return "eq";
    case Op::kNe:
      return "ne";
    case Op::kLt:
      return "lt";
    case Op::kLe:
      return "le";
    case Op::kGt:
      return "gt";
    case Op::kGe:
      return "ge";
    case Op::kIn:
      return "in";
    case Op::kNin:
      return "nin";
  }
  return "?";
}

bool IsComparison(Op op) { return op >= Op::kEq && op <= Op::kGe; }
bool IsArithmetic(Op op) { return op >= Op::kMul && op <= Op::kSub; }

const char* CollectionName(Collection c) {
  switch (c) {
    case Collection::kDevices:
      return "devices";
    case Collection::kModules:
      return "devices.modules";
    case Collection::kJobs:
      return "devices.jobs";
  }
  return "?";
}

namespace {

void AppendQuoted(std::string_view s, std::string* out) {
  out->push_back('\'');
  for (unsigned char c : s) {
    if (c == '\'' || c == '\\') {
      out->push_back('\\');
      out->push_back(static_cast<char>(c));
    } else if (c < 0x20 || c == 0x7f) {
      out->append(fmt::format("\\u{:04x}", c));
    } else {
      out->push_back(static_cast<char>(c));
    }
  }
  out->push_back('\'');
}

void AppendConstant(const Value& v, std::string* out) {
  switch (v.kind()) {
    case ValueKind::kString:
      AppendQuoted(v.as_string(), out);
      return;
    case ValueKind::kArray: {
      out->push_back('[');
      bool first = true;
      for (const Value& e : v.as_array()) {
        if (!first) out->append(", ");
        first = false;
        AppendConstant(e, out);
      }
      out->push_back(']');
      return;
    }
    case ValueKind::kObject:
      out->append(ToJson(v));
      return;
    case ValueKind::kNumber:
      out->append(FormatNumber(v.as_number()));
      return;
    default:
      out->append(ToJson(v));
      return;
  }
}

void AppendRange(SourceRange r, const PrintOptions& opts, std::string* out) {
  if (opts.ranges) out->append(fmt::format("@{}:{}", r.begin, r.end));
}

void AppendExpr(const Expr& e, const PrintOptions& opts, std::string* out) {
  switch (e.kind) {
    case ExprKind::kLiteral:
      AppendConstant(e.value, out);
      break;
    case ExprKind::kPath:
      out->append(PrintPath(e.path));
      break;
    case ExprKind::kCall: {
      out->append("call(");
      out->append(e.name);
      for (const Expr* c : e.children) {
        out->append(", ");
        AppendExpr(*c, opts, out);
      }
      out->push_back(')');
      break;
    }
    case ExprKind::kIn:
      out->append(OpName(e.op));
      out->push_back('(');
      AppendExpr(*e.children[0], opts, out);
      out->append(", ");
      AppendConstant(e.value, out);
      out->push_back(')');
      break;
    case ExprKind::kUnary:
    case ExprKind::kBinary:
    case ExprKind::kNot:
    case ExprKind::kAnd:
    case ExprKind::kOr: {
      out->append(e.kind == ExprKind::kNot   ? "not"
                  : e.kind == ExprKind::kAnd ? "and"
                  : e.kind == ExprKind::kOr  ? "or"
                                             : OpName(e.op));
      out->push_back('(');
      bool first = true;
      for (const Expr* c : e.children) {
        if (!first) out->append(", ");
        first = false;
        AppendExpr(*c, opts, out);
      }
      out->push_back(')');
      break;
    }
  }
  AppendRange(e.range, opts, out);
}

}  // namespace

std::string PrintPath(const std::vector<PathSegment>& path) {
  std::string out;
  for (size_t i = 0; i < path.size(); ++i) {
    const PathSegment& s = path[i];
    if (s.kind == PathSegment::Kind::kIndex) {
      out.append(fmt::format("[{}]", s.index));
      continue;
    }
    if (i > 0) out.push_back('.');
    if (s.escaped) {
      out.append("[[").append(s.name).append("]]");
    } else {
      out.append(s.name);
    }
  }
  return out;
}

std::string PrintConstant(const Value& v) {
  std::string out;
  AppendConstant(v, &out);
  return out;
}

std::string Print(const Expr& e, const PrintOptions& opts) {
  std::string out;
  AppendExpr(e, opts, &out);
  return out;
}

std::string Print(const Query& q, const PrintOptions& opts) {
  std::string out = "query(";
  if (q.top) out.append(fmt::format("top {}; ", *q.top));
  out.append("select ");
  if (q.select_all) {
    out.push_back('*');
  } else {
    bool first = true;
    for (const Projection& p : q.projections) {
      if (!first) out.append(", ");
      first = false;
      AppendExpr(*p.expr, opts, &out);
      if (p.alias) out.append(" as ").append(*p.alias);
    }
  }
  out.append("; from ").append(CollectionName(q.collection));
  if (q.where != nullptr) {
    out.append("; where ");
    AppendExpr(*q.where, opts, &out);
  }
  if (!q.group_by.empty()) {
    out.append("; group by ");
    bool first = true;
    for (const Expr* g : q.group_by) {
      if (!first) out.append(", ");
      first = false;
      AppendExpr(*g, opts, &out);
    }
  }
  out.push_back(')');
  AppendRange(q.range, opts, &out);
  return out;
}

std::string Print(const Condition& c, const PrintOptions& opts) {
  std::string out = "condition(";
  if (c.all) {
    out.push_back('*');
  } else {
    if (c.has_from) out.append("from ").append(CollectionName(c.collection)).append("; ");
    AppendExpr(*c.expr, opts, &out);
  }
  out.push_back(')');
  AppendRange(c.range, opts, &out);
  return out;
}

std::string Print(const Ast& ast, const PrintOptions& opts) {
  if (ast.query) return Print(*ast.query, opts);
  if (ast.condition) return Print(*ast.condition, opts);
  return "empty";
}

}  // namespace twinq::ast
