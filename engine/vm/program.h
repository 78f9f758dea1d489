// A compiled program: flat instructions over truth-set registers, with the tables they refer to
// (constants, paths, IN lists, residual expressions). Explain() prints one line per instruction
// with its synopsis filled in; Verify() checks every register, table index and jump.
#ifndef TWINQ_ENGINE_VM_PROGRAM_H_
#define TWINQ_ENGINE_VM_PROGRAM_H_

#include <cstdint>
#include <string>
#include <vector>

#include "engine/ast/ast.h"
#include "engine/check/bound.h"
#include "engine/common/value.h"

namespace twinq::vm {

enum class Op : uint8_t {
#define OP(name, operands, flags, synopsis) k##name,
#include "engine/vm/opcodes.def"
#undef OP
};

enum OpFlags : uint32_t {
  kWritesD = 1,
  kIndex = 2,     // answered from the index (postings, dictionaries, bitmaps)
  kResidual = 4,  // evaluated over candidate rows
  kJump = 8,
  kHalt = 16,
};

struct OpInfo {
  const char* name;
  const char* operands;
  uint32_t flags;
  const char* synopsis;
};
const OpInfo& InfoOf(Op op);
size_t OpCount();
const OpInfo& InfoAt(size_t index);

struct Instruction {
  Op op = Op::kResult;
  uint32_t d = 0;                 // destination register
  uint32_t a = 0;                 // first operand (register, path, ...)
  uint32_t b = 0;                 // second operand
  uint32_t c = 0;                 // third operand
  ast::Op cmp = ast::Op::kNone;   // Compare / IdLookup; NumberRange: lower end (> or >=)
  ast::Op cmp2 = ast::Op::kNone;  // NumberRange: upper end (< or <=)
  double estimate = -1;           // estimated true rows (PLAN)
  std::string note;               // the access path chosen (PLAN)
};

struct Program {
  std::vector<Instruction> code;
  std::vector<Value> constants;
  std::vector<std::vector<check::PathStep>> paths;
  std::vector<const check::BoundExpr*> residuals;  // owned by the bound IR the program came from
  uint32_t registers = 0;
  bool modules = false;  // runs over the module table

  // One line per instruction: addr, opcode, operands, synopsis with values filled in.
  std::string Explain() const;
  // The operand columns and the filled-in synopsis of one instruction.
  struct Line {
    std::string d, a, b, c, comment;
  };
  Line Describe(size_t i) const;
  // Empty when the program is well formed; otherwise what is wrong.
  std::string Verify() const;
};

}  // namespace twinq::vm

#endif  // TWINQ_ENGINE_VM_PROGRAM_H_
