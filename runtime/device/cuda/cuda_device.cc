#include "runtime/device/cuda/cuda_device.h"

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "runtime/device/host_device.h"

namespace tierserve {
namespace {

// OK for cudaSuccess; otherwise "<call>: <error name>: <description>" with a
// code for what the caller can do: out of memory is ResourceExhausted, a
// missing driver or device Unavailable, anything else Internal. A failed call
// also leaves its error in the thread's last-error slot; it is cleared here so
// a later cudaGetLastError (a kernel launch check) does not take it for its
// own.
absl::Status CudaStatus(cudaError_t error, absl::string_view call) {
  if (error == cudaSuccess) return absl::OkStatus();
  (void)cudaGetLastError();
  std::string message =
      absl::StrCat(call, ": ", cudaGetErrorName(error), ": ", cudaGetErrorString(error));
  switch (error) {
    case cudaErrorMemoryAllocation:
      return absl::ResourceExhaustedError(std::move(message));
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorInvalidDevice:
      return absl::UnavailableError(std::move(message));
    default:
      return absl::InternalError(std::move(message));
  }
}

absl::Status SetDevice(int index) { return CudaStatus(cudaSetDevice(index), "cudaSetDevice"); }

using Task = std::function<absl::Status()>;

// What a stream shares with the host functions it launches and with its
// events, which may outlive it.
//
// Every item queued on a stream gets a position, in queue order. A failure is
// kept with its position, and the earliest position's failure is the one
// kept: tasks fail in stream order, but a refused launch is known at once,
// possibly before a task ahead of it has run. An event at position p (covering
// the items before p) reports the kept failure if it is before p; once the
// event has completed, every item before p has run or been refused, so the
// answer is final.
class StreamShared {
 public:
  // The failure of the item at `position`.
  void Fail(int64_t position, absl::Status status) {
    absl::MutexLock lock(&mu_);
    if (first_error_.ok() || position < failed_at_) {
      failed_at_ = position;
      first_error_ = std::move(status);
    }
  }

  // The first failure of the items before `position`, or OK.
  absl::Status ErrorBefore(int64_t position) const {
    absl::MutexLock lock(&mu_);
    if (!first_error_.ok() && failed_at_ < position) return first_error_;
    return absl::OkStatus();
  }

  // Keeps a task that has run, so its captures are destroyed by a caller, not
  // on the runtime's thread (where destroying a CUDA buffer would call CUDA).
  void Finished(Task task) {
    absl::MutexLock lock(&mu_);
    finished_.push_back(std::move(task));
  }
  std::vector<Task> TakeFinished() {
    absl::MutexLock lock(&mu_);
    return std::exchange(finished_, {});
  }

 private:
  mutable absl::Mutex mu_;
  int64_t failed_at_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status first_error_ ABSL_GUARDED_BY(mu_);
  std::vector<Task> finished_ ABSL_GUARDED_BY(mu_);
};

// One Enqueue'd task on its way through cudaLaunchHostFunc.
struct HostTask {
  Task task;
  std::shared_ptr<StreamShared> shared;
  int64_t position;
};

// Runs on the CUDA runtime's thread, in stream order. No CUDA calls here.
void CUDART_CB RunHostTask(void* data) {
  std::unique_ptr<HostTask> host_task(static_cast<HostTask*>(data));
  absl::Status status = host_task->task();
  if (!status.ok()) host_task->shared->Fail(host_task->position, std::move(status));
  host_task->shared->Finished(std::move(host_task->task));
  // The stream still holds `shared` (its destructor waits for this function
  // to return), so dropping this reference destroys nothing else.
}

// A cudaEvent_t recorded on a stream, plus the stream's failures before it.
class CudaEvent : public Event {
 public:
  CudaEvent(cudaEvent_t event, std::shared_ptr<const StreamShared> shared, int64_t position)
      : event_(event), shared_(std::move(shared)), position_(position) {}
  // An event that could not be made or recorded: done, reporting `status`.
  explicit CudaEvent(absl::Status status) : status_(std::move(status)) {}
  ~CudaEvent() override {
    if (event_ != nullptr) (void)cudaEventDestroy(event_);
  }
  CudaEvent(const CudaEvent&) = delete;
  CudaEvent& operator=(const CudaEvent&) = delete;

