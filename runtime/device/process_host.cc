#include "runtime/device/device.h"

namespace tierserve {

Device* HostDevice() {
  static Device* const host = NewCpuDevice().release();
  return host;
}

}  // namespace tierserve
