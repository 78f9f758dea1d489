// twinq index build / twinq index info: the columnar index as a file.
#include <sys/stat.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <iostream>
#include <memory>
#include <string>
#include <utility>

#include "index/fleet.h"
#include "tools/commands.h"

namespace twinq::tools {

namespace {

constexpr const char* kUsage =
    "usage: twinq index build --twins FILE -o INDEX\n"
    "       twinq index info --index INDEX\n"
    "  build: reads the twins in FILE (NDJSON, a JSON array or objects), builds the columnar\n"
    "         index and saves twins and index to INDEX; prints a one-line summary on stderr.\n"
    "  info:  prints the summary of INDEX and, per table, the rows, live rows, columns, index\n"
    "         memory (without the stored documents) and the memory of the stored documents.\n"
    "  An INDEX file can be given to 'twinq query' and 'twinq targets' with --index.\n"
    "  Exit 0 on success, 1 for usage errors and unreadable, malformed or corrupted files.\n";

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

std::string HumanBytes(uint64_t n) {
  char buf[64];
  if (n < 1024) {
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(n));
  } else if (n < 1024 * 1024) {
    std::snprintf(buf, sizeof buf, "%.1f KiB", n / 1024.0);
  } else if (n < 1024ull * 1024 * 1024) {
    std::snprintf(buf, sizeof buf, "%.1f MiB", n / (1024.0 * 1024));
  } else {
    std::snprintf(buf, sizeof buf, "%.2f GiB", n / (1024.0 * 1024 * 1024));
  }
  return buf;
}

// "N devices, M modules, C columns": the part of the summary both subcommands print.
std::string Counts(const index::Snapshot& s) {
  size_t columns = s.devices().columns().size() + s.modules().columns().size();
  return std::to_string(s.devices().live_count()) + " devices, " +
         std::to_string(s.modules().live_count()) + " modules, " + std::to_string(columns) +
         " columns";
}

// Parses `--flag VALUE` pairs; returns an exit code >= 0 to stop, -1 to go on.
int ParseFlags(const char* cmd, const Args& args, size_t first,
               std::initializer_list<std::pair<const char*, std::string*>> flags) {
  for (size_t i = first; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-h" || a == "--help") {
      std::cout << kUsage;
      return 0;
    }
    std::string* target = nullptr;
    for (const auto& [name, out] : flags) {
      if (a == name) target = out;
    }
    if (target == nullptr) {
      std::cerr << "twinq index " << cmd << ": unexpected argument '" << a << "'\n" << kUsage;
      return 1;
    }
    if (i + 1 >= args.size()) {
      std::cerr << "twinq index " << cmd << ": " << a << " needs a value\n";
      return 1;
    }
    *target = args[++i];
  }
  return -1;
}

int Build(const Args& args) {
  std::string twins, output;
  if (int rc = ParseFlags("build", args, 1, {{"--twins", &twins}, {"-o", &output}}); rc >= 0) {
    return rc;
  }
  if (twins.empty() || output.empty()) {
    std::cerr << "twinq index build: --twins and -o are required\n" << kUsage;
    return 1;
  }
  auto start = std::chrono::steady_clock::now();
  index::Fleet fleet;
  // The documents stay in the input file (no copy): the fleet is saved and dropped. Save writes
  // a temporary file and renames it, so the input survives even as the output; but not as that
  // temporary file itself, which Save truncates first.
  struct stat in, tmp;
  const bool input_is_tmp = ::stat(twins.c_str(), &in) == 0 &&
                            ::stat(index::Fleet::SaveTemporaryPath(output).c_str(), &tmp) == 0 &&
                            in.st_dev == tmp.st_dev && in.st_ino == tmp.st_ino;
  Expected<size_t> loaded = fleet.LoadTwinsFile(
      twins, input_is_tmp ? index::Fleet::InputDocs::kCopy : index::Fleet::InputDocs::kKeepInput);
  if (!loaded.ok()) {
    std::cerr << "twinq index build: " << loaded.error().message << "\n";
    return 1;
  }
  double build_s = Seconds(start);
  auto save_start = std::chrono::steady_clock::now();
  Expected<size_t> saved = fleet.Save(output);
  if (!saved.ok()) {
    std::cerr << "twinq index build: " << saved.error().message << "\n";
    return 1;
  }
  double save_s = Seconds(save_start);
  char times[96];
  std::snprintf(times, sizeof times, "read+build %.3f s, save %.3f s", build_s, save_s);
  std::cerr << "twinq index build: " << output << ": " << Counts(fleet.snapshot()) << ", "
            << HumanBytes(*saved) << " (" << *saved << " bytes), " << times << "\n";
  return 0;
}

