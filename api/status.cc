// Status, ErrorCode names and the conversions from engine errors.
#include <cstdio>
#include <cstdlib>

#include "api/internal.h"
#include "engine/common/diagnostic.h"
#include "twinq/twinq.h"

namespace twinq {

std::string_view ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk:
      return "ok";
    case ErrorCode::kInvalidQuery:
      return "invalid_query";
    case ErrorCode::kInvalidArgument:
      return "invalid_argument";
    case ErrorCode::kIoError:
      return "io_error";
    case ErrorCode::kNotFound:
      return "not_found";
    case ErrorCode::kAlreadyExists:
      return "already_exists";
    case ErrorCode::kFailedPrecondition:
      return "failed_precondition";
    case ErrorCode::kResourceExhausted:
      return "resource_exhausted";
    case ErrorCode::kInternal:
      return "internal";
  }
  return "unknown";
}

Status::Status(ErrorCode code, std::string message, std::vector<CompileDiagnostic> diagnostics)
    : code_(code), message_(std::move(message)), diagnostics_(std::move(diagnostics)) {}

std::string Status::ToString() const {
  if (ok()) return "ok";
  if (!diagnostics_.empty()) {
    std::string out;
    for (const CompileDiagnostic& d : diagnostics_) out += d.rendered;
    if (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  }
  return std::string(ErrorCodeName(code_)) + ": " + message_;
}

// The header's version macros must follow project(twinq VERSION ...) in CMakeLists.txt.
static_assert(TWINQ_VERSION_MAJOR == TWINQ_PROJECT_VERSION_MAJOR &&
                  TWINQ_VERSION_MINOR == TWINQ_PROJECT_VERSION_MINOR &&
                  TWINQ_VERSION_PATCH == TWINQ_PROJECT_VERSION_PATCH,
              "include/twinq/twinq.h: the TWINQ_VERSION_* macros differ from the project version");

const char* Version() { return TWINQ_PROJECT_VERSION; }

namespace api_internal {

void DieOnBadAccess(const Status& status) {
  std::fprintf(stderr, "twinq: value() of a StatusOr holding an error: %s\n",
               status.ToString().c_str());
  std::abort();
}

Collection ToPublic(check::Collection c) {
  switch (c) {
    case check::Collection::kDevices:
      return Collection::kDevices;
    case check::Collection::kModules:
      return Collection::kModules;
    case check::Collection::kJobs:
      return Collection::kJobs;
  }
  return Collection::kDevices;
}

Status FromDiagnostics(const Diagnostics& diags, const Source& source) {
  std::vector<CompileDiagnostic> out;
  out.reserve(diags.size());
  for (const Diagnostic& d : diags) {
    CompileDiagnostic c;
    c.code = DiagCodeName(d.code);
    c.number = static_cast<int>(d.code);
    c.message = d.message;
    LineCol begin = source.Locate(d.range.begin);
    LineCol end = source.Locate(d.range.end);
    c.line = begin.line;
    c.column = begin.column;
    c.end_line = end.line;
    c.end_column = end.column;
    c.offset = d.range.begin;
    c.length = d.range.size();
    c.rendered = Render(d, source);
    if (c.rendered.empty() || c.rendered.back() != '\n') c.rendered.push_back('\n');
    out.push_back(std::move(c));
  }
  std::string message = diags.empty() ? "invalid query" : RenderShort(diags.front(), source);
  return Status(ErrorCode::kInvalidQuery, std::move(message), std::move(out));
}

Status FromError(const Error& error, ErrorCode fallback) {
  const std::string& m = error.message;
  struct Prefix {
    std::string_view text;
    ErrorCode code;
  };
  static constexpr Prefix kPrefixes[] = {
      {"JobNotFound", ErrorCode::kNotFound},
      {"DeviceNotFound", ErrorCode::kNotFound},
      {"JobAlreadyExists", ErrorCode::kAlreadyExists},
      {"Throttling", ErrorCode::kResourceExhausted},
      {"InvalidOperation", ErrorCode::kFailedPrecondition},
      {"PreconditionFailed", ErrorCode::kFailedPrecondition},
      {"GenericBadRequest", ErrorCode::kInvalidArgument},
      {"ArgumentInvalid", ErrorCode::kInvalidArgument},
      {"BadRequest", ErrorCode::kInvalidArgument},
  };
  // The service code starts the message or follows a position prefix ("mutation 2: ",
  // "twin 'dev-1': ").
  for (const Prefix& p : kPrefixes) {
    if (m.rfind(p.text, 0) == 0 || m.find(": " + std::string(p.text)) != std::string::npos) {
      return Status(p.code, m);
    }
  }
  std::string_view rest = m;
  if (rest.rfind("mutation ", 0) == 0) {
    size_t colon = rest.find(": ");
    if (colon != std::string_view::npos) rest.remove_prefix(colon + 2);
  }
  if (rest.rfind("no twin ", 0) == 0) return Status(ErrorCode::kNotFound, m);
  return Status(fallback, m);
}

}  // namespace api_internal
}  // namespace twinq
