// The parse tree to AST. Left-recursive operator chains are walked iteratively, so a long
// a+b+c+... chain cannot overflow the stack; AND and OR chains become n-ary nodes.
#include "engine/parse/build_ast.h"

#include <fmt/format.h>

#include <cmath>

#include "engine/common/limits.h"

namespace twinq::parse_internal {

using P = twinq_grammar::TwinQueryParser;
using ast::Expr;
using ast::ExprKind;
using ast::Op;

SourceRange TokenTable::RangeOf(const antlr4::Token* t) const {
  if (t == nullptr) return {};
  size_t n = cp_to_byte.size() - 1;
  if (t->getType() == antlr4::Token::EOF) {
    uint32_t end = cp_to_byte[n];
    return {end, end};
  }
  size_t b = std::min(t->getStartIndex(), n);
  size_t e = std::min(t->getStopIndex() + 1, n);
  if (e < b) e = b;
  return {cp_to_byte[b], cp_to_byte[e]};
}

SourceRange TokenTable::RangeOf(antlr4::ParserRuleContext* ctx) const {
  SourceRange a = RangeOf(ctx->getStart());
  SourceRange b = RangeOf(ctx->getStop());
  if (ctx->getStop() == nullptr || b.end < a.begin) return a;
  return {a.begin, b.end};
}

namespace {

class Builder {
 public:
  Builder(const Source& source, const TokenTable& tokens, ast::Ast* ast, Diagnostics* diags)
      : source_(source), tokens_(tokens), ast_(ast), diags_(diags) {}

  void Error(DiagCode code, SourceRange range, std::string message) {
    diags_->push_back({code, Severity::kError, range, std::move(message)});
  }

  SourceRange Range(antlr4::ParserRuleContext* ctx) const { return tokens_.RangeOf(ctx); }
  SourceRange Range(const antlr4::Token* t) const { return tokens_.RangeOf(t); }
  SourceRange Range(antlr4::tree::TerminalNode* n) const { return tokens_.RangeOf(n->getSymbol()); }

  double Number(antlr4::tree::TerminalNode* n) const {
    auto it = tokens_.numbers.find(n->getSymbol()->getTokenIndex());
    return it == tokens_.numbers.end() ? 0.0 : it->second;
  }
  std::string String(antlr4::tree::TerminalNode* n) const {
    auto it = tokens_.strings.find(n->getSymbol()->getTokenIndex());
    return it == tokens_.strings.end() ? std::string() : it->second;
  }

  // ---- expressions -------------------------------------------------------------------------

  static bool IsChainLink(P::ExprContext* c) {
    return dynamic_cast<P::MulExprContext*>(c) || dynamic_cast<P::AddExprContext*>(c) ||
           dynamic_cast<P::CompareExprContext*>(c) || dynamic_cast<P::InExprContext*>(c) ||
           dynamic_cast<P::AndExprContext*>(c) || dynamic_cast<P::OrExprContext*>(c);
  }
  static P::ExprContext* LeftOf(P::ExprContext* c) {
    if (auto* x = dynamic_cast<P::MulExprContext*>(c)) return x->expr(0);
    if (auto* x = dynamic_cast<P::AddExprContext*>(c)) return x->expr(0);
    if (auto* x = dynamic_cast<P::CompareExprContext*>(c)) return x->expr(0);
    if (auto* x = dynamic_cast<P::InExprContext*>(c)) return x->expr();
    if (auto* x = dynamic_cast<P::AndExprContext*>(c)) return x->expr(0);
    if (auto* x = dynamic_cast<P::OrExprContext*>(c)) return x->expr(0);
    return nullptr;
  }

