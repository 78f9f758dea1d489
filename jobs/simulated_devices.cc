#include "jobs/simulated_devices.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace twinq::jobs {

namespace {

uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t HashId(std::string_view id, uint64_t seed) {
  uint64_t h = 1469598103934665603ULL ^ Mix(seed);
  for (unsigned char c : id) h = (h ^ c) * 1099511628211ULL;
  return Mix(h);
}

// A uniform draw in [0, 1) from hash stream `k` of `id`.
double Draw(std::string_view id, uint64_t seed, uint64_t k) {
  return static_cast<double>(Mix(HashId(id, seed) + k) >> 11) * 0x1.0p-53;
}

double Share(double s) { return std::isnan(s) ? 0 : std::clamp(s, 0.0, 1.0); }

}  // namespace

SimulatedDevices::SimulatedDevices(Clock& clock, SimulationSettings settings)
    : clock_(clock), settings_(settings) {}

void SimulatedDevices::SetProfile(const std::string& target, DeviceProfile profile) {
  std::lock_guard<std::mutex> lock(mu_);
  profiles_[target] = std::move(profile);
}

DeviceProfile SimulatedDevices::ProfileOf(const std::string& target) const {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = profiles_.find(target);
    if (it != profiles_.end()) return it->second;
  }
  const SimulationSettings& s = settings_;
  DeviceProfile p;
  p.online = Draw(target, s.seed, 1) >= Share(s.offline_share);
  p.answers = Draw(target, s.seed, 2) >= Share(s.silent_share);
  p.status = Draw(target, s.seed, 3) < Share(s.error_share) ? s.error_status : s.ok_status;
  int64_t lo = std::max<int64_t>(0, s.latency_min_ms);
  int64_t hi = std::max(lo, s.latency_max_ms);
  p.latency_ms =
      lo + static_cast<int64_t>(Draw(target, s.seed, 4) * static_cast<double>(hi - lo + 1));
  if (p.latency_ms > hi) p.latency_ms = hi;
  return p;
}

MethodResult SimulatedDevices::Invoke(const MethodCall& call) {
  calls_.fetch_add(1, std::memory_order_relaxed);
  std::string target =
      call.module_id.empty() ? call.device_id : call.device_id + "/" + call.module_id;
  DeviceProfile p = ProfileOf(target);
  MethodResult r;
  if (!p.online) {
    int64_t connect_limit_ms = int64_t{call.connect_timeout_s} * 1000;
    if (p.connect_after_ms < 0 || p.connect_after_ms > connect_limit_ms) {
      clock_.SleepFor(connect_limit_ms * kTicksPerMillisecond);
      r.error_code = kDeviceNotOnline;
      r.error_name = "DeviceNotOnline";
      r.error_message = call.connect_timeout_s == 0 ? "Device not online."
                                                    : "Timed out waiting for device to connect.";
      return r;
    }
    clock_.SleepFor(p.connect_after_ms * kTicksPerMillisecond);
  }
  int64_t response_limit_ms = int64_t{call.response_timeout_s} * 1000;
  if (!p.answers || p.latency_ms > response_limit_ms) {
    clock_.SleepFor(response_limit_ms * kTicksPerMillisecond);
    r.error_code = kGatewayTimeout;
    r.error_name = "GatewayTimeout";
    r.error_message = "Timed out waiting for the response from device.";
    return r;
  }
  clock_.SleepFor(p.latency_ms * kTicksPerMillisecond);
  r.responded = true;
  r.status = p.status;
  r.payload = p.payload.is_null() ? call.payload : p.payload;
  return r;
}

}  // namespace twinq::jobs
