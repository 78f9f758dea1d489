// Prefetch(p): asks for the cache line holding p, for reading, into every cache level.
//
// GCC 12 drops some `__builtin_prefetch` calls altogether. The id lookup's prefetches (a row's
// document handle and ids; Table::PrefetchRow until the twentieth session) were missing from the
// Release (-O3) binaries, and a test function that prefetched a pointer loaded from a member
// vector plus an offset compiled to a bare `ret` at -O2 and -O3 (Clang 14 kept every one). Why
// was not found out. An asm statement is never dropped, and its "m" operand only names the
// address: nothing is loaded, and an address no page backs does not fault, as for the builtin.
// Every read prefetch of the index goes through here.
#ifndef TWINQ_INDEX_PREFETCH_H_
#define TWINQ_INDEX_PREFETCH_H_

namespace twinq::index {

inline void Prefetch(const void* p) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  asm volatile("prefetcht0 %0" : : "m"(*static_cast<const char*>(p)));
#else
  __builtin_prefetch(p);
#endif
}

}  // namespace twinq::index

#endif  // TWINQ_INDEX_PREFETCH_H_