  Expr* BuildExpr(P::ExprContext* ctx) {
    if (IsChainLink(ctx)) {
      std::vector<P::ExprContext*> spine;
      P::ExprContext* cur = ctx;
      while (IsChainLink(cur)) {
        spine.push_back(cur);
        cur = LeftOf(cur);
      }
      Expr* acc = BuildExpr(cur);
      for (auto it = spine.rbegin(); it != spine.rend(); ++it) acc = Combine(*it, acc);
      return acc;
    }
    if (auto* x = dynamic_cast<P::PrimaryExprContext*>(ctx)) return BuildPrimary(x->primary());
    if (auto* x = dynamic_cast<P::UnaryExprContext*>(ctx)) {
      Expr* e = ast_->NewExpr(ExprKind::kUnary, Range(ctx));
      e->op = x->op->getType() == P::MINUS ? Op::kNeg : Op::kPos;
      e->children.push_back(BuildExpr(x->expr()));
      return e;
    }
    if (auto* x = dynamic_cast<P::NotExprContext*>(ctx)) {
      Expr* e = ast_->NewExpr(ExprKind::kNot, Range(ctx));
      e->children.push_back(BuildExpr(x->expr()));
      return e;
    }
    Error(DiagCode::kInternal, Range(ctx), "unexpected expression form");
    return ast_->NewExpr(ExprKind::kLiteral, Range(ctx));
  }

  static bool IsUnparenthesizedComparison(const Expr* e) {
    return !e->parenthesized &&
           ((e->kind == ExprKind::kBinary && ast::IsComparison(e->op)) || e->kind == ExprKind::kIn);
  }

  // Applies one link of an operator chain to the already built left operand.
  Expr* Combine(P::ExprContext* ctx, Expr* left) {
    SourceRange whole{left->range.begin, Range(ctx).end};
    if (auto* x = dynamic_cast<P::InExprContext*>(ctx)) {
      if (IsUnparenthesizedComparison(left)) ChainError(x->op);
      Expr* e = ast_->NewExpr(ExprKind::kIn, whole);
      e->op = x->op->getType() == P::IN ? Op::kIn : Op::kNin;
      e->children.push_back(left);
      e->value = BuildArray(x->arrayLiteral());
      if (e->value.is_array() && e->value.as_array().empty()) {
        Error(DiagCode::kEmptyInList, Range(x->arrayLiteral()),
              fmt::format("{} needs at least one element", x->op->getText()));
      }
      return e;
    }
    bool is_and = dynamic_cast<P::AndExprContext*>(ctx) != nullptr;
    bool is_or = dynamic_cast<P::OrExprContext*>(ctx) != nullptr;
    if (is_and || is_or) {
      ExprKind kind = is_and ? ExprKind::kAnd : ExprKind::kOr;
      auto* right_ctx = is_and ? static_cast<P::AndExprContext*>(ctx)->expr(1)
                               : static_cast<P::OrExprContext*>(ctx)->expr(1);
      Expr* right = BuildExpr(right_ctx);
      if (left->kind == kind && !left->parenthesized) {
        left->children.push_back(right);
        left->range = whole;
        return left;
      }
      Expr* e = ast_->NewExpr(kind, whole);
      e->children = {left, right};
      return e;
    }
    Expr* e = ast_->NewExpr(ExprKind::kBinary, whole);
    antlr4::Token* op = nullptr;
    P::ExprContext* right_ctx = nullptr;
    if (auto* x = dynamic_cast<P::MulExprContext*>(ctx)) {
      op = x->op;
      right_ctx = x->expr(1);
      e->op = op->getType() == P::STAR ? Op::kMul : op->getType() == P::SLASH ? Op::kDiv : Op::kMod;
    } else if (auto* x = dynamic_cast<P::AddExprContext*>(ctx)) {
      op = x->op;
      right_ctx = x->expr(1);
      e->op = op->getType() == P::PLUS ? Op::kAdd : Op::kSub;
    } else {
      auto* c = static_cast<P::CompareExprContext*>(ctx);
      op = c->op;
      right_ctx = c->expr(1);
      switch (op->getType()) {
        case P::EQ:
          e->op = Op::kEq;
          break;
        case P::NEQ:
        case P::LTGT:
          e->op = Op::kNe;
          break;
        case P::LT:
          e->op = Op::kLt;
          break;
        case P::LE:
          e->op = Op::kLe;
          break;
        case P::GT:
          e->op = Op::kGt;
          break;
        default:
          e->op = Op::kGe;
          break;
      }
      if (IsUnparenthesizedComparison(left)) ChainError(op);
    }
    e->children.push_back(left);
    e->children.push_back(BuildExpr(right_ctx));
    return e;
  }

