#include "runtime/device/kernels.h"

#include "kernels/cpu/attention.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/quant_matmul.h"

namespace tierserve {
namespace {

bool CpuMultiplies(Precision precision) {
  switch (precision) {
    case Precision::kFp32:
    case Precision::kInt8:
    case Precision::kNf4:
    case Precision::kFp4:
    case Precision::kQ8_0:
    case Precision::kQ4_0:
    case Precision::kQ4_1:
      return true;
    default:
      return false;
  }
}

constexpr Kernels kCpu = {
    cpu::RmsNorm,    cpu::LayerNorm, cpu::RopeRotateHalf, cpu::AddInPlace,
    cpu::SiluMul,    cpu::GeluTanh,  cpu::AttendSpan,     cpu::MergeSpans,
    cpu::QuantMatMulSupports, CpuMultiplies,
};

}  // namespace

const Kernels& CpuKernels() { return kCpu; }

absl::StatusOr<const Kernels*> KernelsOf(DeviceKind kind) {
  switch (kind) {
    case DeviceKind::kCpu:
    case DeviceKind::kSim:
      return &kCpu;
    case DeviceKind::kCuda:
      break;
  }
  return absl::UnimplementedError(
      "cuda devices have no kernel table in this build: models compute on the cpu or on sim:N");
}

}  // namespace tierserve
