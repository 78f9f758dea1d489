// The function registry: name, arity, argument rules, result, dialect, and the reference
// implementation over Values (DESIGN.md decision 7). Wrong argument types give undefined.
#ifndef TWINQ_ENGINE_CHECK_FUNCTIONS_H_
#define TWINQ_ENGINE_CHECK_FUNCTIONS_H_

#include <span>
#include <string_view>
#include <vector>

#include "engine/common/value.h"

namespace twinq::check {

enum class StaticType : uint8_t {
  kAny,
  kBool,
  kNumber,
  kString,
  kArray,
  kObject,
  kNull,
  kUndefined
};
const char* StaticTypeName(StaticType t);

enum class FunctionId : uint8_t {
  kIsDefined,
  kIsNull,
  kIsBool,
  kIsNumber,
  kIsString,
  kIsObject,
  kIsArray,
  kIsPrimitive,
  kStartsWith,
  kEndsWith,
  kContains,
  kLower,
  kUpper,
  kLength,
  kConcat,
  kSubstring,
  kIndexOf,
  kAsNumber,
  kAbs,
  kCeiling,
  kFloor,
  kSign,
  kSqrt,
  kSquare,
  kPower,
  kExp,
  kArrayContains,
  kArrayLength,
  kCount,
  kAvg,
  kSum,
  kMin,
  kMax,  // aggregates
};

struct FunctionInfo {
  FunctionId id;
  std::string_view name;       // canonical upper-case spelling
  std::string_view signature;  // for messages and docs: "STARTSWITH(string, prefix)"
  size_t min_args;
  size_t max_args;  // SIZE_MAX: variadic
  StaticType result;
  bool twin_dialect;  // accepted by the strict (IoT Hub twin query) dialect
  bool aggregate;
  std::string_view summary;  // one line for docs and .help
};

// Case-insensitive lookup; nullptr when unknown.
const FunctionInfo* FindFunction(std::string_view name);
const std::vector<FunctionInfo>& AllFunctions();

// The reference implementation of a scalar function. Arity has been checked by the binder.
Value CallFunction(FunctionId id, std::span<const Value> args);

}  // namespace twinq::check

#endif  // TWINQ_ENGINE_CHECK_FUNCTIONS_H_
