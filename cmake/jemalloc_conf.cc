// jemalloc's built-in options for the executables that link it (cmake/TwinqAllocator.cmake);
// MALLOC_CONF in the environment still overrides them.
//  - oversize_threshold:0  no dedicated arena for large blocks (8 MiB and up by default), whose
//    memory jemalloc returns to the system at once: the index's column merges at 1M twins
//    allocate and free such blocks over and over, and on a VM every fresh page then costs a
//    page fault (about 16 us per 4 KiB page measured here);
//  - dirty_decay_ms / muzzy_decay_ms 30000  freed pages are kept for 30 s before they are
//    returned (the default is 10 s), so a writer's batches reuse them.
//  - thp:always  jemalloc asks for transparent huge pages on its memory (madvise(MADV_HUGEPAGE);
//    the kernel's THP mode here is "madvise", so nothing else changes): one fault maps 2 MiB,
//    not 4 KiB. On this VM page faults dominated every phase that fills fresh memory. A/B at
//    100k devices, same binary, MALLOC_CONF="" vs "thp:always" (bench/BENCHLOG.md, "huge
//    pages"): ingest 15.1 -> 8.4 s, single patch 24 -> 12 us, batches of 1k 44k -> 74k
//    patches/s, Serialize 1.37 -> 0.22 s; peak RSS 1,607 -> 1,586 MB. Open at 1M: 0.56 -> 1.01
//    GB/s.
// bench/BENCHLOG.md ("Jobs at 1M devices, second entry", runs b and c): a twin-update job over 1M
// devices took 35.5 s of CPU with the defaults and 26.2 s with these options set through
// MALLOC_CONF, at a somewhat different load, so the size of the gain is uncertain.
//  - narenas:1  one arena for every thread. By default jemalloc gives each thread one of 4 x CPUs
//    arenas, and memory freed by one thread goes back to the arena it came from, where only
//    the threads of that arena reuse it. A twin-update job runs on the job manager's thread
//    and frees the documents the loading thread allocated, while it allocates their
//    replacements. At 1M devices, the same binary, the whole job (bench/BENCHLOG.md,
//    "2026-11-27 (fourth session)"): 12.5, 12.8, 10.8, 12.2, 10.8 s with the default arenas;
//    7.1, 7.8, 10.0, 9.2, 10.0, 13.8 s with one (medians 12.2 and 9.6 s); resolving the targets
//    took 6-10 ms against 1-2 ms in every pair. Thread caches still serve most allocations without
//    the arena's lock, and the machine has 2 cores.
extern "C" {
// NOLINTNEXTLINE: the name and type are jemalloc's interface.
const char* malloc_conf =
    "oversize_threshold:0,dirty_decay_ms:30000,muzzy_decay_ms:30000,thp:always,narenas:1";
}
