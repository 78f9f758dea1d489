// The hand-written fast parser (see fast_parser.h). Two passes:
//   1. the lexer turns the whole text into tokens with grammar/TwinQuery.g4's lexer rules
//      (longest match, keywords before IDENT, ESCAPED_NAME after '.' and AS) and replays
//      parser.cc's nesting estimate, declining on anything the ANTLR lexer would report;
//   2. a precedence-climbing parser that mirrors ANTLR's rewriting of the left-recursive `expr`
//      rule (primary 9, unary 8, * / % 7, + - 6, comparisons 5, IN/NIN 4, NOT 3, AND 2, OR 1; a
//      binary operator of precedence q continues an expr[p] when q >= p, its right operand is
//      expr[q + 1]; a prefix operator's operand is expr[its own precedence]) and creates the
//      AST nodes in the order build_ast.cc creates them.
// Anything else (an error, a semantic check that would fail, a doubtful construct) declines.
#include "engine/parse/fast_parser.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <utility>
#include <vector>

#include "engine/common/diagnostic.h"
#include "engine/common/limits.h"
#include "engine/common/value.h"
#include "engine/parse/lexical.h"

namespace twinq::parse_internal {

namespace {

using ast::Expr;
using ast::ExprKind;
using ast::Op;

// Token types, keywords and operators in the grammar's order (the nesting estimate uses ranges).
enum class T : uint8_t {
  kEnd,
  kIdent,
  kEscapedName,
  kNumber,
  kString,
  kSelect,  // keywords
  kTop,
  kFrom,
  kWhere,
  kGroup,
  kBy,
  kAs,
  kAnd,
  kOr,
  kNot,
  kIn,
  kNin,
  kTrue,
  kFalse,
  kNull,
  kUndefined,
  kStar,  // operators
  kSlash,
  kPercent,
  kPlus,
  kMinus,
  kEq,
  kNeq,
  kLtGt,
  kLe,
  kGe,
  kLt,
  kGt,
  kLParen,
  kRParen,
  kLBrack,
  kRBrack,
  kComma,
  kDot,
};

// Token flags.
constexpr uint8_t kPlainString = 1;  // STRING without escapes or doubled quotes
constexpr uint8_t kSmallInt = 2;     // NUMBER of at most 15 decimal digits only

struct Token {
  T type = T::kEnd;
  uint8_t flags = 0;
  uint32_t begin = 0;
  uint32_t end = 0;
};

// The deepest recursion the parser allows itself (parse functions on the stack). The nesting
// estimate (<= limits::kMaxNesting) keeps valid inputs far below it; it is only a safety net.
constexpr int kMaxRecursion = 1000;

inline bool IsDigit(unsigned char c) { return c >= '0' && c <= '9'; }
inline bool IsHexDigit(unsigned char c) {
  return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
inline bool IsAsciiIdentStart(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

// The length of the UTF-8 sequence led by `c` (the text is valid UTF-8).
inline size_t Utf8Length(unsigned char c) {
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) return 2;
  if ((c & 0xF0) == 0xE0) return 3;
  return 4;
}

// The length of the white space character (WS rule) at `i`, or 0.
inline size_t WhiteSpaceAt(std::string_view s, size_t i) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v') return 1;
  if (c == 0xC2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0xA0) return 2;
  if (c == 0xEF && i + 2 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0xBB &&
      static_cast<unsigned char>(s[i + 2]) == 0xBF) {
    return 3;
  }
  return 0;
}

// The length of the identifier character (ID_START or DIGIT, `digits` allowed) at `i`, or 0.
// Non-ASCII code points are identifier characters except U+00A0 and U+FEFF (white space).
inline size_t IdentCharAt(std::string_view s, size_t i, bool digits) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) return IsAsciiIdentStart(c) || (digits && IsDigit(c)) ? 1 : 0;
  if (WhiteSpaceAt(s, i) != 0) return 0;
  return Utf8Length(c);
}

