// docs/bytecode.md is generated from the opcode table (engine/vm/opcodes.def, through
// vm::OpCount / vm::InfoAt) and from EXPLAIN output, SQLite-fashion: the header comment of
// opcodes.def, one table row per opcode, and fixed example programs compiled here over a tiny
// inline fleet. The test renders the document and compares it with the committed file; with
// TWINQ_UPDATE_GOLDEN=1 it rewrites the file instead (review the diff in the commit).
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "engine/common/json_reader.h"
#include "engine/common/source.h"
#include "engine/vm/compiler.h"
#include "engine/vm/program.h"
#include "engine/vm/query.h"
#include "index/fleet.h"
#include "tools/frontend.h"

namespace twinq::vm {
namespace {

const char kDocPath[] = TWINQ_SOURCE_DIR "/docs/bytecode.md";
const char kOpcodesPath[] = TWINQ_SOURCE_DIR "/engine/vm/opcodes.def";

// The example fleet and conditions of the document.
constexpr std::string_view kFleet =
    R"({"deviceId":"b43-1","tags":{"building":"43","floor":3,"name":"lobby"}}
{"deviceId":"b43-2","tags":{"building":"43","floor":"3","name":"lab"}}
{"deviceId":"b43-3","tags":{"building":"43","floor":null}}
{"deviceId":"b44-1","tags":{"building":"44","floor":1,"name":"hall"}}
)";
const char* const kExamples[] = {
    "tags.building = '43' AND (tags.floor > 2 OR IS_NULL(tags.floor)) AND LENGTH(tags.name) > 3",
    "deviceId IN ['b43-1', 'b44-1'] OR STARTSWITH(tags.name, 'la') OR NOT (tags.building NIN "
    "['44'])",
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The header comment of opcodes.def (the comment lines before the first OP line), without the
// comment markers and without the closing "OP(name, ...)" legend.
std::string HeaderComment() {
  std::istringstream in(ReadFile(kOpcodesPath));
  std::string line, out;
  while (std::getline(in, line)) {
    if (line.rfind("//", 0) != 0) break;
    std::string text = line.size() > 2 && line[2] == ' ' ? line.substr(3) : line.substr(2);
    if (text.rfind("OP(", 0) == 0) break;
    out += text + "\n";
  }
  while (out.size() >= 2 && out.ends_with("\n\n")) out.pop_back();
  return out;
}

std::string FlagNames(uint32_t flags) {
  static const std::pair<uint32_t, const char*> kNames[] = {
      {kWritesD, "writes D"}, {kIndex, "index"}, {kResidual, "residual"},
      {kJump, "jump"},        {kHalt, "halt"},
  };
  std::string out;
  for (const auto& [bit, name] : kNames) {
    if ((flags & bit) == 0) continue;
    if (!out.empty()) out += ", ";
    out += name;
    flags &= ~bit;
  }
  if (flags != 0) out += (out.empty() ? "" : ", ") + ("unknown flag " + std::to_string(flags));
  return out.empty() ? "-" : out;
}

// A markdown table cell as a code span: '|' must be escaped even inside one (GFM).
std::string CodeCell(std::string_view s) {
  std::string out = "`";
  for (char c : s) {
    if (c == '|') out += '\\';
    out += c;
  }
  return out + "`";
}

std::string Explain(const index::Snapshot& snap, const char* condition, bool optimize) {
  Source source("<condition>", condition);
  auto bound = tools::CompileCondition(source);
  EXPECT_TRUE(bound.ok()) << condition;
  if (!bound.ok()) return "";
  CompileOptions options;
  options.optimize = optimize;
  Program p = CompileFilter(bound->expr.get(), TableOf(snap, bound->collection), options);
  EXPECT_EQ(p.Verify(), "") << condition;
  return p.Explain();
}

std::string Render() {
  std::string md;
  md +=
      "<!-- Generated from engine/vm/opcodes.def by tests/unit/vm/bytecode_doc_test.cc: do not "
      "edit.\n"
      "     Regenerate: TWINQ_UPDATE_GOLDEN=1 build/tests/twinq_unit_tests "
      "--gtest_filter='BytecodeDoc.*' -->\n\n";
  md += "# The twinq bytecode\n\n";
  md +=
      "A job condition, or the WHERE of a query, compiles to a `vm::Program`\n"
      "(`engine/vm/compiler.cc`): a flat list of instructions over truth-set registers, with\n"
      "tables of constants, paths and residual expressions. `engine/vm/interpreter.cc` runs it\n"
      "with one `switch`, one `case` per opcode; `Program::Explain()` prints it (`twinq explain`,\n"
      "one line per instruction) and `Program::Verify()` checks every register, table index and\n"
      "jump. `engine/vm/opcodes.def` is the single table of opcodes: the `Op` enum, the names,\n"
      "operand shapes, flags and synopses, and this file, all come from it.\n\n";
  md += "## Registers and operands\n\n";
  md += "From the header of `engine/vm/opcodes.def`:\n\n```text\n" + HeaderComment() + "```\n\n";
  md += "## Opcodes\n\n";
  md += "| # | opcode | operands | flags | synopsis |\n|---|---|---|---|---|\n";
  for (size_t i = 0; i < OpCount(); ++i) {
    const OpInfo& info = InfoAt(i);
    md += "| " + std::to_string(i) + " | `" + info.name + "` | " + CodeCell(info.operands) + " | " +
          FlagNames(info.flags) + " | " + CodeCell(info.synopsis) + " |\n";
  }
  md +=
      "\nFlags: **writes D**, the instruction writes register D; **index**, answered from the\n"
      "index (postings, dictionaries, kind bitmaps); **residual**, evaluated row by row, in\n"
      "chunks, over candidate rows only; **jump**, may continue elsewhere than at the next\n"
      "instruction; **halt**, ends the program.\n\n";
  md += "## Examples\n\n";
  md +=
      "`Program::Explain()` of two conditions over this fleet (the compiler orders AND/OR\n"
      "operands by the index's statistics, so the programs depend on the fleet). Columns:\n"
      "address, opcode, the operands d, a, b, c, then the synopsis with the operands filled in\n"
      "and, in brackets, the access path chosen.\n\n";
  md += "```json\n" + std::string(kFleet) + "```\n\n";
  auto twins = ReadTwins(kFleet, "example fleet");
  EXPECT_TRUE(twins.ok());
  if (!twins.ok()) return md;
  index::Fleet fleet(*twins);
  index::Snapshot snap = fleet.snapshot();
  for (const char* condition : kExamples) {
    md += "`" + std::string(condition) + "`, optimised:\n\n";
    md += "```text\n" + Explain(snap, condition, true) + "```\n\n";
    md += "The same without optimisation (operands in written order, no short-circuit jumps):\n\n";
    md += "```text\n" + Explain(snap, condition, false) + "```\n\n";
  }
  while (md.ends_with("\n\n")) md.pop_back();
  return md;
}

TEST(BytecodeDoc, OpcodeTableIsWellFormed) {
  std::set<std::string> names;
  for (size_t i = 0; i < OpCount(); ++i) {
    const OpInfo& info = InfoAt(i);
    EXPECT_TRUE(names.insert(info.name).second) << "duplicate opcode " << info.name;
    EXPECT_EQ(&InfoOf(static_cast<Op>(i)), &info);
    EXPECT_STRNE(info.synopsis, "") << info.name;
    EXPECT_EQ(FlagNames(info.flags).find("unknown"), std::string::npos) << info.name;
    // An opcode that writes a register names it D first.
    if (info.flags & kWritesD) {
      EXPECT_EQ(std::string(info.operands).rfind("D", 0), 0u) << info.name;
    }
  }
  EXPECT_FALSE(HeaderComment().empty());
}

TEST(BytecodeDoc, MatchesCommittedFile) {
  std::string actual = Render();
  const char* update = std::getenv("TWINQ_UPDATE_GOLDEN");
  if (update != nullptr && std::string(update) == "1") {
    std::ofstream f(kDocPath, std::ios::binary | std::ios::trunc);
    f << actual;
    ASSERT_TRUE(f.good()) << "cannot write " << kDocPath;
    GTEST_SKIP() << "rewrote " << kDocPath;
  }
  std::string expected = ReadFile(kDocPath);
  if (actual == expected) return;
  // Point at the first differing line.
  std::istringstream a(actual), e(expected);
  std::string la, le;
  size_t line = 0;
  while (true) {
    ++line;
    bool more_a = static_cast<bool>(std::getline(a, la));
    bool more_e = static_cast<bool>(std::getline(e, le));
    if (!more_a && !more_e) break;
    if (!more_a || !more_e || la != le) {
      ADD_FAILURE() << "docs/bytecode.md:" << line << " differs from the opcode table\n"
                    << "--- committed\n"
                    << (more_e ? le : "(end of file)") << "\n--- generated\n"
                    << (more_a ? la : "(end of file)")
                    << "\n(TWINQ_UPDATE_GOLDEN=1 rewrites the file; the whole generated text "
                       "follows)\n"
                    << actual;
      return;
    }
  }
  ADD_FAILURE() << "docs/bytecode.md differs from the generated text only in line endings";
}

}  // namespace
}  // namespace twinq::vm
