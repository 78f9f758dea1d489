// The Azure IoT Hub query language, as accepted by twinq.
// Two entry points: queryEntry (SELECT ... FROM ...) and conditionEntry (what jobs take).
// Precedence, high to low (standard SQL, docs/language.md):
//   primary (literal, path, call, parentheses) > unary - + > * / % > + - >
//   comparisons and IN/NIN (non-associative) > NOT > AND > OR
// Keywords are case-insensitive (letter fragments: the caseInsensitive option needs ANTLR 4.10).
// Semantic checks (reserved words as names, chained comparisons, collection names, number ranges,
// string escapes) happen in engine/parse/build_ast.cc, which gives positioned diagnostics.
grammar TwinQuery;

// ESCAPED_NAME: [[raw name]] right after '.' or AS (see `name`), made by nextToken below.
tokens { ESCAPED_NAME }

@lexer::members {
  // The lexer's enum lacks the types declared in `tokens`: ANTLR numbers them after the lexer
  // rules' (parser.cc checks this with a static_assert).
  static constexpr size_t ESCAPED_NAME = ERRCHAR + 1;

  // The type of the last token on the default channel.
  size_t last_type_ = 0;

  // After '.' or AS, "[[" up to the next "]]" on the same line, with no bracket in between, is one
  // ESCAPED_NAME token, whatever characters it holds (configurations.[[cfg#1:a]]). Elsewhere [[
  // may also open a nested array literal, so the parser reads the escape from ordinary tokens.
  // (Done here rather than with a lexer predicate: predicates make ANTLR 4.9's lexer slow and
  // leak memory.)
  std::unique_ptr<antlr4::Token> nextToken() override {
    if ((last_type_ == DOT || last_type_ == AS) && _input->LA(1) == '[' && _input->LA(2) == '[') {
      size_t k = 3;  // LA(k) is the first character after "[["
      for (;; ++k) {
        size_t c = _input->LA(k);
        if (c == ']' && _input->LA(k + 1) == ']') break;
        if (c == '[' || c == ']' || c == '\r' || c == '\n' || c == antlr4::Token::EOF) {
          k = 0;
          break;
        }
      }
      if (k != 0) {
        size_t start = _input->index();
        size_t line = getLine();
        size_t column = getCharPositionInLine();
        auto* sim = getInterpreter<antlr4::atn::LexerATNSimulator>();
        for (size_t i = 0; i <= k; ++i) sim->consume(_input);
        last_type_ = ESCAPED_NAME;
        return _factory->create({this, _input}, ESCAPED_NAME, "", antlr4::Token::DEFAULT_CHANNEL,
                                start, _input->index() - 1, line, column);
      }
    }
    std::unique_ptr<antlr4::Token> t = antlr4::Lexer::nextToken();
    if (t->getChannel() == antlr4::Token::DEFAULT_CHANNEL) last_type_ = t->getType();
    return t;
  }
}

queryEntry : query EOF ;

conditionEntry
  : STAR EOF                                          # allCondition
  | (FROM collection WHERE)? expr EOF                 # exprCondition
  | query EOF                                         # selectCondition
  ;

query
  : SELECT top? selectList FROM collection (WHERE expr)? (GROUP BY path (COMMA path)*)?
  ;

// Left-factored, so that an error after TOP is reported where the number was expected.
top : TOP (NUMBER | LPAREN NUMBER RPAREN) ;

selectList
  : STAR                                              # selectAll
  | projection (COMMA projection)*                    # selectItems
  ;

projection : (functionCall | path) (AS alias=name)? ;

collection : IDENT (DOT IDENT)* ;

expr
  : primary                                                     # primaryExpr
  | op=(MINUS | PLUS) expr                                      # unaryExpr
  | expr op=(STAR | SLASH | PERCENT) expr                       # mulExpr
  | expr op=(PLUS | MINUS) expr                                 # addExpr
  | expr op=(EQ | NEQ | LTGT | LT | LE | GT | GE) expr          # compareExpr
  | expr op=(IN | NIN) arrayLiteral                             # inExpr
  | NOT expr                                                    # notExpr
  | expr AND expr                                               # andExpr
  | expr OR expr                                                # orExpr
  ;

primary
  : literal                                           # literalPrimary
  | functionCall                                      # callPrimary
  | path                                              # pathPrimary
  | LPAREN expr RPAREN                                # parenPrimary
  ;

functionCall : IDENT LPAREN (expr (COMMA expr)*)? RPAREN ;

// A path: segments joined by '.', with [n] indexing. [[...]] escapes a segment.
// Keywords are accepted after a '.' only so that build_ast.cc can ask for [[escaping]].
path : name (DOT segment | LBRACK index=NUMBER RBRACK)* ;

segment
  : name                                              # nameSegment
  | keyword                                           # keywordSegment
  ;

