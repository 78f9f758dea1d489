// Running a few independent parts of one write side by side (Fleet::Apply's splices, Table::
// WithChanges' diff and merges). Threads are started per call: the parts are batches of
// thousands of rows or whole column merges, which take far longer than starting a thread.
#ifndef TWINQ_INDEX_PARALLEL_H_
#define TWINQ_INDEX_PARALLEL_H_

#include <cstddef>
#include <system_error>
#include <thread>
#include <vector>

namespace twinq::index {

// Runs part(0) .. part(parts - 1): part 0 on the caller's thread, each other part on a thread
// of its own, or on the caller's thread when no thread is to be had. Returns when all are done.
template <class Part>
void RunInParts(size_t parts, Part&& part) {
  std::vector<std::thread> helpers;
  std::vector<size_t> here;  // parts no thread could be started for
  for (size_t p = 1; p < parts; ++p) {
    try {
      helpers.emplace_back([&part, p] { part(p); });
    } catch (const std::system_error&) {
      here.push_back(p);
    }
  }
  if (parts > 0) part(0);
  for (size_t p : here) part(p);
  for (std::thread& h : helpers) h.join();
}

}  // namespace twinq::index

#endif  // TWINQ_INDEX_PARALLEL_H_
