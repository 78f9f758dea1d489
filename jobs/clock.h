// Time for the job scheduler: an injectable clock. Times are unix times in 100 ns ticks (the unit
// of index::FormatTimestamp and of .NET's DateTime, the service's platform).
//
// SystemClock reads the real time and really sleeps. FakeClock holds a time that only moves when
// told: Set/Advance, and SleepFor, which advances it by the requested duration instead of
// blocking (so a simulated device that "takes 5 ms" moves virtual time by 5 ms). With one worker
// thread, a job on a FakeClock is deterministic to the tick.
#ifndef TWINQ_JOBS_CLOCK_H_
#define TWINQ_JOBS_CLOCK_H_

#include <atomic>
#include <cstdint>
#include <string>

namespace twinq::jobs {

inline constexpr int64_t kTicksPerMillisecond = 10'000;
inline constexpr int64_t kTicksPerSecond = 10'000'000;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t Now() const = 0;
  // Blocks (or, for a fake clock, lets virtual time pass) for `ticks` (<= 0: returns at once).
  virtual void SleepFor(int64_t ticks) = 0;
};

class SystemClock : public Clock {
 public:
  int64_t Now() const override;
  void SleepFor(int64_t ticks) override;
};

class FakeClock : public Clock {
 public:
  explicit FakeClock(int64_t start) : now_(start) {}
  int64_t Now() const override { return now_.load(std::memory_order_acquire); }
  void SleepFor(int64_t ticks) override {
    if (ticks > 0) now_.fetch_add(ticks, std::memory_order_acq_rel);
  }
  void Set(int64_t t) { now_.store(t, std::memory_order_release); }
  void Advance(int64_t ticks) { now_.fetch_add(ticks, std::memory_order_acq_rel); }

 private:
  std::atomic<int64_t> now_;
};

// A process-wide SystemClock.
Clock& DefaultClock();

// "YYYY-MM-DDTHH:MM:SS.fffffffZ" (index::FormatTimestamp).
std::string FormatTime(int64_t ticks);

// Parses an ISO-8601 / RFC 3339 date-time: YYYY-MM-DDTHH:MM:SS, an optional fraction of 1 to 9
// digits (kept to 100 ns), then 'Z', an offset +HH:MM / -HH:MM, or nothing (read as UTC). The
// 'T' may be lower case, as may 'Z'. Years 0001-9999; every field is range-checked (day against
// its month, leap years included; second 60 is refused). On failure `*error` says what is wrong,
// e.g. "month 13 is out of range (01-12)", and false is returned.
bool ParseTime(std::string_view text, int64_t* ticks, std::string* error);

}  // namespace twinq::jobs

#endif  // TWINQ_JOBS_CLOCK_H_