  void ChainError(antlr4::Token* op) {
    Error(DiagCode::kChainedComparison, Range(op),
          fmt::format("comparisons do not chain: '{}' cannot follow another comparison; join "
                      "them with AND or use parentheses",
                      op->getText()));
  }

  Expr* BuildPrimary(P::PrimaryContext* ctx) {
    if (auto* x = dynamic_cast<P::LiteralPrimaryContext*>(ctx)) return BuildLiteral(x->literal());
    if (auto* x = dynamic_cast<P::CallPrimaryContext*>(ctx)) return BuildCall(x->functionCall());
    if (auto* x = dynamic_cast<P::PathPrimaryContext*>(ctx)) return BuildPath(x->path());
    auto* x = static_cast<P::ParenPrimaryContext*>(ctx);
    Expr* e = BuildExpr(x->expr());
    e->parenthesized = true;
    e->range = Range(ctx);
    return e;
  }

  Expr* BuildLiteral(P::LiteralContext* ctx) {
    Expr* e = ast_->NewExpr(ExprKind::kLiteral, Range(ctx));
    if (auto* x = dynamic_cast<P::StringLiteralContext*>(ctx)) {
      e->value = Value::String(String(x->STRING()));
    } else if (auto* x = dynamic_cast<P::NumberLiteralContext*>(ctx)) {
      e->value = Value::Number(Number(x->NUMBER()));
    } else if (dynamic_cast<P::TrueLiteralContext*>(ctx)) {
      e->value = Value::Bool(true);
    } else if (dynamic_cast<P::FalseLiteralContext*>(ctx)) {
      e->value = Value::Bool(false);
    } else if (dynamic_cast<P::NullLiteralContext*>(ctx)) {
      e->value = Value::Null();
    } else if (dynamic_cast<P::UndefinedLiteralContext*>(ctx)) {
      e->value = Value::Undefined();
    } else {
      e->value = BuildArray(static_cast<P::ArrayLiteralPrimaryContext*>(ctx)->arrayLiteral());
    }
    return e;
  }

  Value BuildArray(P::ArrayLiteralContext* ctx) {
    auto constants = ctx->constant();
    if (constants.size() > limits::kMaxArrayElements) {
      Error(DiagCode::kTooManyElements, Range(ctx),
            fmt::format("array literal has {} elements; the limit is {}", constants.size(),
                        limits::kMaxArrayElements));
    }
    Array items;
    items.reserve(constants.size());
    for (P::ConstantContext* c : constants) items.push_back(BuildConstant(c));
    return Value::MakeArray(std::move(items));
  }

  Value BuildConstant(P::ConstantContext* ctx) {
    if (auto* x = dynamic_cast<P::StringConstantContext*>(ctx)) {
      return Value::String(String(x->STRING()));
    }
    if (auto* x = dynamic_cast<P::NumberConstantContext*>(ctx)) {
      double d = Number(x->NUMBER());
      if (x->sign != nullptr && x->sign->getType() == P::MINUS) d = -d;
      return Value::Number(d);
    }
    if (dynamic_cast<P::TrueConstantContext*>(ctx)) return Value::Bool(true);
    if (dynamic_cast<P::FalseConstantContext*>(ctx)) return Value::Bool(false);
    if (dynamic_cast<P::NullConstantContext*>(ctx)) return Value::Null();
    if (dynamic_cast<P::UndefinedConstantContext*>(ctx)) return Value::Undefined();
    return BuildArray(static_cast<P::ArrayConstantContext*>(ctx)->arrayLiteral());
  }

  Expr* BuildCall(P::FunctionCallContext* ctx) {
    Expr* e = ast_->NewExpr(ExprKind::kCall, Range(ctx));
    e->name = ctx->IDENT()->getText();
    e->name_range = Range(ctx->IDENT());
    for (P::ExprContext* a : ctx->expr()) e->children.push_back(BuildExpr(a));
    return e;
  }

  // [[ name ]]: the raw text between the brackets, trimmed. The brackets must be adjacent pairs.
  bool EscapedName(P::EscapedNameContext* ctx, ast::PathSegment* seg) {
    auto lb = ctx->LBRACK();
    auto rb = ctx->RBRACK();
    SourceRange whole = Range(ctx);
    SourceRange l0 = Range(lb[0]), l1 = Range(lb[1]);
    SourceRange r0 = Range(rb[0]), r1 = Range(rb[1]);
    seg->escaped = true;
    seg->range = whole;
    if (l0.end != l1.begin || r0.end != r1.begin) {
      Error(DiagCode::kBadEscapedName, whole,
            "write an escaped name as [[name]], with no space "
            "between the brackets");
      return false;
    }
    return EscapedText(source_.Slice({l1.end, r0.begin}), seg);
  }

