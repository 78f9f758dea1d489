// Paging of query results with opaque continuation tokens: an offset bound to a fingerprint of
// the (bound) query, so a token given to another query is refused. Shared by every engine.
#ifndef TWINQ_ENGINE_COMMON_PAGING_H_
#define TWINQ_ENGINE_COMMON_PAGING_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/common/result.h"
#include "engine/common/value.h"

namespace twinq {

struct PageRequest {
  size_t page_size = 0;      // 0: everything in one page
  std::string continuation;  // empty: the first page
};

struct QueryResult {
  std::vector<Value> rows;
  std::string continuation;  // empty on the last page
};

uint64_t Fingerprint(std::string_view text);
std::string MakeContinuation(uint64_t fingerprint, size_t offset);
Expected<size_t> ReadContinuation(std::string_view token, uint64_t fingerprint);

// Cuts the requested page out of the complete result.
Expected<QueryResult> CutPage(std::vector<Value> all, uint64_t fingerprint,
                              const PageRequest& page);

}  // namespace twinq

#endif  // TWINQ_ENGINE_COMMON_PAGING_H_
