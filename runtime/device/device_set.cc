#include "runtime/device/device_set.h"

namespace tierserve {

Device* DeviceSet::Sim(int index) {
  absl::MutexLock lock(&mu_);
  std::unique_ptr<Device>& d = sims_[index];
  if (d == nullptr) d = NewSimDevice(index, sim_options_);
  return d.get();
}

std::vector<Device*> DeviceSet::All() {
  std::vector<Device*> all = {host()};
  absl::MutexLock lock(&mu_);
  for (const auto& [index, d] : sims_) all.push_back(d.get());
  return all;
}

}  // namespace tierserve
