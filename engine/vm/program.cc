#include "engine/vm/program.h"

#include <fmt/format.h>

namespace twinq::vm {

namespace {

const OpInfo kInfos[] = {
#define OP(name, operands, flags, synopsis) {#name, operands, flags, synopsis},
#include "engine/vm/opcodes.def"
#undef OP
};

}  // namespace

const OpInfo& InfoOf(Op op) { return kInfos[static_cast<size_t>(op)]; }
size_t OpCount() { return sizeof(kInfos) / sizeof(kInfos[0]); }
const OpInfo& InfoAt(size_t index) { return kInfos[index]; }

namespace {

std::string Reg(uint32_t r) { return fmt::format("r{}", r); }

const char* KindSetName(uint32_t mask) {
  switch (mask) {
    case 0x7F:
      return "defined";
    case 0x01:
      return "null";
    case 0x06:
      return "bool";
    case 0x08:
      return "number";
    case 0x10:
      return "string";
    case 0x20:
      return "array";
    case 0x40:
      return "object";
    case 0x1F:
      return "primitive";
    default:
      return "kinds";
  }
}

std::string OpSymbol(ast::Op op) {
  switch (op) {
    case ast::Op::kEq:
      return "=";
    case ast::Op::kNe:
      return "!=";
    case ast::Op::kLt:
      return "<";
    case ast::Op::kLe:
      return "<=";
    case ast::Op::kGt:
      return ">";
    case ast::Op::kGe:
      return ">=";
    case ast::Op::kIn:
      return "IN";
    case ast::Op::kNin:
      return "NIN";
    default:
      return ast::OpName(op);
  }
}

}  // namespace

Program::Line Program::Describe(size_t i) const {
  const Instruction& in = code[i];
  auto path = [&](uint32_t p) { return p < paths.size() ? check::PathText(paths[p]) : "?"; };
  auto constant = [&](uint32_t c) {
    return c < constants.size() ? ast::PrintConstant(constants[c]) : std::string("?");
  };
  Line l;
  std::string& d = l.d;
  std::string& a = l.a;
  std::string& b = l.b;
  std::string& c = l.c;
  std::string& comment = l.comment;
  switch (in.op) {
    case Op::kConst:
      d = Reg(in.d), a = fmt::format("c{}", in.a);
      comment = fmt::format("{} = {} for every row", Reg(in.d), constant(in.a));
      break;
    case Op::kAll:
      d = Reg(in.d);
      comment = fmt::format("{} = every twin", Reg(in.d));
      break;
    case Op::kCompare:
      d = Reg(in.d), a = fmt::format("p{}", in.a), b = fmt::format("c{}", in.b),
      c = OpSymbol(in.cmp);
      comment =
          fmt::format("{} = {} {} {}", Reg(in.d), path(in.a), OpSymbol(in.cmp), constant(in.b));
      break;
    case Op::kNumberRange:
      d = Reg(in.d), a = fmt::format("p{}", in.a), b = fmt::format("c{}", in.b),
      c = fmt::format("c{}", in.c);
      comment = fmt::format("{} = {} {} {} {} {}", Reg(in.d), constant(in.b),
                            in.cmp == ast::Op::kGe ? "<=" : "<", path(in.a),
                            in.cmp2 == ast::Op::kLe ? "<=" : "<", constant(in.c));
      break;
    case Op::kIn:
      d = Reg(in.d), a = fmt::format("p{}", in.a), b = fmt::format("c{}", in.b);
      comment = fmt::format("{} = {} IN {}", Reg(in.d), path(in.a), constant(in.b));
      break;
    case Op::kIsKind:
      d = Reg(in.d), a = fmt::format("p{}", in.a), b = KindSetName(in.b);
      comment = fmt::format("{} = {} is {}", Reg(in.d), path(in.a), KindSetName(in.b));
      break;
    case Op::kStartsWith:
      d = Reg(in.d), a = fmt::format("p{}", in.a), b = fmt::format("c{}", in.b),
      c = in.c == 1 ? "ids" : "";
      comment = fmt::format("{} = STARTSWITH({}, {})", Reg(in.d), path(in.a), constant(in.b));
      break;
    case Op::kStringMatch:
      d = Reg(in.d), a = fmt::format("p{}", in.a), b = fmt::format("c{}", in.b),
      c = in.c == 0 ? "ends" : "contains";
      comment = fmt::format("{} = {}({}, {})", Reg(in.d), in.c == 0 ? "ENDSWITH" : "CONTAINS",
                            path(in.a), constant(in.b));
      break;
    case Op::kIdLookup:
      d = Reg(in.d), a = fmt::format("p{}", in.a), b = fmt::format("c{}", in.b),
      c = OpSymbol(in.cmp);
      comment = fmt::format("{} = {} {} {} (id order)", Reg(in.d), path(in.a), OpSymbol(in.cmp),
                            constant(in.b));
      break;
    case Op::kNot:
      d = Reg(in.d), a = Reg(in.a);
      comment = fmt::format("{} = NOT {}", Reg(in.d), Reg(in.a));
      break;
    case Op::kAnd:
    case Op::kOr:
      d = Reg(in.d), a = Reg(in.a), b = Reg(in.b);
      comment = fmt::format("{} = {} {} {}", Reg(in.d), Reg(in.a), in.op == Op::kAnd ? "AND" : "OR",
                            Reg(in.b));
      break;
    case Op::kCandidates:
      d = Reg(in.d), a = Reg(in.a), b = fmt::format("{}", in.b);
      comment = fmt::format("{} = rows not yet {} by {}", Reg(in.d), in.b == 0 ? "false" : "true",
                            Reg(in.a));
      break;
    case Op::kJumpIfEmpty:
      a = Reg(in.a), b = fmt::format("@{}", in.b);
      comment = fmt::format("if {} is empty goto {}", Reg(in.a), in.b);
      break;
    case Op::kResidual:
      d = Reg(in.d), a = fmt::format("x{}", in.a), b = Reg(in.b), c = in.c == 1 ? "value" : "";
      comment =
          fmt::format("{} = {} over {}", Reg(in.d),
                      in.a < residuals.size() ? check::Print(*residuals[in.a]) : "?", Reg(in.b));
      break;
    case Op::kMove:
      d = Reg(in.d), a = Reg(in.a);
      comment = fmt::format("{} = {}", Reg(in.d), Reg(in.a));
      break;
    case Op::kResult:
      a = Reg(in.a);
      comment = fmt::format("return true rows of {}", Reg(in.a));
      break;
  }
  return l;
}

std::string Program::Explain() const {
  std::string out = "addr  opcode        d    a    b    c    comment\n";
  for (size_t i = 0; i < code.size(); ++i) {
    Line l = Describe(i);
    if (!code[i].note.empty()) l.comment += "  [" + code[i].note + "]";
    out += fmt::format("{:<5} {:<13} {:<4} {:<4} {:<4} {:<4} {}\n", i, InfoOf(code[i].op).name, l.d,
                       l.a, l.b, l.c, l.comment);
  }
  return out;
}

std::string Program::Verify() const {
  if (code.empty()) return "empty program";
  if (code.back().op != Op::kResult) return "the last instruction is not Result";
  for (size_t i = 0; i < code.size(); ++i) {
    const Instruction& in = code[i];
    auto bad = [&](const std::string& what) {
      return fmt::format("@{} {}: {}", i, InfoOf(in.op).name, what);
    };
    auto reg = [&](uint32_t r) { return r < registers; };
    uint32_t flags = InfoOf(in.op).flags;
    if ((flags & kWritesD) && !reg(in.d)) return bad("destination register out of range");
    switch (in.op) {
      case Op::kConst:
        if (in.a >= constants.size()) return bad("constant out of range");
        break;
      case Op::kCompare:
      case Op::kIn:
      case Op::kStartsWith:
      case Op::kStringMatch:
      case Op::kIdLookup:
        if (in.a >= paths.size()) return bad("path out of range");
        if (in.b >= constants.size()) return bad("constant out of range");
        if ((in.op == Op::kIn || (in.op == Op::kIdLookup && in.cmp == ast::Op::kIn)) &&
            !constants[in.b].is_array()) {
          return bad("IN list is not an array");
        }
        if (in.op == Op::kCompare && !ast::IsComparison(in.cmp)) return bad("not a comparison");
        if (in.op == Op::kStartsWith && in.c > 1) return bad("bad StartsWith mode");
        break;
      case Op::kNumberRange:
        if (in.a >= paths.size()) return bad("path out of range");
        if (in.b >= constants.size() || in.c >= constants.size())
          return bad("constant out of range");
        if (!constants[in.b].is_number() || !constants[in.c].is_number())
          return bad("range ends are not numbers");
        if ((in.cmp != ast::Op::kGt && in.cmp != ast::Op::kGe) ||
            (in.cmp2 != ast::Op::kLt && in.cmp2 != ast::Op::kLe))
          return bad("bad range comparisons");
        break;
      case Op::kIsKind:
        if (in.a >= paths.size()) return bad("path out of range");
        if (in.b == 0 || in.b > 0x7F) return bad("bad kind set");
        break;
      case Op::kNot:
      case Op::kMove:
        if (!reg(in.a)) return bad("register out of range");
        break;
      case Op::kAnd:
      case Op::kOr:
        if (!reg(in.a) || !reg(in.b)) return bad("register out of range");
        break;
      case Op::kCandidates:
        if (!reg(in.a) || in.b > 1) return bad("bad operands");
        break;
      case Op::kJumpIfEmpty:
        if (!reg(in.a)) return bad("register out of range");
        if (in.b <= i || in.b >= code.size()) return bad("jump target out of range");
        break;
      case Op::kResidual:
        if (in.a >= residuals.size() || residuals[in.a] == nullptr)
          return bad("residual out of range");
        if (!reg(in.b)) return bad("register out of range");
        if (in.c > 1) return bad("bad residual mode");
        break;
      case Op::kResult:
        if (!reg(in.a)) return bad("register out of range");
        break;
      case Op::kAll:
        break;
    }
  }
  return "";
}

}  // namespace twinq::vm
