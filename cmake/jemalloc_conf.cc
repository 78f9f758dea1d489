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
extern "C" {
// NOLINTNEXTLINE: the name and type are jemalloc's interface.
const char* malloc_conf =
    "oversize_threshold:0,dirty_decay_ms:30000,muzzy_decay_ms:30000,thp:always";
}
