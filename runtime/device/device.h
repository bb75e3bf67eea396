// The device layer: one interface over the places weights and KV blocks can
// live and the math can run — the host (`cpu`), a CUDA GPU (`cuda:N`) and a
// simulated accelerator (`sim:N`, for machines without a GPU).
//
//   Device      capacity, allocation and memory accounting per kind
//   Buffer      RAII bytes on one device, counted under one MemoryKind
//   CopyStream  asynchronous copies that run in the order they were queued
//   Event       the completion of everything queued on a stream before it
//
// `sim:N` has memory of its own with a hard capacity and a copy engine of set
// bandwidth and latency on its own thread; its memory is host memory, so the
// CPU kernels run on its buffers. What the streamer and the planner do on a
// GPU is what they are tested doing on `sim`.
//
// Thread-safety: Device and CopyStream methods are safe to call from any
// thread; a Buffer is owned by one caller.
#ifndef TIERSERVE_RUNTIME_DEVICE_DEVICE_H_
#define TIERSERVE_RUNTIME_DEVICE_DEVICE_H_

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace tierserve {

enum class DeviceKind { kCpu, kSim, kCuda };

// What a device's bytes are for; the metrics and the planner read these.
enum class MemoryKind { kWeights, kStaging, kKv, kScratch };
inline constexpr int kMemoryKinds = 4;
// "weights", "staging", "kv", "scratch".
const char* MemoryKindName(MemoryKind kind);

struct MemoryUsage {
  std::array<int64_t, kMemoryKinds> bytes{};  // allocated, by MemoryKind
  int64_t capacity = -1;                      // bytes; -1 when unbounded/unknown
  int64_t total() const {
    int64_t t = 0;
    for (int64_t b : bytes) t += b;
    return t;
  }
};

class Device;

// Bytes on one device, freed (and uncounted) on destruction. Move-only.
// REQUIRES: destroyed before the device it came from.
class Buffer {
 public:
  Buffer() = default;
  ~Buffer();
  Buffer(Buffer&& other) noexcept;
  Buffer& operator=(Buffer&& other) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  // Host-addressable for cpu and sim; a device pointer for cuda.
  uint8_t* data() const { return data_; }
  int64_t size() const { return size_; }
  MemoryKind kind() const { return kind_; }
  Device* device() const { return device_; }
  bool empty() const { return data_ == nullptr; }

 private:
  friend class Device;
  Buffer(Device* device, uint8_t* data, int64_t size, MemoryKind kind)
      : device_(device), data_(data), size_(size), kind_(kind) {}
  void Reset();

  Device* device_ = nullptr;
  uint8_t* data_ = nullptr;
  int64_t size_ = 0;
  MemoryKind kind_ = MemoryKind::kWeights;
};

// Fires when the work queued on a stream before it has finished.
class Event {
 public:
  virtual ~Event() = default;
  // Blocks until done; returns the first error of the work it covers.
  virtual absl::Status Wait() = 0;
  virtual bool Done() const = 0;
};

// Work queued here runs asynchronously, one item after another, in the order
// it was queued.
//
// Errors are sticky: once a task has failed, every event recorded after it
// on the stream reports that first error (events recorded before it do not).
// Later work still runs, so each item queued runs exactly once.
class CopyStream {
 public:
  // Runs the work still queued, then returns; events already recorded are
  // done afterwards.
  virtual ~CopyStream() = default;
  // Copies `bytes` from `src` to `dst`; either may be host memory or this
  // stream's device memory. Both must stay valid until an event recorded
  // after it is done.
  virtual void Copy(const void* src, void* dst, int64_t bytes) = 0;
  // Runs `task` on the stream's thread in queue order (a disk read into host
  // staging before its copy to the device); its error fails later events.
  virtual void Enqueue(std::function<absl::Status()> task) = 0;
  // An event for everything queued so far.
  virtual std::shared_ptr<Event> Record() = 0;
};

class Device {
 public:
  virtual ~Device() = default;

  DeviceKind kind() const { return kind_; }
  int index() const { return index_; }
  // "cpu", "sim:0", "cuda:0".
  std::string name() const;
  // True when host code (the CPU kernels) can read and write its buffers.
  virtual bool host_addressable() const = 0;

  // `bytes` aligned to 64, counted under `kind`. ResourceExhausted, naming the
  // device, the request and what is in use by kind, past the capacity; a
  // refused request changes nothing. The contents are uninitialized. Zero
  // bytes give a Buffer of size 0 with no data (empty()), counted as nothing;
  // negative bytes are InvalidArgument.
  absl::StatusOr<Buffer> Allocate(int64_t bytes, MemoryKind kind);
  // A consistent snapshot: the bytes of every kind read at one instant.
  MemoryUsage usage() const;

  // A new stream whose copies run on this device's copy engine.
  virtual std::unique_ptr<CopyStream> NewCopyStream() = 0;

 protected:
  Device(DeviceKind kind, int index, int64_t capacity);
  virtual absl::StatusOr<uint8_t*> RawAllocate(int64_t bytes) = 0;
  virtual void RawFree(uint8_t* data, int64_t bytes) = 0;

 private:
  friend class Buffer;
  void Free(uint8_t* data, int64_t bytes, MemoryKind kind);

  DeviceKind kind_;
  int index_;
  mutable absl::Mutex mu_;
  // The capacity and the bytes of live buffers by MemoryKind. Allocate
  // reserves here before it allocates, so two callers racing for the last
  // bytes cannot both succeed.
  MemoryUsage usage_ ABSL_GUARDED_BY(mu_);
};

// The host. Capacity unbounded (the planner reads max_memory instead); copies
// are memcpy on the stream's own thread.
std::unique_ptr<Device> NewCpuDevice();

// The process's host device: one for every model, so its accounting is the
// one truth the metrics read. Never destroyed.
Device* HostDevice();

struct SimDeviceOptions {
  int64_t capacity_bytes = int64_t{1} << 30;
  double bandwidth_bytes_per_second = 16e9;  // the link, e.g. PCIe 4.0 x16 ~ 25e9
  double latency_seconds = 10e-6;            // per copy
};
// `sim:index`: a copy of n bytes completes latency + n / bandwidth after the
// previous one on the same stream, or after it was queued if later. The
// stream's thread sleeps until then, so an event after the copy fires on the
// simulated schedule. Each stream paces itself alone: two streams of one
// device do not share the bandwidth. Enqueue'd tasks (host work) are not
// paced; a copy after one starts no earlier than the task's end.
// A bandwidth <= 0 means unlimited.
std::unique_ptr<Device> NewSimDevice(int index, const SimDeviceOptions& options);

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_DEVICE_DEVICE_H_
