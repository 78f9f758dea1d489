// Resolve the targets of a job condition over an NDJSON fleet.
//
//   resolve_targets FLEET.ndjson 'CONDITION'
//
// Prints the number of matching twins, then their ids, one per line ("deviceId", or
// "deviceId/moduleId" for `FROM devices.modules WHERE ...`). A condition that does not compile
// prints its diagnostics (code, line:column, the source line and a caret) and exits with 2.
#include <twinq/twinq.h>

#include <cstdio>
#include <string>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s FLEET.ndjson 'CONDITION'\n", argv[0]);
    return 1;
  }

  // 1. Load the twins (NDJSON, a JSON array, or concatenated objects) into an indexed fleet.
  twinq::StatusOr<twinq::Fleet> fleet = twinq::Fleet::FromTwinsFile(argv[1]);
  if (!fleet.ok()) {
    std::fprintf(stderr, "%s\n", fleet.status().ToString().c_str());
    return 1;
  }

  // 2. Compile the condition once. A ConditionCache would make repeated compilations of the
  //    same text free; here we compile it once anyway.
  twinq::StatusOr<twinq::Condition> condition = twinq::Condition::Compile(argv[2]);
  if (!condition.ok()) {
    // kInvalidQuery: every diagnostic, rendered with its caret.
    for (const twinq::CompileDiagnostic& d : condition.status().diagnostics()) {
      std::fprintf(stderr, "%s", d.rendered.c_str());
    }
    return 2;
  }

  // 3. Evaluate it on a snapshot (an immutable version of the fleet) to a row set, and walk the
  //    ids in order (deviceId, then moduleId).
  twinq::Snapshot snapshot = fleet->snapshot();
  twinq::StatusOr<twinq::RowSet> rows = condition->Evaluate(snapshot);
  if (!rows.ok()) {
    std::fprintf(stderr, "%s\n", rows.status().ToString().c_str());
    return 1;
  }
  std::printf("%zu %s twins match\n", rows->size(),
              rows->collection() == twinq::Collection::kModules ? "module" : "device");
  twinq::Status walked = rows->ForEach([](std::string_view device_id, std::string_view module_id) {
    if (module_id.empty()) {
      std::printf("%.*s\n", static_cast<int>(device_id.size()), device_id.data());
    } else {
      std::printf("%.*s/%.*s\n", static_cast<int>(device_id.size()), device_id.data(),
                  static_cast<int>(module_id.size()), module_id.data());
    }
  });
  if (!walked.ok()) {
    std::fprintf(stderr, "%s\n", walked.ToString().c_str());
    return 1;
  }
  return 0;
}
