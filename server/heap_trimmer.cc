#include "server/heap_trimmer.h"

#include <malloc.h>

namespace tierserve {

HeapTrimmer::HeapTrimmer(std::chrono::milliseconds interval)
    : interval_(interval), thread_([this] { Run(); }) {}

HeapTrimmer::~HeapTrimmer() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

bool HeapTrimmer::TrimNow() { return malloc_trim(0) != 0; }

void HeapTrimmer::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!cv_.wait_for(lock, interval_, [this] { return stop_; })) {
    lock.unlock();
    TrimNow();
    lock.lock();
  }
}

}  // namespace tierserve
