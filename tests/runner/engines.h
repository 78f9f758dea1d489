// The engine configurations every .test record runs under. Results must be identical across
// engines; a difference is a failure that names the engine.
#ifndef TWINQ_TESTS_RUNNER_ENGINES_H_
#define TWINQ_TESTS_RUNNER_ENGINES_H_

#include <memory>
#include <string>
#include <vector>

#include "engine/common/json_reader.h"

namespace twinq::testing {

// What a record produced: result lines, or diagnostics rendered short ("E100 1:5: message").
struct Outcome {
  std::vector<std::string> lines;
  std::vector<std::string> diagnostics;
  std::string error;  // data errors (bad continuation token, ...)
};

class Engine {
 public:
  virtual ~Engine() = default;
  virtual std::string name() const = 0;
  virtual void Load(const TwinSet& twins) = 0;
  // Target ids of a condition, in order.
  virtual Outcome Targets(const std::string& condition, bool strict) = 0;
  // Query rows as compact JSON, pages separated by "-- page" when page_size > 0.
  virtual Outcome Query(const std::string& query, bool strict, size_t page_size) = 0;
};

// "ref" (constant folding on) and "ref-nofold" (folding off).
std::vector<std::unique_ptr<Engine>> MakeEngines(const std::vector<std::string>& names);
std::vector<std::string> AllEngineNames();

}  // namespace twinq::testing

#endif  // TWINQ_TESTS_RUNNER_ENGINES_H_
