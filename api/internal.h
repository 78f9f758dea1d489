// The implementation side of the public API (include/twinq): the Impl structs behind the
// handles, and conversions between the engine's types and the public ones. Never installed.
#ifndef TWINQ_API_INTERNAL_H_
#define TWINQ_API_INTERNAL_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <string_view>

#include "engine/check/bound.h"
#include "engine/common/result.h"
#include "engine/common/source.h"
#include "engine/vm/program.h"
#include "index/bitmap.h"
#include "index/fleet.h"
#include "twinq/condition.h"
#include "twinq/fleet.h"
#include "twinq/query.h"
#include "twinq/status.h"

namespace twinq::api_internal {

struct FleetImpl {
  std::unique_ptr<index::Fleet> fleet;
};

struct SnapshotImpl {
  index::Snapshot snapshot;
};

struct RowSetImpl {
  std::shared_ptr<const SnapshotImpl> snapshot;
  check::Collection collection = check::Collection::kDevices;
  index::Bitmap rows;
};

struct ConditionImpl {
  std::string text;
  CompileOptions options;
  std::shared_ptr<const check::BoundCondition> bound;

  // The VM program, built on first use (see condition.h).
  struct Compiled {
    vm::Program program;
    uint64_t rows_at_compile = 0;
  };
  std::shared_ptr<const Compiled> ProgramFor(const index::Table& table) const;

 private:
  mutable std::mutex mu_;
  mutable std::shared_ptr<const Compiled> compiled_;
};

// The engine's collection and the public one.
Collection ToPublic(check::Collection c);

// The kInvalidQuery status of diagnostics over `source`.
Status FromDiagnostics(const Diagnostics& diags, const Source& source);
// A Status from an engine Error, with the code guessed from the message's service prefix
// ("JobNotFound:", "PreconditionFailed:", ...) or `fallback`.
Status FromError(const Error& error, ErrorCode fallback);

// Runs `f` (returning a StatusOr or Status), turning any exception into an error value.
template <class F>
auto Guard(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return Status(ErrorCode::kResourceExhausted, "out of memory");
  } catch (const std::exception& e) {
    return Status(ErrorCode::kInternal, std::string("internal error: ") + e.what());
  } catch (...) {
    return Status(ErrorCode::kInternal, "internal error: unknown exception");
  }
}

}  // namespace twinq::api_internal

#endif  // TWINQ_API_INTERNAL_H_
