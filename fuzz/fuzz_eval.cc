// fuzz_eval: arbitrary text compiled as a query and as a job condition, then evaluated over a
// small fixed fleet with the reference engine, with constant folding on and off. The two must
// agree (folding is an optimisation, never a change of meaning); nothing may crash or leak.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "engine/common/json_reader.h"
#include "engine/ref/query.h"
#include "tools/frontend.h"

namespace {

// Every JSON type, missing and case-variant keys, arrays, nulls, modules.
constexpr std::string_view kFleet = R"(
{"deviceId":"a","tags":{"building":"43","floor":3,"Floor":"x","roles":["s","g"],"n":null,"o":{"k":1}},"properties":{"reported":{"battery":55.5,"on":true,"$metadata":{"$lastUpdated":"2026-01-01"}}}}
{"deviceId":"b","tags":{"building":43,"floor":"3","group":{"name":"g1"}},"properties":{"reported":{"battery":-1,"on":false}}}
{"deviceId":"c","tags":{"building":"44","list":[1,[2,3],{"a":"b"}],"e":""},"status":"disabled"}
{"deviceId":"d","capabilities":{"iotEdge":true},"tags":{"x":1e300,"y":0,"z":-0.0,"s":"ÄbC"}}
{"deviceId":"a","moduleId":"m1","properties":{"reported":{"status":"scanning"}}}
{"deviceId":"a","moduleId":"$edgeAgent","properties":{"reported":{"status":"running"}}}
)";

const twinq::TwinSet& Fleet() {
  static const twinq::TwinSet* fleet = [] {
    auto r = twinq::ReadTwins(kFleet, "fuzz fleet");
    if (!r.ok()) {
      std::fprintf(stderr, "fuzz fleet: %s\n", r.error().message.c_str());
      std::abort();
    }
    return new twinq::TwinSet(std::move(r.value()));
  }();
  return *fleet;
}

std::string Rows(const std::vector<twinq::Value>& rows) {
  std::string out;
  for (const twinq::Value& v : rows) out += twinq::ToJson(v) + "\n";
  return out;
}

void Mismatch(std::string_view text, const std::string& folded, const std::string& plain) {
  std::fprintf(stderr, "fold/nofold mismatch for: %.*s\n--- folded\n%s--- not folded\n%s",
               static_cast<int>(text.size()), text.data(), folded.c_str(), plain.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  const twinq::TwinSet& fleet = Fleet();
  twinq::ref::Documents docs{fleet.devices, fleet.modules, {}};
  twinq::check::BindOptions fold, nofold;
  nofold.fold = false;
  twinq::Source source("<fuzz>", text);

  auto q1 = twinq::tools::CompileQuery(source, fold);
  auto q2 = twinq::tools::CompileQuery(source, nofold);
  if (q1.ok() != q2.ok())
    Mismatch(text, q1.ok() ? "compiled" : "failed", q2.ok() ? "compiled" : "failed");
  if (q1.ok()) {
    std::string a = Rows(twinq::ref::AllRows(*q1, docs));
    std::string b = Rows(twinq::ref::AllRows(*q2, docs));
    if (a != b) Mismatch(text, a, b);
    (void)twinq::check::Print(*q1);
    twinq::PageRequest page{1, ""};
    for (int i = 0; i < 8; ++i) {  // walk a few pages
      auto r = twinq::ref::RunQuery(*q1, docs, page);
      if (!r.ok() || r->continuation.empty()) break;
      page.continuation = r->continuation;
    }
  }

  auto c1 = twinq::tools::CompileCondition(source, fold);
  auto c2 = twinq::tools::CompileCondition(source, nofold);
  if (c1.ok() != c2.ok())
    Mismatch(text, c1.ok() ? "compiled" : "failed", c2.ok() ? "compiled" : "failed");
  if (c1.ok()) {
    std::string a, b;
    for (const std::string& id : twinq::ref::TargetIds(*c1, docs)) a += id + "\n";
    for (const std::string& id : twinq::ref::TargetIds(*c2, docs)) b += id + "\n";
    if (a != b) Mismatch(text, a, b);
    (void)twinq::check::Print(*c1);
  }
  return 0;
}