void PrintTable(const char* name, const index::Table& t) {
  std::cout << name << ": rows " << t.row_count() << ", live " << t.live_count() << ", columns "
            << t.columns().size() << ", index memory " << HumanBytes(t.IndexMemoryBytes()) << " ("
            << t.IndexMemoryBytes() << " bytes), document memory "
            << HumanBytes(t.DocumentMemoryBytes()) << " (" << t.DocumentMemoryBytes()
            << " bytes)\n";
}

int Info(const Args& args) {
  std::string path;
  if (int rc = ParseFlags("info", args, 1, {{"--index", &path}}); rc >= 0) return rc;
  if (path.empty()) {
    std::cerr << "twinq index info: --index is required\n" << kUsage;
    return 1;
  }
  auto start = std::chrono::steady_clock::now();
  Expected<std::unique_ptr<index::Fleet>> fleet = OpenIndexFile(path);
  if (!fleet.ok()) {
    std::cerr << "twinq index info: " << fleet.error().message << "\n";
    return 1;
  }
  double open_s = Seconds(start);
  index::Snapshot s = (*fleet)->snapshot();
  // The file's size, and its format version (the u32 after the 8-byte magic; Open checked the
  // header, so it is one this build reads).
  std::FILE* f = std::fopen(path.c_str(), "rb");
  long size = -1;
  uint32_t format = 0;
  unsigned char header[12];
  if (f != nullptr && std::fread(header, 1, sizeof header, f) == sizeof header) {
    std::memcpy(&format, header + 8, 4);
  }
  if (f != nullptr && std::fseek(f, 0, SEEK_END) == 0) size = std::ftell(f);
  if (f != nullptr) std::fclose(f);
  char open[48];
  std::snprintf(open, sizeof open, "opened in %.3f s", open_s);
  std::cout << path << ": " << Counts(s) << ", "
            << (size >= 0 ? HumanBytes(static_cast<uint64_t>(size)) + " (" + std::to_string(size) +
                                " bytes)"
                          : std::string("size unknown"))
            << ", format version " << format << ", fleet version " << s.version() << ", " << open
            << "\n";
  PrintTable("devices", s.devices());
  PrintTable("modules", s.modules());
  return 0;
}

}  // namespace

Expected<std::unique_ptr<index::Fleet>> OpenIndexFile(const std::string& path) {
  std::error_code ec;
  auto status = std::filesystem::status(path, ec);
  if (!ec && std::filesystem::is_directory(status)) {
    return Error{path + ": cannot read: Is a directory"};
  }
  return index::Fleet::Open(path);
}

int CmdIndex(const Args& args) {
  if (args.empty()) {
    std::cerr << kUsage;
    return 1;
  }
  const std::string& sub = args[0];
  if (sub == "-h" || sub == "--help") {
    std::cout << kUsage;
    return 0;
  }
  if (sub == "build") return Build(args);
  if (sub == "info") return Info(args);
  std::cerr << "twinq index: unknown subcommand '" << sub << "'\n" << kUsage;
  return 1;
}

}  // namespace twinq::tools