  absl::Status Wait() override {
    if (event_ == nullptr) return status_;
    absl::Status synced = CudaStatus(cudaEventSynchronize(event_), "cudaEventSynchronize");
    if (!synced.ok()) return synced;
    return shared_->ErrorBefore(position_);
  }

  bool Done() const override {
    if (event_ == nullptr) return true;
    const cudaError_t query = cudaEventQuery(event_);
    if (query == cudaErrorNotReady) return false;
    // Finished, or failed: either way Wait() no longer blocks (it reports the error).
    if (query != cudaSuccess) (void)cudaGetLastError();
    return true;
  }

 private:
  cudaEvent_t event_ = nullptr;
  std::shared_ptr<const StreamShared> shared_;
  int64_t position_ = 0;
  absl::Status status_;  // when event_ is null
};

// A non-blocking CUDA stream on one device. mu_ serializes the submissions, so
// positions follow the stream's order even with several threads queueing.
class CudaCopyStream : public CopyStream {
 public:
  explicit CudaCopyStream(int device_index) : device_index_(device_index) {
    absl::Status status = SetDevice(device_index_);
    if (status.ok()) {
      status = CudaStatus(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking),
                          "cudaStreamCreateWithFlags");
    }
    if (!status.ok()) {
      stream_ = nullptr;  // never the legacy default stream
      created_ = std::move(status);
    }
  }

  ~CudaCopyStream() override {
    if (stream_ != nullptr) {
      (void)SetDevice(device_index_);
      (void)CudaStatus(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
      (void)CudaStatus(cudaStreamDestroy(stream_), "cudaStreamDestroy");
    }
    // Every host function has returned: the finished tasks die here.
    (void)shared_->TakeFinished();
  }
  CudaCopyStream(const CudaCopyStream&) = delete;
  CudaCopyStream& operator=(const CudaCopyStream&) = delete;

  void Copy(const void* src, void* dst, int64_t bytes) override {
    std::vector<Task> finished = shared_->TakeFinished();  // destroyed after the lock
    absl::MutexLock lock(&mu_);
    const int64_t position = next_position_++;
    if (!created_.ok() || bytes == 0) return;
    if (bytes < 0) {
      shared_->Fail(position, absl::InvalidArgumentError(
                                  absl::StrCat("copy of a negative size (", bytes, " bytes)")));
      return;
    }
    absl::Status status = SetDevice(device_index_);
    if (status.ok()) {
      status = CudaStatus(
          cudaMemcpyAsync(dst, src, static_cast<size_t>(bytes), cudaMemcpyDefault, stream_),
          "cudaMemcpyAsync");
    }
    if (!status.ok()) shared_->Fail(position, std::move(status));
  }

  void Enqueue(Task task) override {
    std::vector<Task> finished = shared_->TakeFinished();
    absl::MutexLock lock(&mu_);
    const int64_t position = next_position_++;
    if (!created_.ok()) return;
    auto host_task = std::make_unique<HostTask>(HostTask{std::move(task), shared_, position});
    absl::Status status = SetDevice(device_index_);
    if (status.ok()) {
      status = CudaStatus(cudaLaunchHostFunc(stream_, RunHostTask, host_task.get()),
                          "cudaLaunchHostFunc");
    }
    if (status.ok()) {
      (void)host_task.release();  // RunHostTask owns it now
    } else {
      shared_->Fail(position, std::move(status));
    }
  }

  std::shared_ptr<Event> Record() override {
    std::vector<Task> finished = shared_->TakeFinished();
    if (!created_.ok()) return std::make_shared<CudaEvent>(created_);
    cudaEvent_t event = nullptr;
    absl::Status status = SetDevice(device_index_);
    if (status.ok()) {
      status = CudaStatus(cudaEventCreateWithFlags(&event, cudaEventDisableTiming),
                          "cudaEventCreateWithFlags");
    }
    if (!status.ok()) return std::make_shared<CudaEvent>(std::move(status));
    int64_t position;
    {
      absl::MutexLock lock(&mu_);
      position = next_position_;
      status = CudaStatus(cudaEventRecord(event, stream_), "cudaEventRecord");
    }
    if (!status.ok()) {
      (void)cudaEventDestroy(event);
      return std::make_shared<CudaEvent>(std::move(status));
    }
    return std::make_shared<CudaEvent>(event, shared_, position);
  }

 private:
  const int device_index_;
  cudaStream_t stream_ = nullptr;
  absl::Status created_;  // the stream's creation; set in the constructor only
  const std::shared_ptr<StreamShared> shared_ = std::make_shared<StreamShared>();

  absl::Mutex mu_;
  int64_t next_position_ ABSL_GUARDED_BY(mu_) = 0;
};

class CudaDevice : public Device {
 public:
  CudaDevice(int index, int64_t capacity) : Device(DeviceKind::kCuda, index, capacity) {}

