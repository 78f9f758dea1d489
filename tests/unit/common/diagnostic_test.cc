// Diagnostics: caret rendering, code names, did-you-mean helpers (engine/common/diagnostic.h).
#include "engine/common/diagnostic.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "engine/common/source.h"

namespace twinq {
namespace {

Diagnostic Err(DiagCode code, uint32_t begin, uint32_t end, std::string message) {
  return Diagnostic{code, Severity::kError, {begin, end}, std::move(message)};
}

// ---- Render -----------------------------------------------------------------------------------

TEST(DiagnosticRender, CaretWidthFollowsTheRange) {
  Source s("<query>", "tags.floor > 2 AND STARTWITH(deviceId, 'b43-')");
  EXPECT_EQ(Render(Err(DiagCode::kUnknownFunction, 19, 28,
                       "unknown function 'STARTWITH'; did you mean 'STARTSWITH'?"),
                   s),
            "error[E200] <query>:1:20: unknown function 'STARTWITH'; did you mean 'STARTSWITH'?\n"
            " | tags.floor > 2 AND STARTWITH(deviceId, 'b43-')\n"
            " |                    ^~~~~~~~~\n");
  // One byte: a lone caret.
  EXPECT_EQ(Render(Err(DiagCode::kSyntax, 11, 12, "m"), s),
            "error[E100] <query>:1:12: m\n"
            " | tags.floor > 2 AND STARTWITH(deviceId, 'b43-')\n"
            " |            ^\n");
  // An empty range still gets one caret.
  EXPECT_EQ(Render(Err(DiagCode::kSyntax, 4, 4, "m"), s),
            "error[E100] <query>:1:5: m\n"
            " | tags.floor > 2 AND STARTWITH(deviceId, 'b43-')\n"
            " |     ^\n");
  // The whole line.
  EXPECT_EQ(Render(Err(DiagCode::kTooDeep, 0, 46, "m"), s),
            "error[E122] <query>:1:1: m\n"
            " | tags.floor > 2 AND STARTWITH(deviceId, 'b43-')\n"
            " | ^" +
                std::string(45, '~') + "\n");
}

TEST(DiagnosticRender, RangeAtTheEndOfTheInput) {
  Source s("<condition>", "x = 1 AND");
  EXPECT_EQ(Render(Err(DiagCode::kSyntax, 9, 9, "unexpected end of input"), s),
            "error[E100] <condition>:1:10: unexpected end of input\n"
            " | x = 1 AND\n"
            " |          ^\n");
  // After a final line break the end of the input is on an (empty) line of its own.
  Source nl("<condition>", "x = 1 AND\n");
  EXPECT_EQ(Render(Err(DiagCode::kSyntax, 10, 10, "unexpected end of input"), nl),
            "error[E100] <condition>:2:1: unexpected end of input\n"
            " | \n"
            " | ^\n");
  // The empty input.
  Source empty("<query>", "");
  EXPECT_EQ(Render(Err(DiagCode::kEmptyInput, 0, 0, "empty query"), empty),
            "error[E115] <query>:1:1: empty query\n"
            " | \n"
            " | ^\n");
  // A range past the end is clamped to it.
  EXPECT_EQ(Render(Err(DiagCode::kSyntax, 50, 60, "m"), s),
            "error[E100] <condition>:1:10: m\n"
            " | x = 1 AND\n"
            " |          ^\n");
}

TEST(DiagnosticRender, MultiLineSource) {
  Source s("<query>", "SELECT *\nFROM devices\nWHERE tags.x = 'a'\n  AND #");
  EXPECT_EQ(Render(Err(DiagCode::kBadCharacter, 47, 48, "unexpected character '#'"), s),
            "error[E103] <query>:4:7: unexpected character '#'\n"
            " |   AND #\n"
            " |       ^\n");
  EXPECT_EQ(Render(Err(DiagCode::kUnknownCollection, 14, 21, "m"), s),
            "error[E107] <query>:2:6: m\n"
            " | FROM devices\n"
            " |      ^~~~~~~\n");
  // CRLF: the \r is not part of the line.
  Source crlf("<query>", "SELECT *\r\nFROM devics\r\n");
  EXPECT_EQ(Render(Err(DiagCode::kUnknownCollection, 15, 21, "m"), crlf),
            "error[E107] <query>:2:6: m\n"
            " | FROM devics\n"
            " |      ^~~~~~\n");
}

TEST(DiagnosticRender, RangeSpanningLinesIsUnderlinedToTheEndOfItsFirstLine) {
  Source s("<condition>", "a = 1 AND (b = 2\n  OR c = 3)");
  EXPECT_EQ(Render(Err(DiagCode::kTooDeep, 10, 27, "m"), s),
            "error[E122] <condition>:1:11: m\n"
            " | a = 1 AND (b = 2\n"
            " |           ^~~~~~\n");
  // Starting at the end of a line (on its line break).
  EXPECT_EQ(Render(Err(DiagCode::kSyntax, 16, 20, "m"), s),
            "error[E100] <condition>:1:17: m\n"
            " | a = 1 AND (b = 2\n"
            " |                 ^\n");
}

TEST(DiagnosticRender, TabsKeepTheCaretAligned) {
  Source s("<condition>", "\tx =\t#");
  EXPECT_EQ(Render(Err(DiagCode::kBadCharacter, 5, 6, "m"), s),
            "error[E103] <condition>:1:6: m\n"
            " | \tx =\t#\n"
            " | \t   \t^\n");
  Source two("<condition>", "a\n\t\tb # c");
  EXPECT_EQ(Render(Err(DiagCode::kBadCharacter, 6, 7, "m"), two),
            "error[E103] <condition>:2:5: m\n"
            " | \t\tb # c\n"
            " | \t\t  ^\n");
}

TEST(DiagnosticRender, ControlCharactersAreShownAsSpaces) {
  Source s("<condition>", "x = '\x01\x7f' #");
  EXPECT_EQ(Render(Err(DiagCode::kBadCharacter, 9, 10, "m"), s),
            "error[E103] <condition>:1:10: m\n"
            " | x = '  ' #\n"
            " |          ^\n");
}

TEST(DiagnosticRender, ColumnsAndCaretsCountCodePoints) {
  // é: 2 bytes, 日: 3 bytes, 😀: 4 bytes; one column each.
  Source s("<condition>", "tags.caf\xC3\xA9 = '\xE6\x97\xA5\xF0\x9F\x98\x80' #");
  EXPECT_EQ(Render(Err(DiagCode::kBadCharacter, 23, 24, "m"), s),
            "error[E103] <condition>:1:18: m\n"
            " | tags.caf\xC3\xA9 = '\xE6\x97\xA5\xF0\x9F\x98\x80' #\n"
            " |                  ^\n");
  // Underlining multi-byte text: one caret per code point.
  EXPECT_EQ(Render(Err(DiagCode::kBadEscape, 14, 22, "m"), s),
            "error[E102] <condition>:1:14: m\n"
            " | tags.caf\xC3\xA9 = '\xE6\x97\xA5\xF0\x9F\x98\x80' #\n"
            " |              ^~~\n");
}

TEST(DiagnosticRender, NotesListsAndShortForm) {
  Source s("<condition>", "x # y");
  Diagnostics ds = {Err(DiagCode::kBadCharacter, 2, 3, "unexpected character '#'"),
                    {DiagCode::kTooManyErrors, Severity::kNote, {4, 5}, "too many errors"}};
  EXPECT_EQ(Render(ds, s),
            "error[E103] <condition>:1:3: unexpected character '#'\n"
            " | x # y\n"
            " |   ^\n"
            "note[E124] <condition>:1:5: too many errors\n"
            " | x # y\n"
            " |     ^\n");
  EXPECT_EQ(RenderShort(ds[0], s), "E103 1:3: unexpected character '#'");
  EXPECT_EQ(RenderShort(ds[1], s), "E124 1:5: too many errors");
  EXPECT_EQ(Render(Diagnostics{}, s), "");
  Source ml("<q>", "a\nbb\nccc");
  EXPECT_EQ(RenderShort(Err(DiagCode::kSyntax, 7, 8, "m"), ml), "E100 3:3: m");
}

// ---- codes --------------------------------------------------------------------------------------

TEST(DiagnosticCodes, Names) {
  EXPECT_EQ(DiagCodeName(DiagCode::kSyntax), "E100");
  EXPECT_EQ(DiagCodeName(DiagCode::kInvalidUtf8), "E105");
  EXPECT_EQ(DiagCodeName(DiagCode::kEmptyInList), "E110");
  EXPECT_EQ(DiagCodeName(DiagCode::kTooLong), "E120");
  EXPECT_EQ(DiagCodeName(DiagCode::kTooManyErrors), "E124");
  EXPECT_EQ(DiagCodeName(DiagCode::kInternal), "E199");
  EXPECT_EQ(DiagCodeName(DiagCode::kUnknownFunction), "E200");
  EXPECT_EQ(DiagCodeName(DiagCode::kJobsAggregate), "E218");
  EXPECT_EQ(DiagCodeDescription(DiagCode::kSyntax), "syntax error");
  EXPECT_EQ(DiagCodeDescription(DiagCode::kTooNested), "nesting too deep");
}

TEST(DiagnosticCodes, TableIsConsistent) {
  const std::vector<DiagCode>& all = AllDiagCodes();
  ASSERT_FALSE(all.empty());
  EXPECT_EQ(all.front(), DiagCode::kSyntax);
  std::set<int> numbers;
  std::set<std::string> names;
  int previous = 0;
  for (DiagCode c : all) {
    int n = static_cast<int>(c);
    EXPECT_GT(n, previous) << "codes are listed in increasing order";
    previous = n;
    numbers.insert(n);
    names.insert(DiagCodeName(c));
    EXPECT_EQ(DiagCodeName(c), "E" + std::to_string(n));
    EXPECT_FALSE(DiagCodeDescription(c).empty());
    EXPECT_GE(n, 100);
    EXPECT_LT(n, 300);
  }
  EXPECT_EQ(numbers.size(), all.size());
  EXPECT_EQ(names.size(), all.size());
  // The parse-stage codes (1xx) and the limits (12x) are all present.
  for (int n : {100, 101, 102, 103, 104, 105, 106, 107, 108, 110, 111,
                112, 113, 114, 115, 120, 121, 122, 123, 124, 199}) {
    EXPECT_EQ(numbers.count(n), 1u) << n;
  }
}

// ---- did you mean -----------------------------------------------------------------------------

TEST(DiagnosticSuggest, EditDistanceIgnoreCase) {
  EXPECT_EQ(EditDistanceIgnoreCase("", ""), 0u);
  EXPECT_EQ(EditDistanceIgnoreCase("abc", ""), 3u);
  EXPECT_EQ(EditDistanceIgnoreCase("", "abcd"), 4u);
  EXPECT_EQ(EditDistanceIgnoreCase("kitten", "sitting"), 3u);
  EXPECT_EQ(EditDistanceIgnoreCase("SELECT", "select"), 0u);
  EXPECT_EQ(EditDistanceIgnoreCase("Is_Defined", "IS_DEFINED"), 0u);
  EXPECT_EQ(EditDistanceIgnoreCase("STARTWITH", "STARTSWITH"), 1u);  // insertion
  EXPECT_EQ(EditDistanceIgnoreCase("SELECTT", "SELECT"), 1u);        // deletion
  EXPECT_EQ(EditDistanceIgnoreCase("SELEKT", "SELECT"), 1u);         // substitution
  EXPECT_EQ(EditDistanceIgnoreCase("FORM", "FROM"), 2u);             // no transpositions
  EXPECT_EQ(EditDistanceIgnoreCase("abc", "xyz"), 3u);
  // Symmetric.
  EXPECT_EQ(EditDistanceIgnoreCase("devices.module", "devices.modules"),
            EditDistanceIgnoreCase("devices.modules", "devices.module"));
  // Non-ASCII bytes compare exactly (é is two bytes).
  EXPECT_EQ(EditDistanceIgnoreCase("caf\xC3\xA9", "CAF\xC3\xA9"), 0u);
  EXPECT_EQ(EditDistanceIgnoreCase("caf\xC3\xA9", "cafe"), 2u);
}

TEST(DiagnosticSuggest, ClosestMatch) {
  const std::vector<std::string_view> collections = {"devices", "devices.modules", "devices.jobs"};
  EXPECT_EQ(ClosestMatch("device", collections), "devices");
  EXPECT_EQ(ClosestMatch("DEVICE", collections), "devices");
  EXPECT_EQ(ClosestMatch("devices.module", collections), "devices.modules");
  EXPECT_EQ(ClosestMatch("devices.job", collections), "devices.jobs");
  EXPECT_EQ(ClosestMatch("twins", collections), "");
  // Never the word itself (in any case).
  EXPECT_EQ(ClosestMatch("devices", collections), "");
  EXPECT_EQ(ClosestMatch("DEVICES", {"devices"}), "");
  // Short words (up to 4 letters) allow one edit, longer ones two.
  EXPECT_EQ(ClosestMatch("BYY", {"BY"}), "BY");
  EXPECT_EQ(ClosestMatch("AX", {"BY"}), "");
  EXPECT_EQ(ClosestMatch("FORM", {"FROM"}), "");
  EXPECT_EQ(ClosestMatch("SELCET", {"SELECT"}), "SELECT");
  EXPECT_EQ(ClosestMatch("SLCT", {"SELECT"}), "");
  EXPECT_EQ(ClosestMatch("STARTWTH", {"STARTSWITH"}), "STARTSWITH");
  EXPECT_EQ(ClosestMatch("STRTWTH", {"STARTSWITH"}), "");
  // The closest wins; on a tie, the first candidate.
  EXPECT_EQ(ClosestMatch("UPPR", {"LOWER", "UPPER"}), "UPPER");
  EXPECT_EQ(ClosestMatch("ab", {"ac", "ad"}), "ac");
  EXPECT_EQ(ClosestMatch("ORR", {"OR", "NOT", "AND"}), "OR");
  // Degenerate input.
  EXPECT_EQ(ClosestMatch("", {"a"}), "");
  EXPECT_EQ(ClosestMatch("x", {}), "");
  EXPECT_EQ(ClosestMatch(std::string(65, 'a'), {std::string(64, 'a')}), "");
  // The result points into the candidates, not into the word.
  std::string word = "selec";
  std::vector<std::string_view> kws = {"SELECT"};
  std::string_view got = ClosestMatch(word, kws);
  EXPECT_EQ(got.data(), kws[0].data());
}

}  // namespace
}  // namespace twinq
