// Runs a Program over one table of an index Snapshot. A register is a truth set (true rows,
// false rows); this is the one place where the VM's three-valued logic lives.
#ifndef TWINQ_ENGINE_VM_INTERPRETER_H_
#define TWINQ_ENGINE_VM_INTERPRETER_H_

#include <cstdint>
#include <vector>

#include "engine/vm/program.h"
#include "index/bitmap.h"
#include "index/table.h"

namespace twinq::vm {

struct TruthSet {
  index::Bitmap t;  // rows where the predicate is true
  index::Bitmap f;  // rows where it is false; all other live rows: undefined
};

struct Trace {
  std::vector<int64_t> true_rows;  // per instruction: |T| of its destination (-1: not run)
};

// The true rows of the program's result. `trace` (optional) records per-instruction counts.
index::Bitmap Run(const Program& program, const index::Table& table, Trace* trace = nullptr);

// Evaluates a boolean expression over `rows` of `table`, in chunks, vector at a time, with the
// language's exact semantics: the residual part of a program.
TruthSet EvaluateResidual(const check::BoundExpr& expr, const index::Table& table,
                          const index::Bitmap& rows);
// The same, and `by_value`: an expression of at most one path may be evaluated once per
// distinct value of the path (the postings of the values where it is true or false are OR-ed)
// instead of row by row; `need_f`: false rows wanted (else left empty).
TruthSet EvaluateResidual(const check::BoundExpr& expr, const index::Table& table,
                          const index::Bitmap& rows, bool by_value, bool need_f);

}  // namespace twinq::vm

#endif  // TWINQ_ENGINE_VM_INTERPRETER_H_
