// fuzz_index: the index file reader (Fleet::Deserialize, the code Fleet::Open runs) on any
// payload.
//
// Input: the first byte picks the format version (1, 2 or 3); the rest is the payload, sealed
// with a valid length and checksum (SealIndexPayload), so the fuzzer gets past the checksum to
// the structure checks behind it. Checks:
//  - no input crashes, leaks or reads out of bounds: it is refused with an error that names the
//    input, or accepted;
//  - an accepted fleet can be used: every column value and document of every row is read, a batch
//    of patches, an upsert and a delete are applied;
//  - it is written back as a file that reads again and writes the very same bytes (Serialize is a
//    fixed point after one round), and whose tables hold the same rows and columns.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "engine/common/json_reader.h"
#include "index/fleet.h"

namespace {

using twinq::index::Fleet;
using twinq::index::Snapshot;

[[noreturn]] void Fail(const char* what) {
  std::fprintf(stderr, "fuzz_index: %s\n", what);
  std::abort();
}

void Use(Fleet& fleet) {
  Snapshot s = fleet.snapshot();
  for (const twinq::index::Table* t : {&s.devices(), &s.modules()}) {
    for (uint32_t row : t->order()) {
      for (const auto& c : t->columns()) c->ValueAt(row);
      t->Document(row);
      if (!t->FindRow(t->device_id(row), t->module_id(row))) Fail("a live row is not found");
    }
  }
  std::vector<twinq::index::Mutation> batch;
  auto patch = twinq::ParseJson(R"({"tags":{"floor":7,"s":"z","n":null}})", "patch");
  for (uint32_t row : s.devices().order()) {
    twinq::index::Mutation m;
    m.kind = twinq::index::Mutation::Kind::kPatch;
    m.device_id = std::string(s.devices().device_id(row));
    m.patch = *patch;
    batch.push_back(std::move(m));
    if (batch.size() == 8) break;
  }
  auto doc = twinq::ParseJson(R"({"deviceId":"fuzz-new","tags":{"s":"q"}})", "doc");
  twinq::index::Mutation up;
  up.kind = twinq::index::Mutation::Kind::kUpsert;
  up.doc = *doc;
  batch.push_back(std::move(up));
  (void)fleet.Apply(batch, "2026-11-27T00:00:00.0000000Z");
  if (!s.devices().order().empty()) {
    (void)fleet.Delete(std::string(s.devices().device_id(s.devices().order().back())));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  uint32_t version = 1 + data[0] % 3;
  std::string_view payload(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string file = twinq::index::SealIndexPayload(payload, version);
  auto fleet = Fleet::Deserialize(file, "fuzz");
  if (!fleet.ok()) {
    if (fleet.error().message.rfind("fuzz: ", 0) != 0)
      Fail("an error that does not name the input");
    return 0;
  }
  std::string once = (*fleet)->Serialize();
  auto again = Fleet::Deserialize(once, "round trip");
  if (!again.ok()) Fail("a fleet that was read does not read back after Serialize");
  if ((*again)->Serialize() != once) Fail("Serialize is not a fixed point after one round");
  Snapshot a = (*fleet)->snapshot(), b = (*again)->snapshot();
  if (a.devices().order() != b.devices().order() || a.modules().order() != b.modules().order() ||
      a.devices().columns().size() != b.devices().columns().size() ||
      a.modules().columns().size() != b.modules().columns().size()) {
    Fail("the round trip changed the tables");
  }
  Use(**fleet);
  (*fleet)->Serialize();
  return 0;
}
