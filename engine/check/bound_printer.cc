#include <fmt/format.h>

#include "engine/check/bound.h"

namespace twinq::check {

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

std::string PathKey(const std::vector<PathStep>& steps) {
  std::string out;
  for (size_t i = 0; i < steps.size(); ++i) {
    if (steps[i].is_index) {
      out += fmt::format("[{}]", steps[i].index);
    } else {
      if (i > 0) out.push_back('.');
      out += ToLowerAscii(steps[i].name);
    }
  }
  return out;
}

std::string PathText(const std::vector<PathStep>& steps) {
  std::string out;
  for (size_t i = 0; i < steps.size(); ++i) {
    if (steps[i].is_index) {
      out += fmt::format("[{}]", steps[i].index);
      continue;
    }
    if (i > 0) out.push_back('.');
    const std::string& n = steps[i].name;
    bool plain = !n.empty();
    for (size_t k = 0; k < n.size(); ++k) {
      unsigned char c = static_cast<unsigned char>(n[k]);
      bool ok = c >= 0x80 || c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                (k > 0 && c >= '0' && c <= '9') || (k == 0 && c == '$');
      plain = plain && ok;
    }
    if (plain) {
      out += n;
    } else {
      out += "[[" + n + "]]";
    }
  }
  return out;
}

namespace {

void Append(const BoundExpr& e, std::string* out) {
  auto children = [&](const char* name) {
    out->append(name);
    out->push_back('(');
    for (size_t i = 0; i < e.children.size(); ++i) {
      if (i > 0) out->append(", ");
      Append(*e.children[i], out);
    }
    out->push_back(')');
  };
  switch (e.kind) {
    case BoundKind::kConst:
      out->append(ast::PrintConstant(e.value));
      return;
    case BoundKind::kPath:
      out->push_back('$');
      out->append(PathText(e.path));
      return;
    case BoundKind::kCall:
      children(e.function != nullptr ? std::string(e.function->name).c_str() : "?");
      break;
    case BoundKind::kUnary:
    case BoundKind::kArith:
    case BoundKind::kCompare:
      children(ast::OpName(e.op));
      break;
    case BoundKind::kIn:
      out->append(ast::OpName(e.op));
      out->push_back('(');
      Append(*e.children[0], out);
      out->append(", ");
      out->append(ast::PrintConstant(e.value));
      out->push_back(')');
      break;
    case BoundKind::kNot:
      children("not");
      break;
    case BoundKind::kAnd:
      children("and");
      break;
    case BoundKind::kOr:
      children("or");
      break;
  }
  out->push_back('~');
  out->append(StaticTypeName(e.type));
}

}  // namespace

std::string Print(const BoundExpr& e) {
  std::string out;
  Append(e, &out);
  return out;
}

std::string Print(const BoundQuery& q) {
  std::string out = fmt::format("from {}", CollectionName(q.collection));
  if (q.top) out += fmt::format("; top {}", *q.top);
  out += "; select ";
  if (q.select_all) {
    out += "*";
  } else {
    for (size_t i = 0; i < q.projections.size(); ++i) {
      const BoundProjection& p = q.projections[i];
      if (i > 0) out += ", ";
      switch (p.kind) {
        case BoundProjection::Kind::kPath:
          out += '$';
          out += PathText(p.path);
          break;
        case BoundProjection::Kind::kCount:
          out += "COUNT()";
          break;
        case BoundProjection::Kind::kAvg:
          out += "AVG($" + PathText(p.path) + ")";
          break;
        case BoundProjection::Kind::kSum:
          out += "SUM($" + PathText(p.path) + ")";
          break;
        case BoundProjection::Kind::kMin:
          out += "MIN($" + PathText(p.path) + ")";
          break;
        case BoundProjection::Kind::kMax:
          out += "MAX($" + PathText(p.path) + ")";
          break;
      }
      out += p.key_from_document ? " as <document spelling>" : " as " + p.key;
    }
  }
  if (q.where) out += "; where " + Print(*q.where);
  if (!q.group_by.empty()) {
    out += "; group by ";
    for (size_t i = 0; i < q.group_by.size(); ++i) {
      if (i > 0) out += ", ";
      out += '$';
      out += PathText(q.group_by[i]);
    }
  }
  return out;
}

std::string Print(const BoundCondition& c) {
  std::string out = fmt::format("targets {}", CollectionName(c.collection));
  if (c.all) return out + "; *";
  return out + "; " + Print(*c.expr);
}

}  // namespace twinq::check
