// Whole queries and job conditions on the VM, over an index Snapshot: the filter runs as a
// Program; projections, aggregates and GROUP BY read columns; SELECT * rows come from the twin
// store. Results, order and paging are those of the reference engine (engine/ref).
#ifndef TWINQ_ENGINE_VM_QUERY_H_
#define TWINQ_ENGINE_VM_QUERY_H_

#include <string>
#include <vector>

#include "engine/check/bound.h"
#include "engine/common/paging.h"
#include "engine/vm/compiler.h"
#include "engine/vm/program.h"
#include "index/fleet.h"

namespace twinq::vm {

const index::Table& TableOf(const index::Snapshot& snapshot, check::Collection c);

// The rows a condition selects (an Error for devices.jobs, which the index does not hold).
index::Bitmap SelectRows(const check::BoundCondition& condition, const index::Snapshot& snapshot,
                         const CompileOptions& options = {});
// Target ids in order: deviceId, or deviceId/moduleId for module twins.
std::vector<std::string> TargetIds(const check::BoundCondition& condition,
                                   const index::Snapshot& snapshot,
                                   const CompileOptions& options = {});

std::vector<Value> AllRows(const check::BoundQuery& query, const index::Snapshot& snapshot,
                           const CompileOptions& options = {});
Expected<QueryResult> RunQuery(const check::BoundQuery& query, const index::Snapshot& snapshot,
                               const PageRequest& page = {}, const CompileOptions& options = {});

// EXPLAIN: the program of a condition or of a query's WHERE, one instruction per line.
std::string Explain(const Program& program);
// PLAN: the decisions (access path per term, estimated and actual rows).
std::string Plan(const Program& program, const index::Table& table);

}  // namespace twinq::vm

#endif  // TWINQ_ENGINE_VM_QUERY_H_
