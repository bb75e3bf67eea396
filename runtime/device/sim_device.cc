// `sim:N`: a simulated accelerator. Its memory is host memory behind a hard
// capacity (Device::Allocate enforces it); its copy streams are the host
// streams with a pacing model, so copies take the time the link would.
#include <memory>

#include "runtime/device/device.h"
#include "runtime/device/host_device.h"

namespace tierserve {
namespace {

class SimDevice : public Device {
 public:
  SimDevice(int index, const SimDeviceOptions& options)
      : Device(DeviceKind::kSim, index, options.capacity_bytes),
        pacing_{options.bandwidth_bytes_per_second, options.latency_seconds} {}

  bool host_addressable() const override { return true; }

  std::unique_ptr<CopyStream> NewCopyStream() override {
    return std::make_unique<device_internal::HostCopyStream>(pacing_);
  }

 protected:
  absl::StatusOr<uint8_t*> RawAllocate(int64_t bytes) override {
    return device_internal::AllocateHostMemory(bytes);
  }
  void RawFree(uint8_t* data, int64_t bytes) override {
    device_internal::FreeHostMemory(data, bytes);
  }

 private:
  const device_internal::CopyPacing pacing_;
};

}  // namespace

std::unique_ptr<Device> NewSimDevice(int index, const SimDeviceOptions& options) {
  return std::make_unique<SimDevice>(index, options);
}

}  // namespace tierserve
