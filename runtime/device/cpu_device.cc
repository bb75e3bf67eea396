// The host as a device: aligned host memory, unbounded, and copy streams that
// memcpy on a thread of their own.
#include <memory>
#include <optional>

#include "runtime/device/device.h"
#include "runtime/device/host_device.h"

namespace tierserve {
namespace {

class CpuDevice : public Device {
 public:
  CpuDevice() : Device(DeviceKind::kCpu, /*index=*/0, /*capacity=*/-1) {}

  bool host_addressable() const override { return true; }

  std::unique_ptr<CopyStream> NewCopyStream() override {
    return std::make_unique<device_internal::HostCopyStream>(std::nullopt);
  }

 protected:
  absl::StatusOr<uint8_t*> RawAllocate(int64_t bytes) override {
    return device_internal::AllocateHostMemory(bytes);
  }
  void RawFree(uint8_t* data, int64_t bytes) override {
    device_internal::FreeHostMemory(data, bytes);
  }
};

}  // namespace

std::unique_ptr<Device> NewCpuDevice() { return std::make_unique<CpuDevice>(); }

}  // namespace tierserve
