// A simulated device fleet implementing MethodInvoker, for tests, the demo and the benchmark.
//
// Every device behaves by a profile: online or not (an offline device may connect after a delay),
// a latency drawn from a distribution, the status and payload it answers with, and injected
// failures (it never answers, or answers with an error status). A profile is either set for one
// target id ("dev-1" or "dev-1/mod") or derived from the fleet-wide settings: each share is
// decided per id by a seeded hash, so the same settings give the same devices every run.
//
// Timeouts are honoured as the service does (B.7): a device that is offline and does not connect
// within connectTimeoutInSeconds fails after that time with 404103 DeviceNotOnline; a device that
// does not answer within responseTimeoutInSeconds fails after that time with 504101
// GatewayTimeout. Waiting is Clock::SleepFor, so on a FakeClock it moves virtual time.
#ifndef TWINQ_JOBS_SIMULATED_DEVICES_H_
#define TWINQ_JOBS_SIMULATED_DEVICES_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "jobs/clock.h"
#include "jobs/method_invoker.h"

namespace twinq::jobs {

struct DeviceProfile {
  bool online = true;
  // An offline device connects this long after the call starts (-1: never).
  int64_t connect_after_ms = -1;
  int64_t latency_ms = 0;         // time to answer once connected
  bool answers = true;            // false: never answers (504101 after responseTimeout)
  int status = 200;               // the status it answers with
  Value payload = Value::Null();  // the payload it answers with (null: echo the request's)
};

struct SimulationSettings {
  uint64_t seed = 1;
  // Latency: uniform in [latency_min_ms, latency_max_ms].
  int64_t latency_min_ms = 0;
  int64_t latency_max_ms = 0;
  double offline_share = 0;  // devices offline (and never connecting)
  double silent_share = 0;   // devices that never answer
  double error_share = 0;    // devices answering with error_status
  int error_status = 500;
  int ok_status = 200;
};

class SimulatedDevices : public MethodInvoker {
 public:
  SimulatedDevices(Clock& clock, SimulationSettings settings = {});

  // A fixed profile for one target id ("deviceId" or "deviceId/moduleId").
  void SetProfile(const std::string& target, DeviceProfile profile);
  // The profile a target gets (its own, or the derived one).
  DeviceProfile ProfileOf(const std::string& target) const;

  MethodResult Invoke(const MethodCall& call) override;

  uint64_t calls() const { return calls_.load(); }

 private:
  Clock& clock_;
  SimulationSettings settings_;
  mutable std::mutex mu_;
  std::map<std::string, DeviceProfile> profiles_;
  std::atomic<uint64_t> calls_{0};
};

}  // namespace twinq::jobs

#endif  // TWINQ_JOBS_SIMULATED_DEVICES_H_
