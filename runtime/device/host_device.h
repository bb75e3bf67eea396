// Internal to the device layer: what `cpu` and `sim` share. Both keep their
// bytes in host memory and run their streams on a thread of their own; the
// sim stream only adds a pacing model to its copies.
#ifndef TIERSERVE_RUNTIME_DEVICE_HOST_DEVICE_H_
#define TIERSERVE_RUNTIME_DEVICE_HOST_DEVICE_H_

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "runtime/device/device.h"

namespace tierserve {
namespace device_internal {

// `bytes` (> 0) of host memory aligned to kByteAlignment (runtime/base/host_memory.h:
// large sizes straight from the kernel), or ResourceExhausted.
absl::StatusOr<uint8_t*> AllocateHostMemory(int64_t bytes);
void FreeHostMemory(uint8_t* data, int64_t bytes);

// How long a copy occupies a simulated link: latency + bytes / bandwidth.
struct CopyPacing {
  double bandwidth_bytes_per_second = 0;  // <= 0: unlimited
  double latency_seconds = 0;
};

// A CopyStream over host memory: a worker thread runs the queued items in
// order (Copy is memcpy, Enqueue runs the task). With a pacing model, a copy
// queued at time q finishes at max(q, end of the previous item) + latency +
// bytes / bandwidth: the worker does the memcpy, then sleeps until then.
class HostCopyStream : public CopyStream {
 public:
  using Clock = std::chrono::steady_clock;

  explicit HostCopyStream(std::optional<CopyPacing> pacing);
  // Drains the queue and joins the worker.
  ~HostCopyStream() override;
  HostCopyStream(const HostCopyStream&) = delete;
  HostCopyStream& operator=(const HostCopyStream&) = delete;

  void Copy(const void* src, void* dst, int64_t bytes) override;
  void Enqueue(std::function<absl::Status()> task) override;
  std::shared_ptr<Event> Record() override;

 private:
  class HostEvent;
  struct Item {
    // Exactly one of: a copy (bytes >= 0), a task, an event to complete.
    const void* src = nullptr;
    void* dst = nullptr;
    int64_t bytes = -1;
    std::function<absl::Status()> task;
    std::shared_ptr<HostEvent> event;
    Clock::time_point queued;
  };

  void Push(Item item);
  void WorkerLoop();
  // Runs one item on the worker thread.
  void Run(Item& item);

  const std::optional<CopyPacing> pacing_;

  absl::Mutex mu_;
  std::deque<Item> queue_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;

  // Worker-thread state.
  absl::Status first_error_;  // sticky: reported by every later event
  // When the previous copy or task ended: a paced copy's nominal finish (so
  // the worker waking late does not slow the simulated link), a task's real
  // end.
  Clock::time_point prev_end_;

  std::thread worker_;  // last: starts after everything above is initialized
};

}  // namespace device_internal
}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_DEVICE_HOST_DEVICE_H_