char LowerAscii(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// The keyword spelled by `w` (ASCII, any case), or kIdent.
T KeywordOf(std::string_view w) {
  if (w.size() < 2 || w.size() > 9) return T::kIdent;
  char low[9];
  for (size_t i = 0; i < w.size(); ++i) {
    char c = w[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) return T::kIdent;
    low[i] = LowerAscii(c);
  }
  std::string_view l(low, w.size());
  switch (l.size()) {
    case 2:
      if (l == "by") return T::kBy;
      if (l == "as") return T::kAs;
      if (l == "or") return T::kOr;
      if (l == "in") return T::kIn;
      break;
    case 3:
      if (l == "top") return T::kTop;
      if (l == "and") return T::kAnd;
      if (l == "not") return T::kNot;
      if (l == "nin") return T::kNin;
      break;
    case 4:
      if (l == "from") return T::kFrom;
      if (l == "true") return T::kTrue;
      if (l == "null") return T::kNull;
      break;
    case 5:
      if (l == "where") return T::kWhere;
      if (l == "group") return T::kGroup;
      if (l == "false") return T::kFalse;
      break;
    case 6:
      if (l == "select") return T::kSelect;
      break;
    case 9:
      if (l == "undefined") return T::kUndefined;
      break;
    default:
      break;
  }
  return T::kIdent;
}

// parser.cc's nesting estimate (LexicalPass), replayed token by token: parentheses and brackets
// open groups; NOT and unary signs count in their group until AND, OR or ',' (signs also until a
// binary operator). Over limits::kMaxNesting the ANTLR path reports E121.
class NestingEstimate {
 public:
  // False when the estimate passes the limit after `t`.
  bool Add(T t) {
    switch (t) {
      case T::kLParen:
      case T::kLBrack:
        if (groups_ + 1 >= groups.size()) return false;
        ++groups_;
        groups[groups_] = {};
        break;
      case T::kRParen:
      case T::kRBrack:
        if (groups_ > 0) {
          pending_ -= groups[groups_].nots + groups[groups_].signs;
          --groups_;
        }
        break;
      case T::kNot:
        ++groups[groups_].nots;
        ++pending_;
        break;
      case T::kAnd:
      case T::kOr:
      case T::kComma:
        pending_ -= groups[groups_].nots + groups[groups_].signs;
        groups[groups_] = {};
        break;
      case T::kMinus:
      case T::kPlus: {
        bool unary = !has_prev_ || prev_ == T::kLParen || prev_ == T::kLBrack ||
                     prev_ == T::kComma || (prev_ >= T::kSelect && prev_ <= T::kNin) ||
                     (prev_ >= T::kStar && prev_ <= T::kGt);
        if (unary) {
          ++groups[groups_].signs;
          ++pending_;
        } else {
          pending_ -= groups[groups_].signs;
          groups[groups_].signs = 0;
        }
        break;
      }
      case T::kStar:
      case T::kSlash:
      case T::kPercent:
      case T::kEq:
      case T::kNeq:
      case T::kLtGt:
      case T::kLe:
      case T::kGe:
      case T::kLt:
      case T::kGt:
      case T::kIn:
      case T::kNin:
        pending_ -= groups[groups_].signs;
        groups[groups_].signs = 0;
        break;
      default:
        break;
    }
    prev_ = t;
    has_prev_ = true;
    return groups_ + pending_ <= limits::kMaxNesting;
  }

 private:
  struct Group {
    size_t nots = 0;
    size_t signs = 0;
  };
  // groups_ <= the estimate, so kMaxNesting + 2 groups are enough.
  std::array<Group, limits::kMaxNesting + 2> groups{};
  size_t groups_ = 0;   // index of the innermost group (0: the top level)
  size_t pending_ = 0;  // sum of nots + signs over the open groups
  T prev_ = T::kEnd;
  bool has_prev_ = false;
};

// Lexes all of `s`. False (with `*why`) where the ANTLR lexer or parser.cc's token pass would
// report something, or on a construct the parser does not take.
bool Lex(std::string_view s, std::vector<Token>* out, const char** why) {
  NestingEstimate nesting;
  const size_t n = s.size();
  T last = T::kEnd;  // the last token's type (ESCAPED_NAME follows '.' and AS)
  size_t i = 0;
  for (;;) {
    // White space (hidden channel).
    while (i < n) {
      size_t w = WhiteSpaceAt(s, i);
      if (w == 0) break;
      i += w;
    }
    if (i >= n) break;
    Token t;
    t.begin = static_cast<uint32_t>(i);
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t j = i + 1;  // end of the token
    auto at = [&](size_t k) -> unsigned char {
      return k < n ? static_cast<unsigned char>(s[k]) : 0;
    };
    if (c == '[' && at(i + 1) == '[' && (last == T::kDot || last == T::kAs)) {
      // ESCAPED_NAME: "[[" up to the next "]]", no bracket or line break in between.
      size_t k = i + 2;
      bool ok = false;
      for (; k < n; ++k) {
        unsigned char d = at(k);
        if (d == ']' && at(k + 1) == ']') {
          ok = true;
          break;
        }
        if (d == '[' || d == ']' || d == '\r' || d == '\n') break;
      }
      if (!ok) {
        *why = "[[ not closed on its line";  // ordinary tokens: the parser's escapedName rule
        return false;
      }
      t.type = T::kEscapedName;
      j = k + 2;
    } else if (c < 0x80 ? IsAsciiIdentStart(c) : IdentCharAt(s, i, false) != 0) {
      j = i + Utf8Length(c);
      while (j < n) {
        size_t w = IdentCharAt(s, j, true);
        if (w == 0) break;
        j += w;
      }
      t.type = KeywordOf(s.substr(i, j - i));
    } else if (c == '$') {
      if (j >= n || IdentCharAt(s, j, false) == 0) {
        *why = "lexical: lone $";
        return false;
      }
      j += Utf8Length(at(j));
      while (j < n) {
        size_t w = IdentCharAt(s, j, true);
        if (w == 0) break;
        j += w;
      }
      t.type = T::kIdent;
    } else if (IsDigit(c) || (c == '.' && IsDigit(at(i + 1)))) {
      t.type = T::kNumber;
      if (c == '0' && (at(i + 1) == 'x' || at(i + 1) == 'X') && IsHexDigit(at(i + 2))) {
        j = i + 2;
        while (j < n && IsHexDigit(at(j))) ++j;
      } else {
        j = i;
        bool simple = true;
        while (j < n && IsDigit(at(j))) ++j;
        if (j < n && at(j) == '.') {
          simple = false;
          ++j;
          while (j < n && IsDigit(at(j))) ++j;
        }
        if (at(j) == 'e' || at(j) == 'E') {
          size_t k = j + 1;
          if (at(k) == '+' || at(k) == '-') ++k;
          if (IsDigit(at(k))) {
            while (k < n && IsDigit(at(k))) ++k;
            j = k;
            simple = false;
          }
        }
        if (simple && j - i <= 15) t.flags = kSmallInt;
      }
    } else if (c == '\'' || c == '"') {
      // STRING; an unterminated one (UNTERMINATED_STRING) declines.
      bool plain = true;
      size_t k = i + 1;
      bool closed = false;
      while (k < n) {
        unsigned char d = at(k);
        if (d == c) {
          if (at(k + 1) == c && k + 1 < n) {
            plain = false;
            k += 2;
            continue;
          }
          closed = true;
          ++k;
          break;
        }
        if (d == '\\') {
          if (k + 1 >= n) break;
          plain = false;
          k += 1 + Utf8Length(at(k + 1));
          continue;
        }
        ++k;
      }
      if (!closed || k > n) {
        *why = "lexical: unterminated string";
        return false;
      }
      t.type = T::kString;
      t.flags = plain ? kPlainString : 0;
      j = k;
    } else {
      switch (c) {
        case '*':
          t.type = T::kStar;
          break;
        case '/':
          t.type = T::kSlash;
          break;
        case '%':
          t.type = T::kPercent;
          break;
        case '+':
          t.type = T::kPlus;
          break;
        case '-':
          t.type = T::kMinus;
          break;
        case '=':
          t.type = T::kEq;
          break;
        case '!':
          if (at(i + 1) != '=') {
            *why = "lexical: bad character";
            return false;
          }
          t.type = T::kNeq;
          j = i + 2;
          break;
        case '<':
          if (at(i + 1) == '>') {
            t.type = T::kLtGt;
            j = i + 2;
          } else if (at(i + 1) == '=') {
            t.type = T::kLe;
            j = i + 2;
          } else {
            t.type = T::kLt;
          }
          break;
        case '>':
          if (at(i + 1) == '=') {
            t.type = T::kGe;
            j = i + 2;
          } else {
            t.type = T::kGt;
          }
          break;
        case '(':
          t.type = T::kLParen;
          break;
        case ')':
          t.type = T::kRParen;
          break;
        case '[':
          t.type = T::kLBrack;
          break;
        case ']':
          t.type = T::kRBrack;
          break;
        case ',':
          t.type = T::kComma;
          break;
        case '.':
          t.type = T::kDot;
          break;
        default:
          *why = "lexical: bad character";
          return false;
      }
    }
    t.end = static_cast<uint32_t>(j);
    if (!nesting.Add(t.type)) {
      *why = "nesting limit";
      return false;
    }
    out->push_back(t);
    last = t.type;
    i = j;
  }
  Token end;
  end.type = T::kEnd;
  end.begin = end.end = static_cast<uint32_t>(n);
  out->push_back(end);
  return true;
}

class Parser {
 public:
  Parser(std::string_view text, const std::vector<Token>& toks, ast::Ast* ast)
      : text_(text), toks_(toks), ast_(ast) {}

  const char* why() const { return why_; }

  bool Condition(ast::Condition* c) {
    const Token first = Cur();
    if (first.type == T::kStar) {
      Next();
      if (Cur().type != T::kEnd) return Fail("syntax");
      c->all = true;
      c->range = {first.begin, first.end};
      return true;
    }
    if (first.type == T::kSelect) return Fail("SELECT as a condition");
    if (first.type == T::kFrom) {
      Next();
      if (!Collection(&c->collection, &c->collection_range)) return false;
      c->has_from = true;
      if (Cur().type != T::kWhere) return Fail("syntax");
      Next();
    }
    c->expr = ParseExpr(0);
    if (c->expr == nullptr) return false;
    if (Cur().type != T::kEnd) return Fail("syntax");
    c->range = {first.begin, prev_end_};
    return true;
  }

  bool Query(ast::Query* q) {
    const Token first = Cur();
    if (first.type != T::kSelect) return Fail("syntax");
    Next();
    if (Cur().type == T::kTop) {
      Next();
      bool paren = Cur().type == T::kLParen;
      if (paren) Next();
      const Token num = Cur();
      if (num.type != T::kNumber) return Fail("syntax");
      double d = 0;
      if (!Number(num, &d)) return false;
      // build_ast.cc: a non-negative integer up to 2^53, else E109.
      if (!(d >= 0 && d == std::trunc(d)) || d > 9007199254740992.0) return Fail("bad TOP");
      q->top = static_cast<uint64_t>(d);
      q->top_range = {num.begin, num.end};
      Next();
      if (paren) {
        if (Cur().type != T::kRParen) return Fail("syntax");
        Next();
      }
    }
    if (Cur().type == T::kStar) {
      q->select_all = true;
      Next();
    } else {
      for (;;) {
        const Token start = Cur();
        if (start.type != T::kIdent) {
          return Fail(start.type == T::kLBrack && Peek().type == T::kLBrack ? "leading [["
                                                                            : "syntax");
        }
        ast::Projection p;
        p.id = ast_->NewId();
        p.expr = Peek().type == T::kLParen ? Call() : Path();
        if (p.expr == nullptr) return false;
        if (Cur().type == T::kAs) {
          Next();
          ast::PathSegment seg;
          if (!NameSegment(&seg)) return false;
          p.alias = std::move(seg.name);
          p.alias_range = seg.range;
        }
        p.range = {start.begin, prev_end_};
        q->projections.push_back(std::move(p));
        if (Cur().type != T::kComma) break;
        Next();
      }
    }
    if (Cur().type != T::kFrom) return Fail("syntax");
    Next();
    if (!Collection(&q->collection, &q->collection_range)) return false;
    if (Cur().type == T::kWhere) {
      Next();
      q->where = ParseExpr(0);
      if (q->where == nullptr) return false;
    }
    if (Cur().type == T::kGroup) {
      Next();
      if (Cur().type != T::kBy) return Fail("syntax");
      Next();
      for (;;) {
        if (Cur().type != T::kIdent) {
          return Fail(Cur().type == T::kLBrack && Peek().type == T::kLBrack ? "leading [["
                                                                            : "syntax");
        }
        Expr* g = Path();
        if (g == nullptr) return false;
        q->group_by.push_back(g);
        if (Cur().type != T::kComma) break;
        Next();
      }
    }
    if (Cur().type != T::kEnd) return Fail("syntax");
    q->range = {first.begin, prev_end_};
    return true;
  }

 private:
  const Token& Cur() const { return toks_[pos_]; }
  const Token& Peek() const { return toks_[pos_ + 1 < toks_.size() ? pos_ + 1 : pos_]; }
  void Next() {
    prev_end_ = toks_[pos_].end;
    if (pos_ + 1 < toks_.size()) ++pos_;
  }
  std::string_view Text(const Token& t) const { return text_.substr(t.begin, t.end - t.begin); }

  bool Fail(const char* why) {
    if (why_ == nullptr) why_ = why;
    return false;
  }
  Expr* FailExpr(const char* why) {
    Fail(why);
    return nullptr;
  }

  bool Number(const Token& t, double* d) {
    if (t.flags & kSmallInt) {
      uint64_t v = 0;
      for (uint32_t k = t.begin; k < t.end; ++k) v = v * 10 + static_cast<uint64_t>(text_[k] - '0');
      *d = static_cast<double>(v);  // exact: below 10^15 < 2^53
      return true;
    }
    if (!ParseNumber(Text(t), d)) return Fail("lexical: number out of range");
    return true;
  }

  bool String(const Token& t, std::string* out) {
    if (t.flags & kPlainString) {
      out->assign(text_.data() + t.begin + 1, t.end - t.begin - 2);
      return true;
    }
    Diagnostics diags;
    if (!DecodeString(Text(t), t.begin, out, &diags) || !diags.empty()) {
      return Fail("lexical: bad escape");
    }
    return true;
  }

  // build_ast.cc's EscapedText: the text between [[ and ]], trimmed; not empty, no '[' or '\n'.
  bool EscapedSegment(const Token& t, ast::PathSegment* seg) {
    std::string_view raw = Text(t);
    raw = raw.substr(2, raw.size() - 4);
    while (!raw.empty() && (raw.front() == ' ' || raw.front() == '\t')) raw.remove_prefix(1);
    while (!raw.empty() && (raw.back() == ' ' || raw.back() == '\t')) raw.remove_suffix(1);
    if (raw.empty() || raw.find('[') != std::string_view::npos ||
        raw.find('\n') != std::string_view::npos) {
      return Fail("bad escaped name");
    }
    seg->name = std::string(raw);
    seg->escaped = true;
    seg->range = {t.begin, t.end};
    return true;
  }

  // `name` after '.' or AS: IDENT or ESCAPED_NAME. (A keyword there is E103; `[[` that the
  // lexer could not make one token declined already.)
  bool NameSegment(ast::PathSegment* seg) {
    const Token t = Cur();
    if (t.type == T::kIdent) {
      seg->name = std::string(Text(t));
      seg->range = {t.begin, t.end};
    } else if (t.type == T::kEscapedName) {
      if (!EscapedSegment(t, seg)) return false;
    } else {
      return Fail(t.type >= T::kSelect && t.type <= T::kUndefined ? "reserved word as a name"
                                                                  : "syntax");
    }
    Next();
    return true;
  }

  bool Collection(ast::Collection* c, SourceRange* range) {
    const Token first = Cur();
    if (first.type != T::kIdent) return Fail("syntax");
    std::string name = ToLowerAscii(Text(first));
    Next();
    while (Cur().type == T::kDot) {
      Next();
      if (Cur().type != T::kIdent) return Fail("syntax");
      name.push_back('.');
      name += ToLowerAscii(Text(Cur()));
      Next();
    }
    *range = {first.begin, prev_end_};
    if (name == "devices") {
      *c = ast::Collection::kDevices;
    } else if (name == "devices.modules") {
      *c = ast::Collection::kModules;
    } else if (name == "devices.jobs") {
      *c = ast::Collection::kJobs;
    } else {
      return Fail("unknown collection");
    }
    return true;
  }

  static bool IsUnparenthesizedComparison(const Expr* e) {
    return !e->parenthesized &&
           ((e->kind == ExprKind::kBinary && ast::IsComparison(e->op)) || e->kind == ExprKind::kIn);
  }

  // expr[p]: see the comment at the top.
  Expr* ParseExpr(int p) {
    if (++depth_ > kMaxRecursion) return FailExpr("recursion");
    Expr* e = ParseExprAt(p);
    --depth_;
    return e;
  }

  Expr* ParseExprAt(int p) {
    Expr* left = nullptr;
    const Token t = Cur();
    if (t.type == T::kMinus || t.type == T::kPlus || t.type == T::kNot) {
      bool is_not = t.type == T::kNot;
      left = ast_->NewExpr(is_not ? ExprKind::kNot : ExprKind::kUnary, {t.begin, t.end});
      if (!is_not) left->op = t.type == T::kMinus ? Op::kNeg : Op::kPos;
      Next();
      Expr* operand = ParseExpr(is_not ? 3 : 8);
      if (operand == nullptr) return nullptr;
      left->children.push_back(operand);
      left->range.end = prev_end_;
    } else {
      left = Primary();
      if (left == nullptr) return nullptr;
    }
    for (;;) {
      const Token op = Cur();
      int prec;
      Op bin = Op::kNone;
      switch (op.type) {
        case T::kStar:
          prec = 7;
          bin = Op::kMul;
          break;
        case T::kSlash:
          prec = 7;
          bin = Op::kDiv;
          break;
        case T::kPercent:
          prec = 7;
          bin = Op::kMod;
          break;
        case T::kPlus:
          prec = 6;
          bin = Op::kAdd;
          break;
        case T::kMinus:
          prec = 6;
          bin = Op::kSub;
          break;
        case T::kEq:
          prec = 5;
          bin = Op::kEq;
          break;
        case T::kNeq:
        case T::kLtGt:
          prec = 5;
          bin = Op::kNe;
          break;
        case T::kLt:
          prec = 5;
          bin = Op::kLt;
          break;
        case T::kLe:
          prec = 5;
          bin = Op::kLe;
          break;
        case T::kGt:
          prec = 5;
          bin = Op::kGt;
          break;
        case T::kGe:
          prec = 5;
          bin = Op::kGe;
          break;
        case T::kIn:
        case T::kNin:
          prec = 4;
          break;
        case T::kAnd:
        case T::kOr:
          prec = op.type == T::kAnd ? 2 : 1;
          break;
        default:
          return left;
      }
      if (prec < p) return left;
      if (prec == 4) {
        if (IsUnparenthesizedComparison(left)) return FailExpr("chained comparison");
        Next();
        if (Cur().type != T::kLBrack) return FailExpr("syntax");
        Value list;
        if (!ArrayLiteral(&list)) return nullptr;
        if (list.as_array().empty()) return FailExpr("empty IN list");
        Expr* e = ast_->NewExpr(ExprKind::kIn, {left->range.begin, prev_end_});
        e->op = op.type == T::kIn ? Op::kIn : Op::kNin;
        e->children.push_back(left);
        e->value = std::move(list);
        left = e;
      } else if (prec <= 2) {
        ExprKind kind = prec == 2 ? ExprKind::kAnd : ExprKind::kOr;
        Next();
        Expr* right = ParseExpr(prec + 1);
        if (right == nullptr) return nullptr;
        if (left->kind == kind && !left->parenthesized) {
          left->children.push_back(right);
          left->range = {left->range.begin, prev_end_};
        } else {
          Expr* e = ast_->NewExpr(kind, {left->range.begin, prev_end_});
          e->children = {left, right};
          left = e;
        }
      } else {
        if (prec == 5 && IsUnparenthesizedComparison(left)) {
          return FailExpr("chained comparison");
        }
        Expr* e = ast_->NewExpr(ExprKind::kBinary, {left->range.begin, op.end});
        e->op = bin;
        Next();
        Expr* right = ParseExpr(prec + 1);
        if (right == nullptr) return nullptr;
        e->children = {left, right};
        e->range.end = prev_end_;
        left = e;
      }
    }
  }

  Expr* Primary() {
    const Token t = Cur();
    switch (t.type) {
      case T::kString: {
        std::string s;
        if (!String(t, &s)) return nullptr;
        Expr* e = ast_->NewExpr(ExprKind::kLiteral, {t.begin, t.end});
        e->value = Value::String(std::move(s));
        Next();
        return e;
      }
      case T::kNumber: {
        double d = 0;
        if (!Number(t, &d)) return nullptr;
        Expr* e = ast_->NewExpr(ExprKind::kLiteral, {t.begin, t.end});
        e->value = Value::Number(d);
        Next();
        return e;
      }
      case T::kTrue:
      case T::kFalse:
      case T::kNull:
      case T::kUndefined: {
        Expr* e = ast_->NewExpr(ExprKind::kLiteral, {t.begin, t.end});
        if (t.type == T::kTrue || t.type == T::kFalse) {
          e->value = Value::Bool(t.type == T::kTrue);
        } else if (t.type == T::kNull) {
          e->value = Value::Null();
        }
        Next();
        return e;
      }
      case T::kLBrack: {
        // `[[` here may open an escaped name (a path) or a nested array: ANTLR decides by
        // prediction. Not ours to guess.
        if (Peek().type == T::kLBrack) return FailExpr("leading [[");
        Expr* e = ast_->NewExpr(ExprKind::kLiteral, {t.begin, t.end});
        Value v;
        if (!ArrayLiteral(&v)) return nullptr;
        e->value = std::move(v);
        e->range.end = prev_end_;
        return e;
      }
      case T::kLParen: {
        Next();
        Expr* e = ParseExpr(0);
        if (e == nullptr) return nullptr;
        if (Cur().type != T::kRParen) return FailExpr("syntax");
        Next();
        e->parenthesized = true;
        e->range = {t.begin, prev_end_};
        return e;
      }
      case T::kIdent:
        return Peek().type == T::kLParen ? Call() : Path();
      default:
        return FailExpr("syntax");
    }
  }

  // IDENT ( args ): the node first, then the arguments (build_ast.cc's order).
  Expr* Call() {
    const Token id = Cur();
    Expr* e = ast_->NewExpr(ExprKind::kCall, {id.begin, id.end});
    e->name = std::string(Text(id));
    e->name_range = {id.begin, id.end};
    Next();  // IDENT
    Next();  // (
    if (Cur().type != T::kRParen) {
      for (;;) {
        Expr* a = ParseExpr(0);
        if (a == nullptr) return nullptr;
        e->children.push_back(a);
        if (Cur().type != T::kComma) break;
        Next();
      }
      if (Cur().type != T::kRParen) return FailExpr("syntax");
    }
    Next();
    e->range.end = prev_end_;
    return e;
  }

  // name (. segment | [ NUMBER ])*, the first name an IDENT.
  Expr* Path() {
    const Token id = Cur();
    Expr* e = ast_->NewExpr(ExprKind::kPath, {id.begin, id.end});
    ast::PathSegment first;
    first.name = std::string(Text(id));
    first.range = {id.begin, id.end};
    e->path.push_back(std::move(first));
    Next();
    for (;;) {
      if (Cur().type == T::kDot) {
        Next();
        ast::PathSegment seg;
        if (!NameSegment(&seg)) return nullptr;
        e->path.push_back(std::move(seg));
      } else if (Cur().type == T::kLBrack) {
        Next();
        const Token num = Cur();
        if (num.type != T::kNumber) return FailExpr("syntax");
        double d = 0;
        if (!Number(num, &d)) return nullptr;
        // build_ast.cc: a non-negative integer up to 2^32 - 1, else E111.
        if (!(d >= 0 && d == std::trunc(d)) || d > 4294967295.0) return FailExpr("bad index");
        ast::PathSegment seg;
        seg.kind = ast::PathSegment::Kind::kIndex;
        seg.index = static_cast<uint64_t>(d);
        seg.range = {num.begin, num.end};
        Next();
        if (Cur().type != T::kRBrack) return FailExpr("syntax");
        Next();
        e->path.push_back(std::move(seg));
      } else {
        break;
      }
    }
    e->range.end = prev_end_;
    return e;
  }

  // The number of elements of the array literal whose '[' is the current token (its top-level
  // commas plus one; 0 for `[]`), at most limits::kMaxArrayElements + 1: for reserve().
  size_t ElementCount() const {
    size_t depth = 0, commas = 0;
    for (size_t k = pos_ + 1; k < toks_.size(); ++k) {
      T t = toks_[k].type;
      if (t == T::kLBrack) {
        ++depth;
      } else if (t == T::kRBrack) {
        if (depth == 0) return k == pos_ + 1 ? 0 : commas + 1;
        --depth;
      } else if (t == T::kComma && depth == 0) {
        if (++commas > limits::kMaxArrayElements) break;
      }
    }
    return std::min(commas + 1, limits::kMaxArrayElements + 1);
  }

  // arrayLiteral, at its '['.
  bool ArrayLiteral(Value* out) {
    if (++depth_ > kMaxRecursion) return Fail("recursion");
    twinq::Array items;
    items.reserve(ElementCount());
    Next();  // [
    if (Cur().type != T::kRBrack) {
      for (;;) {
        const Token t = Cur();
        switch (t.type) {
          case T::kString: {
            if (t.flags & kPlainString) {
              items.push_back(
                  Value::String(std::string(text_.data() + t.begin + 1, t.end - t.begin - 2)));
            } else {
              std::string s;
              if (!String(t, &s)) return false;
              items.push_back(Value::String(std::move(s)));
            }
            Next();
            break;
          }
          case T::kMinus:
          case T::kPlus:
          case T::kNumber: {
            bool negative = t.type == T::kMinus;
            if (t.type != T::kNumber) Next();
            if (Cur().type != T::kNumber) return Fail("syntax");
            double d = 0;
            if (!Number(Cur(), &d)) return false;
            items.push_back(Value::Number(negative ? -d : d));
            Next();
            break;
          }
          case T::kTrue:
          case T::kFalse:
            items.push_back(Value::Bool(t.type == T::kTrue));
            Next();
            break;
          case T::kNull:
            items.push_back(Value::Null());
            Next();
            break;
          case T::kUndefined:
            items.push_back(Value::Undefined());
            Next();
            break;
          case T::kLBrack: {
            Value nested;
            if (!ArrayLiteral(&nested)) return false;
            items.push_back(std::move(nested));
            break;
          }
          default:
            return Fail("syntax");
        }
        if (Cur().type != T::kComma) break;
        Next();
      }
      if (Cur().type != T::kRBrack) return Fail("syntax");
    }
    Next();  // ]
    if (items.size() > limits::kMaxArrayElements) return Fail("array limit");
    *out = Value::MakeArray(std::move(items));
    --depth_;
    return true;
  }

  std::string_view text_;
  const std::vector<Token>& toks_;
  ast::Ast* ast_;
  size_t pos_ = 0;
  uint32_t prev_end_ = 0;  // end of the last consumed token
  int depth_ = 0;
  const char* why_ = nullptr;
};

bool DepthOk(const Expr* e) { return e == nullptr || AstDepth(e) <= limits::kMaxAstDepth; }

// ---- SameAst -----------------------------------------------------------------------------

std::string RangeText(SourceRange r) {
  return std::to_string(r.begin) + ":" + std::to_string(r.end);
}

bool SameValue(const Value& a, const Value& b) {
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case ValueKind::kUndefined:
    case ValueKind::kNull:
      return true;
    case ValueKind::kBool:
      return a.as_bool() == b.as_bool();
    case ValueKind::kNumber: {
      double x = a.as_number(), y = b.as_number();
      return std::memcmp(&x, &y, sizeof x) == 0;
    }
    case ValueKind::kString:
      return a.as_string() == b.as_string();
    case ValueKind::kArray: {
      const Array& x = a.as_array();
      const Array& y = b.as_array();
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i) {
        if (!SameValue(x[i], y[i])) return false;
      }
      return true;
    }
    case ValueKind::kObject: {
      const Object& x = a.as_object();
      const Object& y = b.as_object();
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i) {
        if (x[i].first != y[i].first || !SameValue(x[i].second, y[i].second)) return false;
      }
      return true;
    }
  }
  return false;
}

