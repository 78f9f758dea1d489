// The compiler: bound IR to a Program, using the index's statistics. Comparisons of a path with
// a constant, IN lists, IS_* tests, STARTSWITH/ENDSWITH/CONTAINS with a constant and deviceId
// lookups become index operations; everything else is a residual expression evaluated in chunks
// over the rows an AND or OR has not decided yet. AND/OR operands are ordered by estimated
// selectivity and short-circuit when no row is left undecided.
#ifndef TWINQ_ENGINE_VM_COMPILER_H_
#define TWINQ_ENGINE_VM_COMPILER_H_

#include "engine/check/bound.h"
#include "engine/vm/program.h"
#include "index/table.h"

namespace twinq::vm {

struct CompileOptions {
  // Order AND/OR operands by estimated selectivity and emit short-circuit jumps. Off: operands
  // in written order, no jumps (the "vm-noopt" engine configuration).
  bool optimize = true;
};

// Compiles a WHERE expression (null: every twin) for the given table (used for statistics only;
// the program may run on any version of it).
Program CompileFilter(const check::BoundExpr* where, const index::Table& table,
                      const CompileOptions& options = {});

}  // namespace twinq::vm

#endif  // TWINQ_ENGINE_VM_COMPILER_H_
