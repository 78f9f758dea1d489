// The primitive behind method jobs (reference/iothub.md B.7): invoke a direct method on one device
// or module and wait for its answer. JobManager calls Invoke from its worker threads, so an
// implementation must be thread-safe.
#ifndef TWINQ_JOBS_METHOD_INVOKER_H_
#define TWINQ_JOBS_METHOD_INVOKER_H_

#include <cstdint>
#include <string>

#include "engine/common/value.h"

namespace twinq::jobs {

struct MethodCall {
  std::string device_id;
  std::string module_id;  // empty for a device
  std::string method_name;
  Value payload = Value::Null();
  int response_timeout_s = 30;
  int connect_timeout_s = 0;
};

// Error codes of B.7 / B.8.
inline constexpr int kDeviceNotOnline = 404103;
inline constexpr int kGatewayTimeout = 504101;
inline constexpr int kDeviceNotFound = 404001;

struct MethodResult {
  // True when the device answered: `status` (device-chosen) and `payload` hold its response, and
  // the device job completes whatever the status is (B.5). False: the call failed with
  // `error_code` (404103 DeviceNotOnline, 504101 GatewayTimeout, 404001 DeviceNotFound, ...) and
  // `error_message`.
  bool responded = false;
  int status = 0;
  Value payload = Value::Null();
  int error_code = 0;
  std::string error_name;  // "DeviceNotOnline", "GatewayTimeout", ...
  std::string error_message;
};

class MethodInvoker {
 public:
  virtual ~MethodInvoker() = default;
  virtual MethodResult Invoke(const MethodCall& call) = 0;
};

}  // namespace twinq::jobs

#endif  // TWINQ_JOBS_METHOD_INVOKER_H_
