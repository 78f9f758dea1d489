// Hard limits of the front end. Each one has its own diagnostic code (diagnostic.h) and a test.
#ifndef TWINQ_ENGINE_COMMON_LIMITS_H_
#define TWINQ_ENGINE_COMMON_LIMITS_H_

#include <cstddef>

namespace twinq::limits {

// Query or condition text, in bytes (IoT Hub's documented limit). E120.
inline constexpr size_t kMaxQueryBytes = 8192;
// Nesting of parentheses, brackets and prefix operators seen by the parser. E121.
inline constexpr size_t kMaxNesting = 100;
// Depth of the AST after n-ary AND/OR flattening (e.g. long a+b+c+... chains). E122.
inline constexpr size_t kMaxAstDepth = 256;
// Elements of one array literal (IN lists included). E123.
inline constexpr size_t kMaxArrayElements = 2048;
// Diagnostics reported by one parse before giving up. E124 notes the cut.
inline constexpr size_t kMaxDiagnostics = 10;

}  // namespace twinq::limits

#endif  // TWINQ_ENGINE_COMMON_LIMITS_H_
