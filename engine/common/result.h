// Result<T>: a value or a non-empty list of diagnostics. Used at every phase boundary; no
// exceptions cross the public API.
#ifndef TWINQ_ENGINE_COMMON_RESULT_H_
#define TWINQ_ENGINE_COMMON_RESULT_H_

#include <cassert>
#include <optional>
#include <string>
#include <utility>

#include "engine/common/diagnostic.h"

namespace twinq {

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}           // NOLINT: implicit by design
  Result(Diagnostics diags) : diags_(std::move(diags)) {  // NOLINT
    assert(!diags_.empty());
  }
  Result(Diagnostic diag) { diags_.push_back(std::move(diag)); }  // NOLINT

  bool ok() const { return value_.has_value(); }
  explicit operator bool() const { return ok(); }

  T& value() & {
    assert(ok());
    return *value_;
  }
  const T& value() const& {
    assert(ok());
    return *value_;
  }
  T&& value() && {
    assert(ok());
    return std::move(*value_);
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Diagnostics& diagnostics() const { return diags_; }
  Diagnostics&& take_diagnostics() { return std::move(diags_); }

 private:
  std::optional<T> value_;
  Diagnostics diags_;
};

// An error that is not tied to query text (files, I/O, invalid requests): a message only.
struct Error {
  std::string message;
};

// A value or an Error. For file and data errors, where there is no query source to point into.
template <class T>
class [[nodiscard]] Expected {
 public:
  Expected(T value) : value_(std::move(value)) {}      // NOLINT
  Expected(Error error) : error_(std::move(error)) {}  // NOLINT

  bool ok() const { return value_.has_value(); }
  explicit operator bool() const { return ok(); }
  T& value() & {
    assert(ok());
    return *value_;
  }
  const T& value() const& {
    assert(ok());
    return *value_;
  }
  T&& value() && {
    assert(ok());
    return std::move(*value_);
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  const Error& error() const { return error_; }

 private:
  std::optional<T> value_;
  Error error_;
};

}  // namespace twinq

#endif  // TWINQ_ENGINE_COMMON_RESULT_H_