  bool host_addressable() const override { return false; }

  std::unique_ptr<CopyStream> NewCopyStream() override {
    return std::make_unique<CudaCopyStream>(index());
  }

 protected:
  absl::StatusOr<uint8_t*> RawAllocate(int64_t bytes) override {
    void* data = nullptr;
    absl::Status status = SetDevice(index());
    if (status.ok()) {
      status = CudaStatus(cudaMalloc(&data, static_cast<size_t>(bytes)),
                          absl::StrCat("cudaMalloc(", bytes, " bytes) on ", name()));
    }
    if (!status.ok()) return status;
    return static_cast<uint8_t*>(data);
  }

  // A failing cudaFree means the context is already broken (a sticky error
  // the streams' events report); there is nothing more to do here.
  void RawFree(uint8_t* data, int64_t /*bytes*/) override {
    (void)SetDevice(index());
    (void)CudaStatus(cudaFree(data), "cudaFree");
  }
};

class CudaPinnedHostDevice : public Device {
 public:
  CudaPinnedHostDevice() : Device(DeviceKind::kCpu, /*index=*/0, /*capacity=*/-1) {}

  bool host_addressable() const override { return true; }

  std::unique_ptr<CopyStream> NewCopyStream() override {
    return std::make_unique<device_internal::HostCopyStream>(std::nullopt);
  }

 protected:
  absl::StatusOr<uint8_t*> RawAllocate(int64_t bytes) override {
    void* data = nullptr;
    absl::Status status =
        CudaStatus(cudaHostAlloc(&data, static_cast<size_t>(bytes), cudaHostAllocPortable),
                   absl::StrCat("cudaHostAlloc(", bytes, " bytes)"));
    if (!status.ok()) return status;
    return static_cast<uint8_t*>(data);
  }

  void RawFree(uint8_t* data, int64_t /*bytes*/) override {
    (void)CudaStatus(cudaFreeHost(data), "cudaFreeHost");
  }
};

}  // namespace

int CudaDeviceCount() {
  int count = 0;
  if (!CudaStatus(cudaGetDeviceCount(&count), "cudaGetDeviceCount").ok()) return 0;
  return count;
}

absl::StatusOr<std::unique_ptr<Device>> NewCudaDevice(int index) {
  const std::string name = absl::StrCat("cuda:", index);
  int count = 0;
  absl::Status status = CudaStatus(cudaGetDeviceCount(&count), "cudaGetDeviceCount");
  if (!status.ok()) {
    return absl::UnavailableError(absl::StrCat(name, " is unavailable: ", status.message()));
  }
  if (index < 0 || index >= count) {
    return absl::UnavailableError(absl::StrCat(name, " is unavailable: ", count,
                                               " CUDA device(s) present: ",
                                               cudaGetErrorString(cudaErrorInvalidDevice)));
  }
  size_t free_bytes = 0, total_bytes = 0;
  status = SetDevice(index);
  if (status.ok()) {
    status = CudaStatus(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo");
  }
  if (!status.ok()) {
    return absl::UnavailableError(absl::StrCat(name, " is unavailable: ", status.message()));
  }
  return std::unique_ptr<Device>(
      std::make_unique<CudaDevice>(index, static_cast<int64_t>(total_bytes)));
}

std::unique_ptr<Device> NewCudaPinnedHostDevice() {
  return std::make_unique<CudaPinnedHostDevice>();
}

}  // namespace tierserve
