// Reference execution of whole queries and job conditions over JSON documents: filtering,
// SELECT *, projections, aggregates, GROUP BY, TOP and paging (docs/language.md, "Results").
#ifndef TWINQ_ENGINE_REF_QUERY_H_
#define TWINQ_ENGINE_REF_QUERY_H_

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "engine/check/bound.h"
#include "engine/common/paging.h"
#include "engine/common/result.h"
#include "engine/common/value.h"

namespace twinq::ref {

// The documents of each collection, each sorted by deviceId (then moduleId).
struct Documents {
  std::span<const Value> devices;
  std::span<const Value> modules;
  std::span<const Value> jobs;  // device-job records (devices.jobs)

  std::span<const Value> Of(check::Collection c) const {
    return c == check::Collection::kDevices   ? devices
           : c == check::Collection::kModules ? modules
                                              : jobs;
  }
};

// Indexes (into docs.Of(condition.collection)) of the documents a condition selects, in
// document order.
std::vector<size_t> SelectRows(const check::BoundCondition& condition, const Documents& docs);

// The target ids of a condition: "deviceId" for device twins, "deviceId/moduleId" for module
// twins, ordered by deviceId then moduleId.
std::vector<std::string> TargetIds(const check::BoundCondition& condition, const Documents& docs);

// Runs a query. All result rows are computed (in stable order: deviceId, then moduleId; groups
// in order of their first document), TOP applied, then the requested page cut out. A
// continuation token is opaque; a token from another query or a malformed one is an Error.
Expected<QueryResult> RunQuery(const check::BoundQuery& query, const Documents& docs,
                               const PageRequest& page = {});

// The complete result without paging.
std::vector<Value> AllRows(const check::BoundQuery& query, const Documents& docs);

}  // namespace twinq::ref

#endif  // TWINQ_ENGINE_REF_QUERY_H_
