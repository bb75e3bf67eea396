#include "runtime/device/device_set.h"

namespace tierserve {

Device* DeviceSet::Sim(int index) {
  absl::MutexLock lock(&mu_);
  std::unique_ptr<Device>& d = sims_[index];
  if (d == nullptr) d = NewSimDevice(index, sim_options_);
  return d.get();
}

}  // namespace tierserve