// After '.' and AS, [[...]] is one ESCAPED_NAME token (see the lexer members above). Elsewhere
// (a leading segment) [[ may also open a nested array literal, so the escape is parsed from
// ordinary tokens.
name
  : IDENT                                             # plainName
  | ESCAPED_NAME                                      # escapedToken
  | LBRACK LBRACK (~RBRACK)* RBRACK RBRACK            # escapedName  // empty: E112
  ;

literal
  : STRING                                            # stringLiteral
  | NUMBER                                            # numberLiteral
  | TRUE                                              # trueLiteral
  | FALSE                                             # falseLiteral
  | NULL_                                             # nullLiteral
  | UNDEFINED                                         # undefinedLiteral
  | arrayLiteral                                      # arrayLiteralPrimary
  ;

arrayLiteral : LBRACK (constant (COMMA constant)*)? RBRACK ;

constant
  : STRING                                            # stringConstant
  | sign=(MINUS | PLUS)? NUMBER                       # numberConstant
  | TRUE                                              # trueConstant
  | FALSE                                             # falseConstant
  | NULL_                                             # nullConstant
  | UNDEFINED                                         # undefinedConstant
  | arrayLiteral                                      # arrayConstant
  ;

// Keywords are reserved: as a path segment they must be escaped ([[group]]).
keyword
  : SELECT | TOP | FROM | WHERE | GROUP | BY | AS | AND | OR | NOT | IN | NIN
  | TRUE | FALSE | NULL_ | UNDEFINED
  ;

// ---------------------------------------------------------------------------------------------
// Lexer

SELECT    : S E L E C T ;
TOP       : T O P ;
FROM      : F R O M ;
WHERE     : W H E R E ;
GROUP     : G R O U P ;
BY        : B Y ;
AS        : A S ;
AND       : A N D ;
OR        : O R ;
NOT       : N O T ;
IN        : I N ;
NIN       : N I N ;
TRUE      : T R U E ;
FALSE     : F A L S E ;
NULL_     : N U L L ;
UNDEFINED : U N D E F I N E D ;

STAR     : '*' ;
SLASH    : '/' ;
PERCENT  : '%' ;
PLUS     : '+' ;
MINUS    : '-' ;
EQ       : '=' ;
NEQ      : '!=' ;
LTGT     : '<>' ;
LE       : '<=' ;
GE       : '>=' ;
LT       : '<' ;
GT       : '>' ;
LPAREN   : '(' ;
RPAREN   : ')' ;
LBRACK   : '[' ;
RBRACK   : ']' ;
COMMA    : ',' ;
DOT      : '.' ;

// Hex before decimal so that 0x1F is one token. A number glued to letters (12ab) is lexed as a
// NUMBER followed by an IDENT, which the parser rejects.
NUMBER
  : '0' [xX] HEX_DIGIT+
  | DIGIT+ ('.' DIGIT*)? EXPONENT?
  | '.' DIGIT+ EXPONENT?
  ;

// Strings: backslash escapes and doubled quotes. Escapes are validated in build_ast.cc.
STRING
  : '\'' ( ~['\\] | '\\' . | '\'\'' )* '\''
  | '"' ( ~["\\] | '\\' . | '""' )* '"'
  ;
// Longest match picks STRING when the closing quote exists; otherwise this token says where the
// unterminated string began.
UNTERMINATED_STRING
  : '\'' ( ~['\\] | '\\' . | '\'\'' )* '\\'?
  | '"' ( ~["\\] | '\\' . | '""' )* '\\'?
  ;

// Identifiers: an optional leading '$', then letters, digits, '_' and any non-ASCII code point.
IDENT : '$'? ID_START ID_PART* ;

WS : [ \t\r\n\f\u000B\u00A0\uFEFF]+ -> channel(HIDDEN) ;

// Everything else becomes a token, so the lexer never silently drops a character.
ERRCHAR : . ;

fragment ID_START  : [a-zA-Z_] | ~[\u0000-\u007F\u00A0\uFEFF] ;
fragment ID_PART   : ID_START | DIGIT ;
fragment DIGIT     : [0-9] ;
fragment HEX_DIGIT : [0-9a-fA-F] ;
fragment EXPONENT  : [eE] [+-]? DIGIT+ ;

fragment A : [aA] ; fragment B : [bB] ; fragment C : [cC] ; fragment D : [dD] ;
fragment E : [eE] ; fragment F : [fF] ; fragment G : [gG] ; fragment H : [hH] ;
fragment I : [iI] ; fragment J : [jJ] ; fragment K : [kK] ; fragment L : [lL] ;
fragment M : [mM] ; fragment N : [nN] ; fragment O : [oO] ; fragment P : [pP] ;
fragment Q : [qQ] ; fragment R : [rR] ; fragment S : [sS] ; fragment T : [tT] ;
fragment U : [uU] ; fragment V : [vV] ; fragment W : [wW] ; fragment X : [xX] ;
fragment Y : [yY] ; fragment Z : [zZ] ;
