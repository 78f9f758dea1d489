// A replay main for fuzz targets, linked instead of libFuzzer when TWINQ_LIBFUZZER is OFF (the
// simdjson pattern: fuzzers build with any compiler and never bitrot).
//
//   fuzz_parse FILE_OR_DIR...
//
// Runs LLVMFuzzerTestOneInput once on every file named on the command line; directories are walked
// recursively, in sorted order. Arguments that start with '-' (libFuzzer flags such as -runs=0)
// are ignored, so the same command line works with both mains. Prints how many inputs ran and
// exits 0; a crashing input crashes the process, as it would under libFuzzer. A path that does
// not exist or cannot be read is an error (exit 1), so that a typo cannot pass as a clean run.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

namespace fs = std::filesystem;

bool ReadFile(const fs::path& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  out->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return !in.bad();
}

// Appends the regular files under `path` (or `path` itself), sorted. False if it does not exist.
bool CollectInputs(const fs::path& path, std::vector<fs::path>* inputs) {
  std::error_code ec;
  fs::file_status status = fs::status(path, ec);
  if (ec || !fs::exists(status)) return false;
  if (!fs::is_directory(status)) {
    inputs->push_back(path);
    return true;
  }
  std::vector<fs::path> found;
  fs::recursive_directory_iterator it(path, fs::directory_options::follow_directory_symlink, ec);
  for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec)) found.push_back(it->path());
  }
  if (ec) return false;
  std::sort(found.begin(), found.end());
  inputs->insert(inputs->end(), found.begin(), found.end());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  const char* self = argc > 0 ? argv[0] : "fuzz";
  std::vector<fs::path> inputs;
  size_t paths = 0;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (!arg.empty() && arg[0] == '-') continue;  // a libFuzzer flag
    ++paths;
    if (!CollectInputs(arg, &inputs)) {
      std::fprintf(stderr, "%s: cannot read '%s'\n", self, arg.c_str());
      return 1;
    }
  }
  if (paths == 0) {
    std::fprintf(stderr,
                 "usage: %s FILE_OR_DIR...\n"
                 "  Replays every input through the fuzz target (directories recursively).\n"
                 "  Built without libFuzzer; configure with CC=clang CXX=clang++ "
                 "-DTWINQ_LIBFUZZER=ON to fuzz.\n",
                 self);
    return 1;
  }
  size_t ran = 0;
  for (const fs::path& path : inputs) {
    std::string bytes;
    if (!ReadFile(path, &bytes)) {
      std::fprintf(stderr, "%s: cannot read '%s'\n", self, path.c_str());
      return 1;
    }
    // An exactly sized heap copy, so that ASan builds catch reads past the end of the input.
    std::unique_ptr<uint8_t[]> copy = std::make_unique<uint8_t[]>(bytes.size());
    std::copy(bytes.begin(), bytes.end(), copy.get());
    LLVMFuzzerTestOneInput(copy.get(), bytes.size());
    ++ran;
  }
  std::printf("%s: ran %zu inputs from %zu paths\n", self, ran, paths);
  return 0;
}
