// twinq public API: job conditions (the queryCondition of IoT Hub jobs), compiled once and
// evaluated on any number of snapshots, and a cache of compiled conditions keyed by their text.
//
// A condition is `*`, a bare expression (`tags.building = '43' AND tags.floor >= 2`), or
// `FROM devices.modules WHERE expr` (module targets). Compile parses, binds and checks the text;
// errors come back as kInvalidQuery with positioned diagnostics. The VM program is built on the
// first evaluation (from the index statistics of that snapshot) and reused afterwards: a program
// is correct on every version of every fleet; it is rebuilt only when the table it runs on has
// grown or shrunk by more than 2x since, so that its term order follows the data.
//
// Thread safety:
//   Condition       immutable after Compile (its program slot is internally synchronised);
//                   one Condition may be evaluated from many threads at once. Copies share it.
//   ConditionCache  every member is thread-safe.
#ifndef TWINQ_CONDITION_H_
#define TWINQ_CONDITION_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "twinq/fleet.h"
#include "twinq/status.h"

namespace twinq {

struct CompileOptions {
  // Accept only what real IoT Hub twin queries accept (rejects ARRAY_CONTAINS, ...).
  bool strict = false;
};

namespace api_internal {
struct ConditionImpl;
struct CacheImpl;
}  // namespace api_internal

class Condition {
 public:
  // kInvalidQuery with diagnostics when the text is not a valid condition (a full SELECT is
  // refused with E114: use Query).
  static StatusOr<Condition> Compile(std::string_view text, const CompileOptions& options = {});

  const std::string& text() const;
  Collection collection() const;  // kDevices or kModules
  bool selects_all() const;       // `*`

  // The rows of the snapshot the condition selects (true under three-valued logic).
  StatusOr<RowSet> Evaluate(const Snapshot& snapshot) const;
  // Evaluate, then the ids in order ("deviceId", or "deviceId/moduleId").
  StatusOr<std::vector<std::string>> TargetIds(const Snapshot& snapshot) const;

  // EXPLAIN: the VM program (compiled for this snapshot), one instruction per line.
  StatusOr<std::string> Explain(const Snapshot& snapshot) const;
  // PLAN: access path, estimated and actual rows per step, run on this snapshot.
  StatusOr<std::string> Plan(const Snapshot& snapshot) const;
  // The bound (checked, folded) form, as the golden tests print it.
  std::string BoundText() const;

 private:
  friend class ConditionCache;
  explicit Condition(std::shared_ptr<const api_internal::ConditionImpl> impl);
  std::shared_ptr<const api_internal::ConditionImpl> impl_;
};

// Compiled conditions by (text, options), least recently used evicted beyond `capacity`. A hit
// returns the same compiled Condition (and its program) without parsing. Texts that do not
// compile are not cached (each Get returns their diagnostics again).
class ConditionCache {
 public:
  explicit ConditionCache(size_t capacity = 1024);
  ~ConditionCache();
  ConditionCache(const ConditionCache&) = delete;
  ConditionCache& operator=(const ConditionCache&) = delete;

  StatusOr<Condition> Get(std::string_view text, const CompileOptions& options = {});

  struct Stats {
    uint64_t hits = 0;
    uint64_t misses = 0;  // compilations, failed ones included
    uint64_t evictions = 0;
    size_t size = 0;
    size_t capacity = 0;
  };
  Stats stats() const;
  void Clear();  // drops every entry (counters are kept)

 private:
  std::unique_ptr<api_internal::CacheImpl> impl_;
};

}  // namespace twinq

#endif  // TWINQ_CONDITION_H_