  // The text between [[ and ]]: trimmed, not empty, without '[' or a line break.
  bool EscapedText(std::string_view raw, ast::PathSegment* seg) {
    SourceRange whole = seg->range;
    while (!raw.empty() && (raw.front() == ' ' || raw.front() == '\t')) raw.remove_prefix(1);
    while (!raw.empty() && (raw.back() == ' ' || raw.back() == '\t')) raw.remove_suffix(1);
    if (raw.empty()) {
      Error(DiagCode::kBadEscapedName, whole, "escaped name is empty");
      return false;
    }
    if (raw.find('[') != std::string_view::npos || raw.find('\n') != std::string_view::npos) {
      Error(DiagCode::kBadEscapedName, whole, "escaped name must not contain '[' or a line break");
      return false;
    }
    seg->name = std::string(raw);
    return true;
  }

  ast::PathSegment NameSegment(P::NameContext* ctx) {
    ast::PathSegment seg;
    if (auto* x = dynamic_cast<P::PlainNameContext*>(ctx)) {
      seg.name = x->IDENT()->getText();
      seg.range = Range(ctx);
    } else if (dynamic_cast<P::EscapedTokenContext*>(ctx) != nullptr) {
      seg.escaped = true;
      seg.range = Range(ctx);
      std::string_view text = source_.Slice(seg.range);  // [[ ... ]]
      EscapedText(text.substr(2, text.size() - 4), &seg);
    } else {
      EscapedName(static_cast<P::EscapedNameContext*>(ctx), &seg);
    }
    return seg;
  }

  Expr* BuildPath(P::PathContext* ctx) {
    Expr* e = ast_->NewExpr(ExprKind::kPath, Range(ctx));
    e->path.push_back(NameSegment(ctx->name()));
    const auto& kids = ctx->children;
    for (size_t i = 1; i < kids.size(); ++i) {
      if (auto* seg = dynamic_cast<P::NameSegmentContext*>(kids[i])) {
        e->path.push_back(NameSegment(seg->name()));
      } else if (auto* kw = dynamic_cast<P::KeywordSegmentContext*>(kids[i])) {
        std::string word = kw->getText();
        Error(DiagCode::kReservedWord, Range(kw),
              fmt::format("'{}' is a reserved word; escape it as [[{}]]", word, word));
        ast::PathSegment s;
        s.name = word;
        s.escaped = true;
        s.range = Range(kw);
        e->path.push_back(std::move(s));
      } else if (auto* t = dynamic_cast<antlr4::tree::TerminalNode*>(kids[i]);
                 t != nullptr && t->getSymbol()->getType() == P::NUMBER) {
        double d = Number(t);
        ast::PathSegment s;
        s.kind = ast::PathSegment::Kind::kIndex;
        s.range = Range(t);
        if (!(d >= 0 && d == std::trunc(d))) {
          Error(DiagCode::kBadIndex, s.range,
                fmt::format("array index must be a non-negative integer, not {}", t->getText()));
        } else if (d > 4294967295.0) {
          Error(
              DiagCode::kBadIndex, s.range,
              fmt::format("array index {} is too large; the largest is 4294967295", t->getText()));
        } else {
          s.index = static_cast<uint64_t>(d);
        }
        e->path.push_back(std::move(s));
      }
    }
    return e;
  }

  // ---- query and condition -----------------------------------------------------------------

