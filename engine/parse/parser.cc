// Drives the ANTLR lexer and parser. Order of work:
//   1. size limit, UTF-8 validation, empty input;
//   1b. the fast parser (fast_parser.h), unless ParserImpl::kAntlrOnly: its AST is the result
//      when it accepts the input; when it declines, the steps below run as if it did not exist;
//   2. lexing, then one pass over the tokens: bad characters, unterminated strings, string
//      escapes, numbers, nesting depth (so the recursive-descent parser can never overflow);
//   3. parsing, with an error listener that turns ANTLR's errors into positioned diagnostics;
//   4. building the AST (build_ast.cc), then checking its depth.
// Every exception ANTLR or the standard library can throw is caught here.
#include "engine/parse/parser.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <exception>
#include <optional>

#include "TwinQueryLexer.h"
#include "TwinQueryParser.h"
#include "antlr4-runtime.h"
#include "engine/common/limits.h"
#include "engine/parse/build_ast.h"
#include "engine/parse/fast_parser.h"
#include "engine/parse/lexical.h"

namespace twinq {

using parse_internal::AstDepth;
using parse_internal::DecodeString;
using parse_internal::FindInvalidUtf8;
using parse_internal::IsBlank;
using parse_internal::ParseNumber;
using parse_internal::TokenTable;
using twinq_grammar::TwinQueryLexer;
using twinq_grammar::TwinQueryParser;

// The grammar's lexer members assume where ANTLR puts the ESCAPED_NAME token type.
static_assert(TwinQueryLexer::ESCAPED_NAME == TwinQueryParser::ESCAPED_NAME);

namespace {

// Cuts `s` to at most `max` bytes (plus "...") without splitting a UTF-8 sequence.
std::string Abbreviate(std::string s, size_t max) {
  if (s.size() <= max) return s;
  size_t cut = max - 3;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  return s.substr(0, cut) + "...";
}

std::string TokenDescription(const antlr4::Token* t) {
  if (t == nullptr || t->getType() == antlr4::Token::EOF) return "end of input";
  std::string text = Abbreviate(t->getText(), 24);
  if (t->getType() == TwinQueryParser::STRING) return "string " + text;  // already quoted
  return fmt::format("'{}'", text);
}

std::string ExpectedName(size_t type, const antlr4::dfa::Vocabulary& vocab) {
  switch (type) {
    case TwinQueryParser::IDENT:
      return "a name";
    case TwinQueryParser::NUMBER:
      return "a number";
    case TwinQueryParser::STRING:
      return "a string";
    // An escaped name goes with "a name".
    case TwinQueryParser::ESCAPED_NAME:
      return "";
    case antlr4::Token::EOF:
      return "end of input";
    default:
      break;
  }
  std::string literal = vocab.getLiteralName(type);
  if (!literal.empty()) return literal;  // already quoted: '('
  std::string symbolic = vocab.getSymbolicName(type);
  if (symbolic == "NULL_") return "NULL";
  return symbolic;
}

const std::vector<std::string_view>& KeywordSpellings() {
  static const std::vector<std::string_view> k = {
      "SELECT", "TOP", "FROM", "WHERE", "GROUP", "BY",    "AS",   "AND",
      "OR",     "NOT", "IN",   "NIN",   "TRUE",  "FALSE", "NULL", "UNDEFINED"};
  return k;
}

bool IsKeyword(size_t type) {
  return type >= TwinQueryParser::SELECT && type <= TwinQueryParser::UNDEFINED;
}

bool IsComparisonToken(size_t type) {
  return (type >= TwinQueryParser::EQ && type <= TwinQueryParser::GT) ||
         type == TwinQueryParser::IN || type == TwinQueryParser::NIN;
}

char LowerAscii(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// True when `a` and `b` differ by one swap of adjacent letters (FORM, FROM), ignoring ASCII case.
bool IsTransposition(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  size_t i = 0;
  while (i < a.size() && LowerAscii(a[i]) == LowerAscii(b[i])) ++i;
  if (i + 1 >= a.size()) return false;
  if (LowerAscii(a[i]) != LowerAscii(b[i + 1]) || LowerAscii(a[i + 1]) != LowerAscii(b[i])) {
    return false;
  }
  return EqualsIgnoreCase(a.substr(i + 2), b.substr(i + 2));
}

// The keyword that `word` is probably a misspelling of, or empty. The keywords the parser
// expected come first; any other keyword is suggested only for words of three or more letters
// that start with the same letter (x = 1 ANDD y = 2, SELECT deviceId ASS id).
std::string_view GuessKeyword(std::string_view word,
                              const std::vector<std::string_view>& expected) {
  for (std::string_view kw : expected) {
    if (IsTransposition(word, kw)) return kw;
  }
  std::string_view guess = ClosestMatch(word, expected);
  if (!guess.empty() || word.size() < 3) return guess;
  std::vector<std::string_view> same_initial;
  for (std::string_view kw : KeywordSpellings()) {
    if (LowerAscii(kw[0]) == LowerAscii(word[0])) same_initial.push_back(kw);
  }
  for (std::string_view kw : same_initial) {
    if (IsTransposition(word, kw)) return kw;
  }
  return ClosestMatch(word, same_initial);
}

// Turns ANTLR's syntax errors into diagnostics with our own wording. Only the first syntax error
// is reported: ANTLR's recovery after it mostly produces follow-on errors that mislead (SELECT
// FROM devices would also report "expected FROM" at the end of the input).
class ErrorCollector : public antlr4::BaseErrorListener {
 public:
  struct StopParsing {};

  ErrorCollector(const Source& source, const TokenTable& tokens, Diagnostics* diags)
      : source_(source), tokens_(tokens), diags_(diags) {}

  void syntaxError(antlr4::Recognizer* recognizer, antlr4::Token* offending, size_t /*line*/,
                   size_t /*col*/, const std::string& msg, std::exception_ptr /*e*/) override {
    Diagnostic d{DiagCode::kSyntax, Severity::kError, tokens_.RangeOf(offending), msg};
    auto* parser = dynamic_cast<antlr4::Parser*>(recognizer);
    if (parser != nullptr && offending != nullptr) Describe(parser, offending, &d);
    diags_->push_back(std::move(d));
    throw StopParsing{};
  }

 private:
  void Describe(antlr4::Parser* parser, antlr4::Token* offending, Diagnostic* d) {
    antlr4::misc::IntervalSet expected;
    try {
      expected = parser->getExpectedTokens();
    } catch (...) {
    }
    auto expects = [&](size_t type) { return expected.contains(type); };
    const auto& vocab = parser->getVocabulary();
    size_t type = offending->getType();
    std::string found = TokenDescription(offending);
    std::string text = offending->getText();
    antlr4::Token* prev = Neighbour(parser, offending, -1);
    antlr4::Token* prev2 = prev != nullptr ? Neighbour(parser, prev, -1) : nullptr;
    antlr4::Token* next = Neighbour(parser, offending, +1);
    size_t prev_type = prev != nullptr ? prev->getType() : antlr4::Token::INVALID_TYPE;
    size_t next_type = next != nullptr ? next->getType() : antlr4::Token::EOF;

    // Tailored messages for the common mistakes.
    if (type == TwinQueryParser::LPAREN &&
        (prev_type == TwinQueryParser::IN || prev_type == TwinQueryParser::NIN)) {
      d->message = fmt::format("{} takes a list in brackets, e.g. {} ['a', 'b'], not parentheses",
                               prev->getText(), prev->getText());
      return;
    }
    if (type == TwinQueryParser::NOT && next_type == TwinQueryParser::IN) {
      d->message = "unexpected 'NOT IN': write x NIN [...] (or NOT (x IN [...]))";
      return;
    }
    bool after_top = prev_type == TwinQueryParser::TOP ||
                     (prev_type == TwinQueryParser::LPAREN && prev2 != nullptr &&
                      prev2->getType() == TwinQueryParser::TOP);
    if (after_top && type != TwinQueryParser::NUMBER && expects(TwinQueryParser::NUMBER)) {
      d->code = DiagCode::kBadTop;
      d->message =
          fmt::format("TOP needs a non-negative integer, e.g. TOP 10 or TOP (10); found {}", found);
      return;
    }
    if (prev_type == TwinQueryParser::LBRACK && expected.size() == 1 &&
        expects(TwinQueryParser::NUMBER)) {
      d->code = DiagCode::kBadIndex;
      d->message =
          fmt::format("array index must be a non-negative integer, e.g. a[0]; found {}", found);
      return;
    }
    // Inside [[ ... with no closing ]]: the parser would accept almost any token.
    if (expects(TwinQueryParser::RBRACK) && expects(TwinQueryParser::SELECT) &&
        expects(TwinQueryParser::EQ) && type == antlr4::Token::EOF) {
      d->code = DiagCode::kBadEscapedName;
      d->message = "escaped name is not closed: expected ]]";
      if (auto open = OpenEscape(parser, offending)) d->range = *open;
      return;
    }
    // A reserved word used as a name where an expression or projection starts: group = 1.
    bool reserved_only = IsKeyword(type) && type != TwinQueryParser::NOT &&
                         type != TwinQueryParser::AND && type != TwinQueryParser::OR &&
                         type != TwinQueryParser::TRUE && type != TwinQueryParser::FALSE &&
                         type != TwinQueryParser::NULL_ && type != TwinQueryParser::UNDEFINED;
    bool used_as_name = next_type == TwinQueryParser::DOT || next_type == TwinQueryParser::LBRACK ||
                        IsComparisonToken(next_type) || next_type == TwinQueryParser::COMMA ||
                        next_type == TwinQueryParser::AS || next_type == TwinQueryParser::FROM;
    if (reserved_only && used_as_name && expects(TwinQueryParser::IDENT)) {
      d->code = DiagCode::kReservedWord;
      d->message = fmt::format("'{}' is a reserved word; escape it as [[{}]]", text, text);
      return;
    }
    // A number glued to a name or to another number: 12ab, 0x, 1e, 1.2.3, 5min.
    if ((type == TwinQueryParser::IDENT || type == TwinQueryParser::NUMBER) &&
        prev_type == TwinQueryParser::NUMBER &&
        prev->getStopIndex() + 1 == offending->getStartIndex()) {
      antlr4::Token* last = offending;
      for (antlr4::Token* n = next;
           n != nullptr &&
           (n->getType() == TwinQueryParser::IDENT || n->getType() == TwinQueryParser::NUMBER) &&
           last->getStopIndex() + 1 == n->getStartIndex();
           n = Neighbour(parser, n, +1)) {
        last = n;
      }
      d->code = DiagCode::kBadNumber;
      d->range = {tokens_.RangeOf(prev).begin, tokens_.RangeOf(last).end};
      d->message = fmt::format("malformed number '{}'",
                               Abbreviate(std::string(source_.Slice(d->range)), 40));
      return;
    }
    // tags.123 lexes as tags followed by the number .123.
    if (type == TwinQueryParser::NUMBER && text.front() == '.' &&
        (prev_type == TwinQueryParser::IDENT || prev_type == TwinQueryParser::ESCAPED_NAME ||
         prev_type == TwinQueryParser::RBRACK) &&
        prev->getStopIndex() + 1 == offending->getStartIndex()) {
      d->message = fmt::format(
          "unexpected '{}'; a path segment that starts with a digit must be "
          "escaped: .[[{}]]",
          text, text.substr(1));
      return;
    }
    bool wants_constant = expects(TwinQueryParser::STRING) && expects(TwinQueryParser::NUMBER) &&
                          !expects(TwinQueryParser::IDENT);
    if (wants_constant && (type == TwinQueryParser::IDENT || type == TwinQueryParser::LPAREN)) {
      d->message = fmt::format(
          "unexpected {}: array literals and IN lists hold constants only "
          "(strings, numbers, true, false, null, arrays)",
          found);
      return;
    }

    std::vector<std::string> names;
    bool wants_expr = expects(TwinQueryParser::IDENT) && expects(TwinQueryParser::NUMBER) &&
                      expects(TwinQueryParser::STRING) && expects(TwinQueryParser::LPAREN);
    // After a '.', keywords are accepted only to report them as reserved: do not list them.
    bool wants_segment = expects(TwinQueryParser::IDENT) && expects(TwinQueryParser::SELECT) &&
                         expects(TwinQueryParser::GROUP);
    if (wants_expr)
      names.push_back("an expression");
    else if (wants_constant)
      names.push_back("a constant");
    std::vector<std::string_view> keyword_candidates;
    for (ssize_t t : expected.toList()) {
      size_t ut = static_cast<size_t>(t);
      if (wants_expr && (ut == TwinQueryParser::IDENT || ut == TwinQueryParser::NUMBER ||
                         ut == TwinQueryParser::STRING || ut == TwinQueryParser::LPAREN ||
                         ut == TwinQueryParser::LBRACK || ut == TwinQueryParser::MINUS ||
                         ut == TwinQueryParser::PLUS || ut == TwinQueryParser::NOT ||
                         ut == TwinQueryParser::TRUE || ut == TwinQueryParser::FALSE ||
                         ut == TwinQueryParser::NULL_ || ut == TwinQueryParser::UNDEFINED)) {
        continue;
      }
      if (wants_constant && (ut == TwinQueryParser::NUMBER || ut == TwinQueryParser::STRING ||
                             ut == TwinQueryParser::MINUS || ut == TwinQueryParser::PLUS ||
                             ut == TwinQueryParser::TRUE || ut == TwinQueryParser::FALSE ||
                             ut == TwinQueryParser::NULL_ || ut == TwinQueryParser::UNDEFINED ||
                             ut == TwinQueryParser::LBRACK)) {
        continue;
      }
      if (wants_segment && IsKeyword(ut)) continue;
      std::string n = ExpectedName(ut, vocab);
      if (n.empty()) continue;
      for (std::string_view kw : KeywordSpellings()) {
        if (n == kw) keyword_candidates.push_back(kw);
      }
      names.push_back(std::move(n));
    }
    std::string message = fmt::format("unexpected {}", found);
    if (!names.empty()) {
      message += "; expected ";
      size_t shown = std::min<size_t>(names.size(), 8);
      for (size_t i = 0; i < shown; ++i) {
        if (i > 0) message += (i + 1 == shown && shown == names.size()) ? " or " : ", ";
        message += names[i];
      }
      if (shown < names.size()) message += ", ...";
    }
    // Did you mean: a misspelt keyword, or a keyword-like word where a keyword was expected.
    if (type == TwinQueryParser::IDENT) {
      if (EqualsIgnoreCase(text, "ORDER")) {
        message += "; the query language has no ORDER BY";
      } else if (EqualsIgnoreCase(text, "LIMIT")) {
        message += "; write SELECT TOP n ... to limit the number of rows";
      } else if (std::string_view guess = GuessKeyword(text, keyword_candidates); !guess.empty()) {
        message += fmt::format("; did you mean '{}'?", guess);
      }
    } else if (prev_type == TwinQueryParser::IDENT &&
               (prev2 == nullptr || prev2->getType() != TwinQueryParser::DOT)) {
      // The word before was taken as a name but may be a misspelt keyword: SELECT TOPP 5 * ...
      std::string word = prev->getText();
      std::string_view guess = GuessKeyword(word, {});
      if (!guess.empty())
        message += fmt::format("; did you mean '{}' instead of '{}'?", guess, word);
    }
    d->message = std::move(message);
  }

  // The default-channel token before (step -1) or after (step +1) `t`, or null.
  static antlr4::Token* Neighbour(antlr4::Parser* parser, antlr4::Token* t, int step) {
    auto* stream = dynamic_cast<antlr4::BufferedTokenStream*>(parser->getTokenStream());
    if (stream == nullptr || (t->getType() == antlr4::Token::EOF && step > 0)) return nullptr;
    ssize_t n = static_cast<ssize_t>(stream->size());
    for (ssize_t i = static_cast<ssize_t>(t->getTokenIndex()) + step; i >= 0 && i < n; i += step) {
      antlr4::Token* p = stream->get(static_cast<size_t>(i));
      if (p->getChannel() == antlr4::Token::DEFAULT_CHANNEL) return p;
    }
    return nullptr;
  }

  // The range of the last "[[" (two adjacent '[') before `t`.
  std::optional<SourceRange> OpenEscape(antlr4::Parser* parser, antlr4::Token* t) {
    for (antlr4::Token* p = Neighbour(parser, t, -1); p != nullptr; p = Neighbour(parser, p, -1)) {
      antlr4::Token* before = Neighbour(parser, p, -1);
      if (p->getType() == TwinQueryParser::LBRACK && before != nullptr &&
          before->getType() == TwinQueryParser::LBRACK &&
          before->getStopIndex() + 1 == p->getStartIndex()) {
        return SourceRange{tokens_.RangeOf(before).begin, tokens_.RangeOf(p).end};
      }
    }
    return std::nullopt;
  }

  const Source& source_;
  const TokenTable& tokens_;
  Diagnostics* diags_;
};

// The lexical pass: decodes strings and numbers, reports bad characters and unterminated
// strings, and bounds the nesting the parser will see.
void LexicalPass(const std::vector<antlr4::Token*>& toks, const Source& source, TokenTable* table,
                 Diagnostics* diags) {
  struct Group {
    size_t prefix_not = 0;   // NOT operators pending in this group
    size_t prefix_sign = 0;  // unary - + pending in this group
  };
  std::vector<Group> groups(1);
  size_t nesting_reported = 0;
  int prev_type = -1;  // previous default-channel token type
  // The top level is not a nesting level: kMaxNesting parentheses are allowed, one more is not.
  auto current_depth = [&]() {
    size_t d = 0;
    for (const Group& g : groups) d += 1 + g.prefix_not + g.prefix_sign;
    return d - 1;
  };
  for (antlr4::Token* t : toks) {
    if (t->getChannel() != antlr4::Token::DEFAULT_CHANNEL) continue;
    int type = static_cast<int>(t->getType());
    if (t->getType() == antlr4::Token::EOF) break;
    SourceRange r = table->RangeOf(t);
    switch (static_cast<size_t>(type)) {
      case TwinQueryLexer::ERRCHAR: {
        std::string shown(source.Slice(r));
        std::string msg = fmt::format("unexpected character '{}'", shown);
        if (shown == "!") msg += "; write != for 'not equal'";
        if (shown == "\"" || shown == "'") msg = "unmatched quote";
        diags->push_back({DiagCode::kBadCharacter, Severity::kError, r, std::move(msg)});
        break;
      }
      case TwinQueryLexer::UNTERMINATED_STRING:
        diags->push_back({DiagCode::kUnterminatedString,
                          Severity::kError,
                          {r.begin, r.begin + 1},
                          "unterminated string: no closing quote"});
        break;
      case TwinQueryLexer::STRING: {
        std::string decoded;
        if (DecodeString(source.Slice(r), r.begin, &decoded, diags)) {
          table->strings.emplace(t->getTokenIndex(), std::move(decoded));
        }
        break;
      }
      case TwinQueryLexer::NUMBER: {
        double d = 0;
        if (ParseNumber(source.Slice(r), &d)) {
          table->numbers.emplace(t->getTokenIndex(), d);
        } else {
          diags->push_back({DiagCode::kBadNumber, Severity::kError, r,
                            fmt::format("number {} is out of range", source.Slice(r))});
        }
        break;
      }
      default:
        break;
    }
    // Nesting estimate: an upper bound of the parser's recursion.
    switch (type) {
      case TwinQueryLexer::LPAREN:
      case TwinQueryLexer::LBRACK:
        groups.emplace_back();
        break;
      case TwinQueryLexer::RPAREN:
      case TwinQueryLexer::RBRACK:
        if (groups.size() > 1) groups.pop_back();
        break;
      case TwinQueryLexer::NOT:
        groups.back().prefix_not++;
        break;
      case TwinQueryLexer::AND:
      case TwinQueryLexer::OR:
      case TwinQueryLexer::COMMA:
        groups.back().prefix_not = 0;
        groups.back().prefix_sign = 0;
        break;
      case TwinQueryLexer::MINUS:
      case TwinQueryLexer::PLUS: {
        bool unary = prev_type == -1 || prev_type == TwinQueryLexer::LPAREN ||
                     prev_type == TwinQueryLexer::LBRACK || prev_type == TwinQueryLexer::COMMA ||
                     (prev_type >= TwinQueryLexer::SELECT && prev_type <= TwinQueryLexer::NIN) ||
                     (prev_type >= TwinQueryLexer::STAR && prev_type <= TwinQueryLexer::GT);
        if (unary) {
          groups.back().prefix_sign++;
        } else {
          groups.back().prefix_sign = 0;
        }
        break;
      }
      case TwinQueryLexer::STAR:
      case TwinQueryLexer::SLASH:
      case TwinQueryLexer::PERCENT:
      case TwinQueryLexer::EQ:
      case TwinQueryLexer::NEQ:
      case TwinQueryLexer::LTGT:
      case TwinQueryLexer::LE:
      case TwinQueryLexer::GE:
      case TwinQueryLexer::LT:
      case TwinQueryLexer::GT:
      case TwinQueryLexer::IN:
      case TwinQueryLexer::NIN:
        groups.back().prefix_sign = 0;
        break;
      default:
        break;
    }
    if (nesting_reported == 0 && current_depth() > limits::kMaxNesting) {
      diags->push_back({DiagCode::kTooNested, Severity::kError, r,
                        fmt::format("expression nests deeper than {} levels (parentheses, "
                                    "brackets and prefix operators)",
                                    limits::kMaxNesting)});
      nesting_reported = 1;
    }
    prev_type = type;
  }
}

void CheckDepth(const ast::Expr* e, Diagnostics* diags) {
  if (e == nullptr) return;
  size_t d = AstDepth(e);
  if (d > limits::kMaxAstDepth) {
    diags->push_back(
        {DiagCode::kTooDeep, Severity::kError, e->range,
         fmt::format("expression is {} levels deep; the limit is {}", d, limits::kMaxAstDepth)});
  }
}

enum class Entry { kQuery, kCondition };

Result<ast::Ast> ParseImpl(const Source& source, Entry entry, ParserImpl impl) {
  const std::string& text = source.text();
  uint32_t size = static_cast<uint32_t>(std::min<size_t>(text.size(), UINT32_MAX));
  if (text.size() > limits::kMaxQueryBytes) {
    return Diagnostic{DiagCode::kTooLong,
                      Severity::kError,
                      {static_cast<uint32_t>(limits::kMaxQueryBytes), size},
                      fmt::format("query text is {} bytes; the limit is {} bytes", text.size(),
                                  limits::kMaxQueryBytes)};
  }
  size_t bad = FindInvalidUtf8(text);
  if (bad != std::string_view::npos) {
    return Diagnostic{
        DiagCode::kInvalidUtf8,
        Severity::kError,
        {static_cast<uint32_t>(bad), static_cast<uint32_t>(bad + 1)},
        fmt::format("invalid UTF-8 byte 0x{:02X}", static_cast<unsigned char>(text[bad]))};
  }
  // ANTLR drops a leading BOM; its code point indexes then start after it.
  uint32_t base = text.rfind("\xEF\xBB\xBF", 0) == 0 ? 3 : 0;
  if (IsBlank(std::string_view(text).substr(base))) {
    return Diagnostic{DiagCode::kEmptyInput,
                      Severity::kError,
                      {size, size},
                      entry == Entry::kQuery ? "empty query; a query starts with SELECT"
                                             : "empty condition; write * to target every device"};
  }

  if (impl == ParserImpl::kDefault) {
    std::optional<ast::Ast> fast;
    try {
      fast = parse_internal::FastParseChecked(source, entry == Entry::kQuery
                                                          ? parse_internal::FastEntry::kQuery
                                                          : parse_internal::FastEntry::kCondition);
    } catch (...) {  // out of memory: the ANTLR path below reports it
      fast.reset();
    }
    if (fast) return std::move(*fast);
  }

  TokenTable table;
  table.cp_to_byte.reserve(text.size() + 1);
  for (uint32_t i = base; i < size; ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) table.cp_to_byte.push_back(i);
  }
  table.cp_to_byte.push_back(size);

  Diagnostics diags;
  ast::Ast result;
  try {
    antlr4::ANTLRInputStream input(text);
    TwinQueryLexer lexer(&input);
    ErrorCollector collector(source, table, &diags);
    lexer.removeErrorListeners();
    lexer.addErrorListener(&collector);
    antlr4::CommonTokenStream tokens(&lexer);
    tokens.fill();
    LexicalPass(tokens.getTokens(), source, &table, &diags);

    TwinQueryParser parser(&tokens);
    parser.removeErrorListeners();
    // Two-stage parsing (ANTLR's documented strategy): SLL prediction with a bail-out error
    // strategy first, which gives the same tree as LL whenever it succeeds and is much cheaper;
    // on any syntax error, parse again from the start with full LL and the error listener, so
    // that every diagnostic comes from the LL parse exactly as before.
    antlr4::ParserRuleContext* fast_tree = nullptr;
    if (diags.empty()) {
      parser.getInterpreter<antlr4::atn::ParserATNSimulator>()->setPredictionMode(
          antlr4::atn::PredictionMode::SLL);
      parser.setErrorHandler(std::make_shared<antlr4::BailErrorStrategy>());
      try {
        fast_tree = entry == Entry::kQuery
                        ? static_cast<antlr4::ParserRuleContext*>(parser.queryEntry())
                        : static_cast<antlr4::ParserRuleContext*>(parser.conditionEntry());
      } catch (const antlr4::ParseCancellationException&) {
        fast_tree = nullptr;
      }
      if (fast_tree == nullptr) {
        tokens.seek(0);
        parser.reset();
        parser.getInterpreter<antlr4::atn::ParserATNSimulator>()->setPredictionMode(
            antlr4::atn::PredictionMode::LL);
        parser.setErrorHandler(std::make_shared<antlr4::DefaultErrorStrategy>());
      }
    }
    parser.addErrorListener(&collector);
    try {
      if (!diags.empty()) {
        // Lexical errors: do not parse.
      } else if (entry == Entry::kQuery) {
        auto* tree = fast_tree != nullptr
                         ? static_cast<TwinQueryParser::QueryEntryContext*>(fast_tree)
                         : parser.queryEntry();
        parse_internal::BuildQuery(tree->query(), source, table, &result, &diags);
        if (result.query) {
          CheckDepth(result.query->where, &diags);
          for (const auto& p : result.query->projections) CheckDepth(p.expr, &diags);
        }
      } else {
        auto* tree = fast_tree != nullptr
                         ? static_cast<TwinQueryParser::ConditionEntryContext*>(fast_tree)
                         : parser.conditionEntry();
        parse_internal::BuildCondition(tree, source, table, &result, &diags);
        if (result.condition) CheckDepth(result.condition->expr, &diags);
      }
    } catch (const ErrorCollector::StopParsing&) {
      // The (single) syntax error is in `diags`.
    }
  } catch (const std::bad_alloc&) {
    diags.push_back({DiagCode::kInternal, Severity::kError, {0, 0}, "out of memory while parsing"});
  } catch (const std::exception& e) {
    diags.push_back({DiagCode::kInternal,
                     Severity::kError,
                     {0, 0},
                     fmt::format("internal parser error: {}", e.what())});
  } catch (...) {
    diags.push_back({DiagCode::kInternal, Severity::kError, {0, 0}, "internal parser error"});
  }
  if (diags.size() > limits::kMaxDiagnostics) {
    size_t more = diags.size() - limits::kMaxDiagnostics;
    SourceRange at = diags[limits::kMaxDiagnostics].range;
    diags.resize(limits::kMaxDiagnostics);
    diags.push_back({DiagCode::kTooManyErrors, Severity::kNote, at,
                     fmt::format("too many errors; {} more not shown", more)});
  }
  if (!diags.empty()) return diags;
  return result;
}

}  // namespace

Result<ast::Ast> ParseQuery(const Source& source, ParserImpl impl) {
  return ParseImpl(source, Entry::kQuery, impl);
}

Result<ast::Ast> ParseCondition(const Source& source, ParserImpl impl) {
  return ParseImpl(source, Entry::kCondition, impl);
}

}  // namespace twinq
