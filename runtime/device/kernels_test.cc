#include "runtime/device/kernels.h"

#include "gtest/gtest.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/quant_matmul.h"

namespace tierserve {
namespace {

TEST(KernelsTest, CpuAndSimShareTheCpuTable) {
  for (DeviceKind kind : {DeviceKind::kCpu, DeviceKind::kSim}) {
    absl::StatusOr<const Kernels*> k = KernelsOf(kind);
    ASSERT_TRUE(k.ok()) << k.status();
    EXPECT_EQ(*k, &CpuKernels());
  }
  const Kernels& k = CpuKernels();
  EXPECT_EQ(k.rms_norm, &cpu::RmsNorm);
  EXPECT_EQ(k.layer_norm, &cpu::LayerNorm);
  EXPECT_EQ(k.rope_rotate_half, &cpu::RopeRotateHalf);
  EXPECT_EQ(k.add_in_place, &cpu::AddInPlace);
  EXPECT_EQ(k.silu_mul, &cpu::SiluMul);
  EXPECT_EQ(k.gelu_tanh, &cpu::GeluTanh);
  EXPECT_EQ(k.attend_span, &cpu::AttendSpan);
  EXPECT_EQ(k.merge_spans, &cpu::MergeSpans);
}

TEST(KernelsTest, TheCpuMultipliesWhatItHasKernelsFor) {
  const Kernels& k = CpuKernels();
  for (Precision p : {Precision::kFp32, Precision::kInt8, Precision::kNf4, Precision::kFp4,
                      Precision::kQ8_0, Precision::kQ4_0, Precision::kQ4_1}) {
    EXPECT_TRUE(k.multiplies(p)) << PrecisionName(p);
  }
  for (Precision p : {Precision::kFp16, Precision::kBf16, Precision::kInt8Wo, Precision::kInt4Wo}) {
    EXPECT_FALSE(k.multiplies(p)) << PrecisionName(p);
  }
  for (DType t : {DType::kQ8_0, DType::kQ4_0, DType::kQ4_1, DType::kQ4_K, DType::kF32}) {
    EXPECT_EQ(k.multiplies_stored(t), cpu::QuantMatMulSupports(t));
  }
  EXPECT_TRUE(k.multiplies_stored(DType::kQ4_1));
  EXPECT_FALSE(k.multiplies_stored(DType::kQ6_K));
}

TEST(KernelsTest, CudaHasNoTableInThisBuild) {
  absl::StatusOr<const Kernels*> k = KernelsOf(DeviceKind::kCuda);
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.status().code(), absl::StatusCode::kUnimplemented);
}

}  // namespace
}  // namespace tierserve
