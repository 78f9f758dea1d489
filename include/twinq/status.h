// twinq public API: errors as values.
//
// Every fallible call of the public API returns a Status or a StatusOr<T>; no exception crosses
// the API boundary (the library catches what its internals may throw, such as std::bad_alloc,
// and returns it as an error). A Status carries an ErrorCode, a one-line message and, for text
// that did not compile, the positioned diagnostics (code, line:column, message, caret rendering).
//
// Thread safety: Status, StatusOr and CompileDiagnostic are plain values; distinct objects may be
// used from distinct threads, and const access to one object from several threads is safe.
#ifndef TWINQ_STATUS_H_
#define TWINQ_STATUS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace twinq {

// What went wrong, coarse-grained; the message says the rest.
enum class ErrorCode : uint8_t {
  kOk = 0,
  kInvalidQuery,        // condition or query text did not compile: see Status::diagnostics()
  kInvalidArgument,     // a bad argument: malformed JSON, an invalid job request, ...
  kIoError,             // a file could not be read or written, or its contents are malformed
  kNotFound,            // no such twin or job
  kAlreadyExists,       // a job with this id exists
  kFailedPrecondition,  // an etag did not match; the job is already finished; ...
  kResourceExhausted,   // too many active jobs; out of memory
  kInternal,            // a bug in twinq (please report it)
};

// "ok", "invalid_query", "invalid_argument", "io_error", "not_found", "already_exists",
// "failed_precondition", "resource_exhausted", "internal".
std::string_view ErrorCodeName(ErrorCode code);

// One diagnostic of text that did not compile. Codes are stable (docs/language.md lists them).
struct CompileDiagnostic {
  std::string code;       // "E200"
  int number = 0;         // 200
  std::string message;    // "unknown function 'STARTWITH'; did you mean 'STARTSWITH'?"
  uint32_t line = 1;      // 1-based position of the first character of the range
  uint32_t column = 1;    // 1-based, in Unicode code points
  uint32_t end_line = 1;  // position just past the range
  uint32_t end_column = 1;
  uint32_t offset = 0;  // byte range [offset, offset + length) in the text
  uint32_t length = 0;
  // The full rendering, newline-terminated:
  //   error[E200] <condition>:1:1: unknown function 'STARTWITH'; did you mean 'STARTSWITH'?
  //    | STARTWITH(deviceId, 'dev-00')
  //    | ^~~~~~~~~
  std::string rendered;
};

class [[nodiscard]] Status {
 public:
  Status() = default;  // ok
  Status(ErrorCode code, std::string message, std::vector<CompileDiagnostic> diagnostics = {});
  static Status Ok() { return Status(); }

  bool ok() const { return code_ == ErrorCode::kOk; }
  explicit operator bool() const { return ok(); }
  ErrorCode code() const { return code_; }
  // One line: for kInvalidQuery, the first diagnostic ("E200 1:1: unknown function ...").
  const std::string& message() const { return message_; }
  // Non-empty only for kInvalidQuery.
  const std::vector<CompileDiagnostic>& diagnostics() const { return diagnostics_; }
  // "ok", or "<code name>: <message>", or, for kInvalidQuery, every rendered diagnostic.
  std::string ToString() const;

 private:
  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
  std::vector<CompileDiagnostic> diagnostics_;
};

namespace api_internal {
// Prints the status to stderr and aborts: value() of a StatusOr that holds an error.
[[noreturn]] void DieOnBadAccess(const Status& status);
}  // namespace api_internal

// A value or a non-ok Status. value() on an error prints the error and aborts the process (no
// exception): check ok() first.
template <class T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(T value) : value_(std::move(value)) {}         // NOLINT: implicit by design
  StatusOr(Status status) : status_(std::move(status)) {  // NOLINT
    if (status_.ok()) status_ = Status(ErrorCode::kInternal, "StatusOr built from an ok Status");
  }

  bool ok() const { return value_.has_value(); }
  explicit operator bool() const { return ok(); }
  const Status& status() const { return status_; }

  T& value() & {
    Check();
    return *value_;
  }
  const T& value() const& {
    Check();
    return *value_;
  }
  T&& value() && {
    Check();
    return std::move(*value_);
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }

  template <class U>
  T value_or(U&& fallback) const& {
    return ok() ? *value_ : static_cast<T>(std::forward<U>(fallback));
  }

 private:
  void Check() const {
    if (!value_.has_value()) api_internal::DieOnBadAccess(status_);
  }
  std::optional<T> value_;
  Status status_;
};

}  // namespace twinq

#endif  // TWINQ_STATUS_H_
