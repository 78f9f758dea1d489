#include "jobs/clock.h"

#include <fmt/format.h>

#include <chrono>
#include <thread>

#include "index/twin_patch.h"

namespace twinq::jobs {

int64_t SystemClock::Now() const {
  auto since = std::chrono::system_clock::now().time_since_epoch();
  return std::chrono::duration_cast<std::chrono::nanoseconds>(since).count() / 100;
}

void SystemClock::SleepFor(int64_t ticks) {
  if (ticks > 0) std::this_thread::sleep_for(std::chrono::nanoseconds(ticks * 100));
}

Clock& DefaultClock() {
  static SystemClock clock;
  return clock;
}

std::string FormatTime(int64_t ticks) { return index::FormatTimestamp(ticks); }

namespace {

// Days from 1970-01-01 to y-m-d (proleptic Gregorian; Howard Hinnant's algorithm).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool IsLeap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

}  // namespace

bool ParseTime(std::string_view s, int64_t* ticks, std::string* error) {
  size_t i = 0;
  auto digits = [&](size_t n, int* out, const char* what) {
    int v = 0;
    for (size_t k = 0; k < n; ++k, ++i) {
      if (i >= s.size() || s[i] < '0' || s[i] > '9') {
        *error = fmt::format("expected {} digits for the {} at offset {}", n, what, i);
        return false;
      }
      v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
  };
  auto expect = [&](char c, const char* after) {
    if (i >= s.size() || s[i] != c) {
      *error = fmt::format("expected '{}' after the {} at offset {}", c, after, i);
      return false;
    }
    ++i;
    return true;
  };
  int year, month, day, hour, minute, second;
  if (!digits(4, &year, "year") || !expect('-', "year") || !digits(2, &month, "month") ||
      !expect('-', "month") || !digits(2, &day, "day")) {
    return false;
  }
  if (i >= s.size() || (s[i] != 'T' && s[i] != 't')) {
    *error = fmt::format("expected 'T' between date and time at offset {}", i);
    return false;
  }
  ++i;
  if (!digits(2, &hour, "hour") || !expect(':', "hour") || !digits(2, &minute, "minute") ||
      !expect(':', "minute") || !digits(2, &second, "second")) {
    return false;
  }
  int64_t fraction = 0;  // in 100 ns
  if (i < s.size() && s[i] == '.') {
    ++i;
    size_t n = 0;
    int64_t scale = 1'000'000;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      if (n < 7) fraction += (s[i] - '0') * scale, scale /= 10;
      ++n, ++i;
    }
    if (n == 0 || n > 9) {
      *error = fmt::format("the fraction of a second needs 1 to 9 digits, not {}", n);
      return false;
    }
  }
  int offset_minutes = 0;
  if (i < s.size()) {
    if (s[i] == 'Z' || s[i] == 'z') {
      ++i;
    } else if (s[i] == '+' || s[i] == '-') {
      int sign = s[i] == '-' ? -1 : 1;
      ++i;
      int oh, om;
      if (!digits(2, &oh, "offset hours") || !expect(':', "offset hours") ||
          !digits(2, &om, "offset minutes")) {
        return false;
      }
      if (oh > 23 || om > 59) {
        *error = fmt::format("offset {:02}:{:02} is out of range", oh, om);
        return false;
      }
      offset_minutes = sign * (oh * 60 + om);
    } else {
      *error =
          fmt::format("unexpected '{}' at offset {} (expected 'Z', an offset or the end)", s[i], i);
      return false;
    }
  }
  if (i != s.size()) {
    *error = fmt::format("unexpected text after the time at offset {}", i);
    return false;
  }
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (year < 1) {
    *error = "year 0000 is out of range (0001-9999)";
    return false;
  }
  if (month < 1 || month > 12) {
    *error = fmt::format("month {:02} is out of range (01-12)", month);
    return false;
  }
  int mdays = kDays[month - 1] + (month == 2 && IsLeap(year) ? 1 : 0);
  if (day < 1 || day > mdays) {
    *error = fmt::format("day {:02} is out of range for {:04}-{:02} (01-{:02})", day, year, month,
                         mdays);
    return false;
  }
  if (hour > 23) {
    *error = fmt::format("hour {:02} is out of range (00-23)", hour);
    return false;
  }
  if (minute > 59) {
    *error = fmt::format("minute {:02} is out of range (00-59)", minute);
    return false;
  }
  if (second > 59) {
    *error = fmt::format("second {:02} is out of range (00-59)", second);
    return false;
  }
  int64_t days = DaysFromCivil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  int64_t secs = days * 86400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
  *ticks = secs * kTicksPerSecond + fraction;
  return true;
}

}  // namespace twinq::jobs