class Comparer {
 public:
  explicit Comparer(std::string* diff) : diff_(diff) {}

  bool Differ(const std::string& what) {
    if (diff_ != nullptr) *diff_ = what;
    return false;
  }

  bool Exprs(const Expr* a, const Expr* b, const std::string& where) {
    if ((a == nullptr) != (b == nullptr)) return Differ(where + ": null vs non-null expression");
    if (a == nullptr) return true;
    // Iterative: depth is bounded, but the comparison should not rely on it.
    std::vector<std::pair<const Expr*, const Expr*>> stack = {{a, b}};
    while (!stack.empty()) {
      auto [x, y] = stack.back();
      stack.pop_back();
      auto at = [&, x = x] {
        return where + " node " + std::to_string(x->id) + " " + ast::Print(*x);
      };
      if (x->kind != y->kind) return Differ(at() + ": kind");
      if (x->op != y->op) return Differ(at() + ": op");
      if (x->id != y->id) return Differ(at() + ": id vs " + std::to_string(y->id));
      if (!(x->range == y->range)) {
        return Differ(at() + ": range " + RangeText(x->range) + " vs " + RangeText(y->range));
      }
      if (x->parenthesized != y->parenthesized) return Differ(at() + ": parenthesized");
      if (!SameValue(x->value, y->value)) {
        return Differ(at() + ": value " + ast::PrintConstant(x->value) + " vs " +
                      ast::PrintConstant(y->value));
      }
      if (x->name != y->name) return Differ(at() + ": name '" + x->name + "' vs '" + y->name + "'");
      if (!(x->name_range == y->name_range)) return Differ(at() + ": name range");
      if (x->path.size() != y->path.size()) return Differ(at() + ": path length");
      for (size_t i = 0; i < x->path.size(); ++i) {
        const ast::PathSegment& s = x->path[i];
        const ast::PathSegment& t = y->path[i];
        if (s.kind != t.kind || s.name != t.name || s.index != t.index || s.escaped != t.escaped ||
            !(s.range == t.range)) {
          return Differ(at() + ": path segment " + std::to_string(i) + " ('" + s.name + "' " +
                        RangeText(s.range) + " vs '" + t.name + "' " + RangeText(t.range) + ")");
        }
      }
      if (x->children.size() != y->children.size()) return Differ(at() + ": child count");
      for (size_t i = 0; i < x->children.size(); ++i) {
        if ((x->children[i] == nullptr) != (y->children[i] == nullptr)) {
          return Differ(at() + ": null child");
        }
        if (x->children[i] != nullptr) stack.push_back({x->children[i], y->children[i]});
      }
    }
    return true;
  }