  ast::Collection BuildCollection(P::CollectionContext* ctx, SourceRange* range) {
    *range = Range(ctx);
    std::string name;
    for (auto* id : ctx->IDENT()) {
      if (!name.empty()) name.push_back('.');
      name += ToLowerAscii(id->getText());
    }
    if (name == "devices") return ast::Collection::kDevices;
    if (name == "devices.modules") return ast::Collection::kModules;
    if (name == "devices.jobs") return ast::Collection::kJobs;
    std::string msg = fmt::format(
        "unknown collection '{}'; expected devices, devices.modules or "
        "devices.jobs",
        ctx->getText());
    std::string_view guess = ClosestMatch(name, {"devices", "devices.modules", "devices.jobs"});
    if (!guess.empty()) msg += fmt::format("; did you mean '{}'?", guess);
    Error(DiagCode::kUnknownCollection, *range, std::move(msg));
    return ast::Collection::kDevices;
  }

  ast::Query BuildQuery(P::QueryContext* ctx) {
    ast::Query q;
    q.range = Range(ctx);
    if (P::TopContext* top = ctx->top()) {
      q.top_range = Range(top->NUMBER());
      double d = Number(top->NUMBER());
      if (!(d >= 0 && d == std::trunc(d))) {
        Error(DiagCode::kBadTop, q.top_range,
              fmt::format("TOP needs a non-negative integer, not {}", top->NUMBER()->getText()));
      } else if (d > 9007199254740992.0) {
        Error(DiagCode::kBadTop, q.top_range,
              fmt::format("TOP {} is too large; the largest is 2^53 (9007199254740992)",
                          top->NUMBER()->getText()));
      } else {
        q.top = static_cast<uint64_t>(d);
      }
    }
    if (dynamic_cast<P::SelectAllContext*>(ctx->selectList())) {
      q.select_all = true;
    } else {
      auto* items = static_cast<P::SelectItemsContext*>(ctx->selectList());
      for (P::ProjectionContext* p : items->projection()) {
        ast::Projection proj;
        proj.id = ast_->NewId();
        proj.range = Range(p);
        proj.expr = p->functionCall() ? BuildCall(p->functionCall()) : BuildPath(p->path());
        if (p->alias != nullptr) {
          ast::PathSegment seg = NameSegment(p->alias);
          proj.alias = seg.name;
          proj.alias_range = seg.range;
        }
        q.projections.push_back(std::move(proj));
      }
    }
    q.collection = BuildCollection(ctx->collection(), &q.collection_range);
    if (ctx->WHERE() != nullptr) q.where = BuildExpr(ctx->expr());
    for (P::PathContext* g : ctx->path()) q.group_by.push_back(BuildPath(g));
    return q;
  }

  ast::Condition BuildCondition(P::ConditionEntryContext* ctx) {
    ast::Condition c;
    // The rule ends with EOF: the range ends with the last real token, not with the text.
    if (auto* x = dynamic_cast<P::AllConditionContext*>(ctx)) {
      c.all = true;
      c.range = Range(x->STAR());
      return c;
    }
    if (auto* x = dynamic_cast<P::SelectConditionContext*>(ctx)) {
      c.range = Range(x->query());
      std::string hint;
      if (x->query()->WHERE() != nullptr) {
        hint = fmt::format("; give only the expression after WHERE: {}",
                           source_.Slice(Range(x->query()->expr())));
      } else {
        hint = "; use * to target every device";
      }
      Error(DiagCode::kSelectAsCondition, Range(x->query()->SELECT()),
            "a condition is expected here, not a full SELECT query" + hint);
      return c;
    }
    auto* x = static_cast<P::ExprConditionContext*>(ctx);
    c.range = {Range(ctx).begin, Range(x->expr()).end};
    if (x->collection() != nullptr) {
      c.has_from = true;
      c.collection = BuildCollection(x->collection(), &c.collection_range);
    }
    c.expr = BuildExpr(x->expr());
    return c;
  }

 private:
  const Source& source_;
  const TokenTable& tokens_;
  ast::Ast* ast_;
  Diagnostics* diags_;
};

}  // namespace

void BuildQuery(P::QueryContext* ctx, const Source& source, const TokenTable& tokens, ast::Ast* ast,
                Diagnostics* diags) {
  Builder b(source, tokens, ast, diags);
  ast->query = b.BuildQuery(ctx);
}

void BuildCondition(P::ConditionEntryContext* ctx, const Source& source, const TokenTable& tokens,
                    ast::Ast* ast, Diagnostics* diags) {
  Builder b(source, tokens, ast, diags);
  ast->condition = b.BuildCondition(ctx);
}

}  // namespace twinq::parse_internal
