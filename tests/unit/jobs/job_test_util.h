// Shared fixtures of the job tests: a small fleet and a fake clock.
#ifndef TWINQ_TESTS_UNIT_JOBS_JOB_TEST_UTIL_H_
#define TWINQ_TESTS_UNIT_JOBS_JOB_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "engine/vm/query.h"
#include "index/fleet.h"
#include "jobs/clock.h"
#include "tools/frontend.h"

namespace twinq::jobs::testing {

// 2026-01-01T00:00:00Z.
inline int64_t T0() {
  int64_t t = 0;
  std::string why;
  EXPECT_TRUE(ParseTime("2026-01-01T00:00:00Z", &t, &why)) << why;
  return t;
}

inline std::string At(int64_t seconds_after_t0) {
  return FormatTime(T0() + seconds_after_t0 * kTicksPerSecond);
}

// dev-00 ... dev-(n-1): tags.building '43' on even devices, '44' on odd, tags.floor = i; dev-00
// and dev-01 are edge devices with modules $edgeAgent and filter.
inline void LoadFleet(index::Fleet* fleet, int n = 10) {
  std::string text;
  for (int i = 0; i < n; ++i) {
    char id[16];
    std::snprintf(id, sizeof id, "dev-%02d", i);
    text += std::string("{\"deviceId\":\"") + id +
            "\",\"etag\":\"AAAAAAAAAAE=\",\"version\":1,\"tags\":{\"building\":\"" +
            (i % 2 == 0 ? "43" : "44") + "\",\"floor\":" + std::to_string(i) +
            "},\"properties\":{\"desired\":{\"$metadata\":{},\"$version\":1},"
            "\"reported\":{\"$metadata\":{},\"$version\":1}}}\n";
    if (i < 2) {
      for (const char* m : {"$edgeAgent", "filter"}) {
        text += std::string("{\"deviceId\":\"") + id + "\",\"moduleId\":\"" + m +
                "\",\"etag\":\"AAAAAAAAAAE=\",\"version\":1,\"properties\":{\"desired\":{"
                "\"$metadata\":{},\"$version\":1},\"reported\":{\"$metadata\":{},\"$version\":"
                "1}}}\n";
      }
    }
  }
  Expected<size_t> loaded = fleet->LoadTwinsText(text, "<test fleet>");
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
}

inline std::vector<std::string> Targets(const index::Fleet& fleet, const std::string& cond) {
  Source source("<test>", cond);
  auto bound = tools::CompileCondition(source);
  EXPECT_TRUE(bound.ok());
  if (!bound.ok()) return {};
  return vm::TargetIds(*bound, fleet.snapshot());
}

}  // namespace twinq::jobs::testing

#endif  // TWINQ_TESTS_UNIT_JOBS_JOB_TEST_UTIL_H_
