// Returns the heap's free pages to the system while the daemon runs.
//
// gRPC allocates every incoming HTTP/2 stream's call state from the heap,
// from many threads. A client that opens and resets streams faster than the
// server retires them (HTTP/2 "rapid reset") leaves that memory free but
// scattered through glibc's arenas, where free() keeps it: the resident set
// stayed at 1.7 GB after an attack whose live state was long gone.
// malloc_trim(0) releases the free pages of every arena; a thread calls it at
// a fixed interval, which costs a few milliseconds of one core when there is
// nothing to release.
#ifndef TIERSERVE_SERVER_HEAP_TRIMMER_H_
#define TIERSERVE_SERVER_HEAP_TRIMMER_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

namespace tierserve {

class HeapTrimmer {
 public:
  // Starts the thread; `interval` between trims (> 0).
  explicit HeapTrimmer(std::chrono::milliseconds interval);
  // Stops and joins the thread.
  ~HeapTrimmer();

  HeapTrimmer(const HeapTrimmer&) = delete;
  HeapTrimmer& operator=(const HeapTrimmer&) = delete;

  // Trims once, now; true when the allocator released memory.
  static bool TrimNow();

 private:
  void Run();

  const std::chrono::milliseconds interval_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace tierserve

#endif  // TIERSERVE_SERVER_HEAP_TRIMMER_H_
