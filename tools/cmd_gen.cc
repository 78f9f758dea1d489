// twinq gen: writes a deterministic, seeded fleet of device and module twins as NDJSON.
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <system_error>

#include "index/fleet_gen.h"
#include "tools/commands.h"

namespace twinq::tools {

namespace {

constexpr const char* kUsage =
    "usage: twinq gen --devices N [--seed S] [--module-share F] [--skew F]\n"
    "                 [--buildings N] [--optional-tag-share F] [--array-tag-share F] [-o FILE]\n"
    "  Writes N device twins (each IoT Edge device followed by its module twins) as NDJSON to\n"
    "  stdout or FILE, in deviceId order. The same options give byte-identical output.\n"
    "  Defaults: --seed 7 --module-share 0.2 --skew 1.0 --buildings 200\n"
    "            --optional-tag-share 0.3 --array-tag-share 0.2\n"
    "  Shares are in [0, 1]; --skew (Zipf exponent of value popularity, 0 = uniform) in [0, 8].\n"
    "  Exit 0 on success, 1 for usage errors or an unwritable FILE.\n";

bool ParseUint(const std::string& s, uint64_t* out) {
  if (s.empty()) return false;
  auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

bool ParseDouble(const std::string& s, double lo, double hi, double* out) {
  if (s.empty()) return false;
  auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size() && *out >= lo && *out <= hi;
}

}  // namespace

int CmdGen(const Args& args) {
  index::FleetSpec spec;
  std::string output;
  bool have_devices = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-h" || a == "--help") {
      std::cout << kUsage;
      return 0;
    }
    if (i + 1 >= args.size() ||
        (a != "--devices" && a != "--seed" && a != "--module-share" && a != "--skew" &&
         a != "--buildings" && a != "--optional-tag-share" && a != "--array-tag-share" &&
         a != "-o")) {
      if (i + 1 >= args.size() && a.size() > 1 && a[0] == '-') {
        std::cerr << "twinq gen: " << a << " needs a value\n";
      } else {
        std::cerr << "twinq gen: unexpected argument '" << a << "'\n";
      }
      std::cerr << kUsage;
      return 1;
    }
    const std::string& v = args[++i];
    bool ok = true;
    const char* expect = "";
    if (a == "--devices") {
      ok = ParseUint(v, &spec.devices);
      have_devices = ok;
      expect = "a non-negative integer";
    } else if (a == "--seed") {
      ok = ParseUint(v, &spec.seed);
      expect = "a non-negative integer";
    } else if (a == "--buildings") {
      uint64_t n = 0;
      ok = ParseUint(v, &n) && n >= 1 && n <= 1'000'000;
      spec.buildings = static_cast<uint32_t>(n);
      expect = "an integer in [1, 1000000]";
    } else if (a == "--skew") {
      ok = ParseDouble(v, 0, 8, &spec.skew);
      expect = "a number in [0, 8]";
    } else if (a == "-o") {
      output = v;
    } else {
      double* share = a == "--module-share"         ? &spec.module_share
                      : a == "--optional-tag-share" ? &spec.optional_tag_share
                                                    : &spec.array_tag_share;
      ok = ParseDouble(v, 0, 1, share);
      expect = "a number in [0, 1]";
    }
    if (!ok) {
      std::cerr << "twinq gen: " << a << " needs " << expect << ", not '" << v << "'\n";
      return 1;
    }
  }
  if (!have_devices) {
    std::cerr << "twinq gen: --devices is required\n" << kUsage;
    return 1;
  }

  std::FILE* out = stdout;
  if (!output.empty() && output != "-") {
    out = std::fopen(output.c_str(), "wb");
    if (out == nullptr) {
      std::cerr << "twinq gen: cannot write " << output << ": " << std::strerror(errno) << "\n";
      return 1;
    }
  }
  static char buffer[1 << 20];
  std::setvbuf(out, buffer, _IOFBF, sizeof buffer);
  bool failed = false;
  index::GenerateFleet(spec, [out, &failed](std::string_view line) {
    if (failed) return;
    if (std::fwrite(line.data(), 1, line.size(), out) != line.size() ||
        std::fputc('\n', out) == EOF) {
      failed = true;
    }
  });
  int err = 0;
  if (std::fflush(out) != 0 || std::ferror(out)) failed = true;
  if (failed) err = errno;
  if (out != stdout && std::fclose(out) != 0 && !failed) {
    failed = true;
    err = errno;
  }
  if (failed) {
    std::cerr << "twinq gen: cannot write " << (out == stdout ? "stdout" : output) << ": "
              << std::strerror(err) << "\n";
    return 1;
  }
  return 0;
}

}  // namespace twinq::tools
