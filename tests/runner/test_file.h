// The data-driven test format of tests/queries/*.test (sqllogictest style). See
// tests/queries/README.md for the full description.
#ifndef TWINQ_TESTS_RUNNER_TEST_FILE_H_
#define TWINQ_TESTS_RUNNER_TEST_FILE_H_

#include <string>
#include <vector>

namespace twinq::testing {

struct Record {
  enum class Kind {
    kFleet,           // fleet [FILE]: inline documents (body) or tests/data/FILE
    kMode,            // mode strict|default
    kTargets,         // targets CONDITION: expected ids, one per line
    kCount,           // count CONDITION: expected number of targets
    kQuery,           // query QUERY: expected rows as compact JSON, one per line
    kQueryPaged,      // query-paged N QUERY: pages separated by "-- page"
    kError,           // error QUERY: expected diagnostics
    kErrorCondition,  // error-condition CONDITION: expected diagnostics
  };
  Kind kind = Kind::kQuery;
  size_t line = 0;                // 1-based line of the directive
  std::string arg;                // text after the directive
  size_t page_size = 0;           // kQueryPaged
  std::vector<std::string> body;  // kFleet: documents; others: expected lines after ----
};

struct TestFile {
  std::string path;
  std::vector<Record> records;
};

// Parses a .test file. On a format error returns false with `*error` as "path:line: message".
bool ParseTestFile(const std::string& path, const std::string& text, TestFile* out,
                   std::string* error);

}  // namespace twinq::testing

#endif  // TWINQ_TESTS_RUNNER_TEST_FILE_H_
