// How the VM reads a path from the index: the candidate columns of a query path (its case
// variants) and, when there are several, the rows each candidate serves under DESIGN.md
// decision 2 (exact spelling first, then byte order, chosen level by level).
#ifndef TWINQ_ENGINE_VM_ACCESS_H_
#define TWINQ_ENGINE_VM_ACCESS_H_

#include <memory>
#include <string_view>
#include <vector>

#include "engine/check/bound.h"
#include "engine/common/value.h"
#include "index/table.h"

namespace twinq::vm {

struct Candidate {
  const index::Column* column = nullptr;
  std::shared_ptr<const index::Column> owner;  // the same column (keys the VM's column caches)
  // Rows whose value at the query path comes from this column. `whole` means all of the
  // column's present rows (the common case of a single candidate).
  bool whole = true;
  index::Bitmap rows;
};

struct ResolvedPath {
  std::vector<Candidate> candidates;  // empty: undefined in every row
  // The rows of candidate `c` that hold kind mask `kinds`.
  index::Bitmap RowsOfKinds(size_t c, uint32_t kinds) const;
};

ResolvedPath Resolve(const index::Table& table, const std::vector<check::PathStep>& path);

// The value of a resolved path in one row: primitives from the column, arrays and objects from
// the stored document (parsed on demand into `*doc_cache` when not yet). `spelling` (optional)
// receives the stored key of the last step.
Value ValueAt(const index::Table& table, const ResolvedPath& path,
              const std::vector<check::PathStep>& steps, uint32_t row, Value* doc_cache,
              std::string_view* spelling = nullptr);

inline uint32_t KindBit(index::Kind k) { return 1u << static_cast<uint32_t>(k); }
inline constexpr uint32_t kAllKinds = 0x7F;

}  // namespace twinq::vm

#endif  // TWINQ_ENGINE_VM_ACCESS_H_
