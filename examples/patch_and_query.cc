// Apply a twin patch and see it in the next query.
//
//   patch_and_query FLEET.ndjson DEVICE_ID
//
// Tags DEVICE_ID with ring "canary" (an IoT Hub twin patch), then shows that a snapshot taken
// before the patch does not see it and a snapshot taken after does, with a query that pages
// through the result two rows at a time.
#include <twinq/twinq.h>

#include <cstdio>
#include <string>

namespace {

// Runs the query on the snapshot page by page and prints every row.
bool PrintAll(const twinq::Query& query, const twinq::Snapshot& snapshot) {
  twinq::PageOptions page;
  page.page_size = 2;
  do {
    twinq::StatusOr<twinq::QueryPage> rows = query.Run(snapshot, page);
    if (!rows.ok()) {
      std::fprintf(stderr, "%s\n", rows.status().ToString().c_str());
      return false;
    }
    for (const std::string& row : rows->rows) std::printf("  %s\n", row.c_str());
    page.continuation = rows->continuation;  // empty after the last page
  } while (!page.continuation.empty());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s FLEET.ndjson DEVICE_ID\n", argv[0]);
    return 1;
  }
  twinq::StatusOr<twinq::Fleet> fleet = twinq::Fleet::FromTwinsFile(argv[1]);
  if (!fleet.ok()) {
    std::fprintf(stderr, "%s\n", fleet.status().ToString().c_str());
    return 1;
  }
  twinq::StatusOr<twinq::Query> canaries = twinq::Query::Compile(
      "SELECT deviceId, tags.ring AS ring FROM devices "
      "WHERE tags.ring = 'canary'");
  if (!canaries.ok()) {
    std::fprintf(stderr, "%s\n", canaries.status().ToString().c_str());
    return 2;
  }

  twinq::Snapshot before = fleet->snapshot();

  // The patch: only the members given change; "*" as If-Match forces the update. The new
  // version is published atomically; readers holding older snapshots are not disturbed.
  twinq::StatusOr<uint64_t> version =
      fleet->Patch(argv[2], /*module_id=*/"", R"({"tags":{"ring":"canary"}})", "*");
  if (!version.ok()) {
    std::fprintf(stderr, "patch failed: %s\n", version.status().ToString().c_str());
    return 1;
  }

  twinq::Snapshot after = fleet->snapshot();
  std::printf("before the patch (version %llu):\n",
              static_cast<unsigned long long>(before.version()));
  if (!PrintAll(*canaries, before)) return 1;
  std::printf("after the patch (version %llu):\n",
              static_cast<unsigned long long>(after.version()));
  if (!PrintAll(*canaries, after)) return 1;
  return 0;
}