 private:
  std::string* diff_;
};

}  // namespace

std::optional<ast::Ast> FastParseChecked(const Source& source, FastEntry entry, const char** why) {
  const char* reason = nullptr;
  if (why == nullptr) why = &reason;
  *why = nullptr;
  std::string_view text = source.text();
  std::vector<Token> toks;
  toks.reserve(16 + text.size() / 3);
  if (!Lex(text, &toks, why)) return std::nullopt;
  ast::Ast result;
  Parser parser(text, toks, &result);
  if (entry == FastEntry::kCondition) {
    ast::Condition c;
    if (!parser.Condition(&c)) {
      *why = parser.why();
      return std::nullopt;
    }
    if (!DepthOk(c.expr)) {
      *why = "depth limit";
      return std::nullopt;
    }
    result.condition = std::move(c);
  } else {
    ast::Query q;
    if (!parser.Query(&q)) {
      *why = parser.why();
      return std::nullopt;
    }
    bool depth_ok = DepthOk(q.where);
    for (const ast::Projection& p : q.projections) depth_ok = depth_ok && DepthOk(p.expr);
    if (!depth_ok) {
      *why = "depth limit";
      return std::nullopt;
    }
    result.query = std::move(q);
  }
  return result;
}

std::optional<ast::Ast> FastParse(const Source& source, FastEntry entry, const char** why) {
  const char* reason = nullptr;
  if (why == nullptr) why = &reason;
  const std::string& text = source.text();
  if (text.size() > limits::kMaxQueryBytes) {
    *why = "size limit";
    return std::nullopt;
  }
  if (FindInvalidUtf8(text) != std::string_view::npos) {
    *why = "invalid UTF-8";
    return std::nullopt;
  }
  if (IsBlank(text)) {
    *why = "blank";
    return std::nullopt;
  }
  return FastParseChecked(source, entry, why);
}

