// `cuda:N`: the device layer (runtime/device/device.h) on a CUDA GPU, through
// the CUDA runtime API. Built only when the toolkit is found
// (tierserve_device_cuda); the rest of the runtime does not depend on it.
//
//   cuda:N          device memory from cudaMalloc, counted against the
//                   device's total memory; not host-addressable
//   pinned host     page-locked host memory (cudaHostAlloc): the staging a
//                   GPU streams from, so its copies are truly asynchronous
//
// A cuda:N copy stream is a CUDA stream. Copies are cudaMemcpyAsync with
// cudaMemcpyDefault: unified addressing tells host from device memory, so one
// Copy serves host->device, device->host and device->device. A copy from or
// to pageable (not pinned) host memory is correct but may block the caller
// until the work ahead of it on the stream is done, while the runtime stages
// it: do not queue one while a task ahead of it waits for the caller.
//
// Enqueue'd tasks run in stream order on a thread of the CUDA runtime
// (cudaLaunchHostFunc). A task must not call the CUDA API (the runtime forbids
// it in host functions) nor wait for CUDA work that is not ahead of it on this
// stream. While it runs, nothing after it on the stream starts, and the
// runtime may run the host functions of every stream in the process one after
// another: a long task (a disk read) can delay the tasks of other streams.
// A task's captures are destroyed on a caller's thread (at a later Copy,
// Enqueue or Record, or when the stream is destroyed), never on the runtime's,
// so a task may own buffers of a CUDA device.
//
// Ordering and errors follow the CopyStream contract of device.h, the one the
// sim device is tested against (runtime/device/device_test.cc): items run in
// queue order; the first failing task's status is reported by every event
// recorded after it and by none recorded before; later work still runs. An
// item the runtime refuses to queue (cudaMemcpyAsync or cudaLaunchHostFunc
// failing) fails at its position the same way; a refused task does not run.
// If the stream itself could not be created, nothing queued on it runs and
// every event reports that error. An error of the device (cudaEventSynchronize
// failing) is what Wait() returns for an event that meets it.
//
// Thread-safety: as device.h. Device and CopyStream methods may be called
// from any thread; items queued from several threads keep each thread's
// order. Calls that need a device make it the calling thread's current CUDA
// device (cudaSetDevice) and leave it so.
#ifndef TIERSERVE_RUNTIME_DEVICE_CUDA_CUDA_DEVICE_H_
#define TIERSERVE_RUNTIME_DEVICE_CUDA_CUDA_DEVICE_H_

#include <memory>

#include "absl/status/statusor.h"
#include "runtime/device/device.h"

namespace tierserve {

// The number of CUDA devices; 0 when the runtime reports an error (no driver,
// a driver too old for the runtime, no device).
int CudaDeviceCount();

// `cuda:index`: DeviceKind::kCuda, capacity the device's total memory
// (cudaMemGetInfo), buffers in device memory (cudaMalloc; 256-byte aligned).
// A cudaMalloc failure within the capacity (memory held by another process or
// context) is an error naming the device and the request, and changes no
// accounting. Unavailable, naming `cuda:index` and the CUDA error, when there
// is no such device or it cannot be initialized.
// Buffers and streams must be destroyed before the device.
absl::StatusOr<std::unique_ptr<Device>> NewCudaDevice(int index);

// Page-locked host memory, the staging a GPU device streams from:
// DeviceKind::kCpu, unbounded (-1; the planner reads max_memory), host
// addressable, buffers from cudaHostAlloc (an error status when the runtime
// refuses, e.g. with no driver). Its copy streams are the host's (memcpy on a
// thread of their own); copies between it and a GPU go on the GPU's stream.
// The memory is page-locked for every CUDA context (cudaHostAllocPortable),
// so one staging pool serves several GPUs.
std::unique_ptr<Device> NewCudaPinnedHostDevice();

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_DEVICE_CUDA_CUDA_DEVICE_H_
