// The devices one process serves on: the host and the simulated
// accelerators, made on first use. One set per process, so every model's
// buffers are counted against the same capacities.
//
// Thread-safety: safe to call from any thread.
#ifndef TIERSERVE_RUNTIME_DEVICE_DEVICE_SET_H_
#define TIERSERVE_RUNTIME_DEVICE_DEVICE_SET_H_

#include <map>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "runtime/device/device.h"

namespace tierserve {

class DeviceSet {
 public:
  // Every `sim:N` gets `sim`'s capacity, bandwidth and latency.
  explicit DeviceSet(SimDeviceOptions sim = {}) : sim_options_(sim) {}

  Device* host() const { return HostDevice(); }
  // `sim:index`, made on first use; the same device on every call.
  Device* Sim(int index);
  const SimDeviceOptions& sim_options() const { return sim_options_; }
  // The host, then every sim:N made so far, by index.
  std::vector<Device*> All();

 private:
  const SimDeviceOptions sim_options_;
  absl::Mutex mu_;
  std::map<int, std::unique_ptr<Device>> sims_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_DEVICE_DEVICE_SET_H_