bool SameAst(const ast::Ast& a, const ast::Ast& b, std::string* difference) {
  Comparer cmp(difference);
  if (a.node_count() != b.node_count()) {
    return cmp.Differ("node count " + std::to_string(a.node_count()) + " vs " +
                      std::to_string(b.node_count()));
  }
  if (a.query.has_value() != b.query.has_value()) return cmp.Differ("query present in one only");
  if (a.condition.has_value() != b.condition.has_value()) {
    return cmp.Differ("condition present in one only");
  }
  if (a.query) {
    const ast::Query& x = *a.query;
    const ast::Query& y = *b.query;
    if (!(x.range == y.range)) {
      return cmp.Differ("query range " + RangeText(x.range) + " vs " + RangeText(y.range));
    }
    if (x.top != y.top || !(x.top_range == y.top_range)) return cmp.Differ("query TOP");
    if (x.select_all != y.select_all) return cmp.Differ("query select_all");
    if (x.collection != y.collection || !(x.collection_range == y.collection_range)) {
      return cmp.Differ("query collection");
    }
    if (x.projections.size() != y.projections.size()) return cmp.Differ("projection count");
    for (size_t i = 0; i < x.projections.size(); ++i) {
      const ast::Projection& p = x.projections[i];
      const ast::Projection& r = y.projections[i];
      std::string at = "projection " + std::to_string(i);
      if (p.id != r.id) return cmp.Differ(at + ": id");
      if (!(p.range == r.range)) {
        return cmp.Differ(at + ": range " + RangeText(p.range) + " vs " + RangeText(r.range));
      }
      if (p.alias != r.alias || !(p.alias_range == r.alias_range)) {
        return cmp.Differ(at + ": alias");
      }
      if (!cmp.Exprs(p.expr, r.expr, at)) return false;
    }
    if (!cmp.Exprs(x.where, y.where, "where")) return false;
    if (x.group_by.size() != y.group_by.size()) return cmp.Differ("GROUP BY count");
    for (size_t i = 0; i < x.group_by.size(); ++i) {
      if (!cmp.Exprs(x.group_by[i], y.group_by[i], "group by " + std::to_string(i))) return false;
    }
  }
  if (a.condition) {
    const ast::Condition& x = *a.condition;
    const ast::Condition& y = *b.condition;
    if (!(x.range == y.range)) {
      return cmp.Differ("condition range " + RangeText(x.range) + " vs " + RangeText(y.range));
    }
    if (x.all != y.all) return cmp.Differ("condition all");
    if (x.has_from != y.has_from || x.collection != y.collection ||
        !(x.collection_range == y.collection_range)) {
      return cmp.Differ("condition collection");
    }
    if (!cmp.Exprs(x.expr, y.expr, "condition")) return false;
  }
  return true;
}

}  // namespace twinq::parse_internal
