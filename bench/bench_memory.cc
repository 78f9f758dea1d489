// bench_memory: what fresh memory costs on this machine, to read the other benchmarks by.
//
//   bench_memory [--mib N] [--reps R]
//
// Maps N MiB (default 1024) of anonymous memory R times (default 3), 4 KiB pages and then
// transparent huge pages (madvise(MADV_HUGEPAGE), as jemalloc's thp:always asks for), and times
// the first write of every byte (the page faults, the kernel zeroing each page, and on a VM the
// host backing guest memory it had not backed yet) and a second write of the same bytes (memory
// bandwidth alone). Each mapping is unmapped before the next, so a later repetition may get the
// guest pages back that an earlier one freed: the first repetition is the cost of memory the
// process has never had. The index benchmarks allocate gigabytes (documents, columns), so on a
// machine where the first touch is slow that cost bounds ingest, Open and Deserialize.
#include <sys/mman.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

double Seconds(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace

int main(int argc, char** argv) {
  size_t mib = 1024;
  int reps = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--mib") {
      mib = std::strtoull(argv[i + 1], nullptr, 10);
    } else if (a == "--reps") {
      reps = std::atoi(argv[i + 1]);
    } else {
      std::fprintf(stderr, "usage: bench_memory [--mib N] [--reps R]\n");
      return 2;
    }
  }
  if (argc % 2 == 0 || mib == 0 || reps <= 0) {
    std::fprintf(stderr, "usage: bench_memory [--mib N] [--reps R]\n");
    return 2;
  }
  const size_t n = mib << 20;
  std::printf("| pages | rep | first write (faults + zeroing) | second write |\n");
  std::printf("|---|---:|---:|---:|\n");
  for (int huge = 0; huge < 2; ++huge) {
    for (int rep = 1; rep <= reps; ++rep) {
      void* p = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) {
        std::perror("mmap");
        return 1;
      }
      if (huge) ::madvise(p, n, MADV_HUGEPAGE);
      auto t0 = std::chrono::steady_clock::now();
      std::memset(p, 1, n);
      auto t1 = std::chrono::steady_clock::now();
      std::memset(p, 2, n);
      auto t2 = std::chrono::steady_clock::now();
      double first = Seconds(t0, t1), second = Seconds(t1, t2);
      std::printf("| %s | %d | %.2f s = %.0f MB/s | %.3f s = %.0f MB/s |\n",
                  huge ? "huge (2 MiB)" : "4 KiB", rep, first, static_cast<double>(n) / 1e6 / first,
                  second, static_cast<double>(n) / 1e6 / second);
      ::munmap(p, n);
    }
  }
  return 0;
}
