// twinq public API: full queries (SELECT ... FROM devices | devices.modules [WHERE ...]
// [GROUP BY ...]) over a snapshot, with paging by opaque continuation tokens.
//
// Rows are compact JSON objects, in the stable order (deviceId, then moduleId; groups in order
// of their first row). A continuation token is bound to the query: given to another query it is
// refused (kInvalidArgument). Tokens are offsets: a page read from a later snapshot continues at
// the same position of the new result.
//
// Thread safety: Query is immutable after Compile; run one Query from many threads at once.
// Copies share it. QueryPage and PageOptions are plain values.
#ifndef TWINQ_QUERY_H_
#define TWINQ_QUERY_H_

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "twinq/condition.h"
#include "twinq/fleet.h"
#include "twinq/status.h"

namespace twinq {

struct PageOptions {
  size_t page_size = 0;      // 0: every row in one page
  std::string continuation;  // empty: the first page
};

struct QueryPage {
  std::vector<std::string> rows;  // one compact JSON object per row
  std::string continuation;       // empty on the last page
};

namespace api_internal {
struct QueryImpl;
}

class Query {
 public:
  // kInvalidQuery with diagnostics when the text is not a valid query.
  static StatusOr<Query> Compile(std::string_view text, const CompileOptions& options = {});

  const std::string& text() const;
  Collection collection() const;

  // One page of the result over the snapshot. devices.jobs holds no rows in a fleet: query it
  // with JobScheduler::QueryDeviceJobs.
  StatusOr<QueryPage> Run(const Snapshot& snapshot, const PageOptions& page = {}) const;
  // EXPLAIN / PLAN of the WHERE clause (every twin when there is none).
  StatusOr<std::string> Explain(const Snapshot& snapshot) const;
  StatusOr<std::string> Plan(const Snapshot& snapshot) const;

 private:
  explicit Query(std::shared_ptr<const api_internal::QueryImpl> impl);
  std::shared_ptr<const api_internal::QueryImpl> impl_;
};

}  // namespace twinq

#endif  // TWINQ_QUERY_H_
