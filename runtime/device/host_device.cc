#include "runtime/device/host_device.h"

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "runtime/base/host_memory.h"

namespace tierserve {
namespace device_internal {

absl::StatusOr<uint8_t*> AllocateHostMemory(int64_t bytes) {
  uint8_t* p = AllocateHostBytes(bytes);
  if (p == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot allocate ", bytes, " bytes of host memory"));
  }
  return p;
}

void FreeHostMemory(uint8_t* data, int64_t bytes) { FreeHostBytes(data, bytes); }

// Completes when the worker reaches it; carries the stream's first error.
class HostCopyStream::HostEvent : public Event {
 public:
  absl::Status Wait() override {
    done_.WaitForNotification();
    return status_;
  }
  bool Done() const override { return done_.HasBeenNotified(); }
  void Complete(absl::Status status) {
    status_ = std::move(status);
    done_.Notify();  // publishes status_ to waiters
  }

 private:
  absl::Notification done_;
  absl::Status status_;
};

HostCopyStream::HostCopyStream(std::optional<CopyPacing> pacing)
    : pacing_(pacing), prev_end_(Clock::now()), worker_([this] { WorkerLoop(); }) {}

HostCopyStream::~HostCopyStream() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  worker_.join();
}

void HostCopyStream::Push(Item item) {
  item.queued = Clock::now();
  absl::MutexLock lock(&mu_);
  queue_.push_back(std::move(item));
}

void HostCopyStream::Copy(const void* src, void* dst, int64_t bytes) {
  Item item;
  item.src = src;
  item.dst = dst;
  item.bytes = bytes;
  Push(std::move(item));
}

void HostCopyStream::Enqueue(std::function<absl::Status()> task) {
  Item item;
  item.task = std::move(task);
  Push(std::move(item));
}

std::shared_ptr<Event> HostCopyStream::Record() {
  auto event = std::make_shared<HostEvent>();
  Item item;
  item.event = event;
  Push(std::move(item));
  return event;
}

void HostCopyStream::WorkerLoop() {
  for (;;) {
    Item item;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stop_ || !queue_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (queue_.empty()) return;  // stopping, and everything queued has run
      item = std::move(queue_.front());
      queue_.pop_front();
    }
    Run(item);
  }
}

void HostCopyStream::Run(Item& item) {
  if (item.event != nullptr) {
    item.event->Complete(first_error_);
    return;
  }
  if (item.task) {
    absl::Status st = item.task();
    if (!st.ok() && first_error_.ok()) first_error_ = std::move(st);
    prev_end_ = Clock::now();
    return;
  }
  if (item.bytes > 0) std::memcpy(item.dst, item.src, static_cast<size_t>(item.bytes));
  if (!pacing_.has_value()) return;
  double seconds = pacing_->latency_seconds;
  if (pacing_->bandwidth_bytes_per_second > 0) {
    seconds += static_cast<double>(item.bytes) / pacing_->bandwidth_bytes_per_second;
  }
  const Clock::time_point start = std::max(item.queued, prev_end_);
  const Clock::time_point end =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  std::this_thread::sleep_until(end);
  prev_end_ = end;
}

}  // namespace device_internal
}  // namespace tierserve
