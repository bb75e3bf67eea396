#include "kernels/cpu/dequantize.h"

#include <bit>
#include <cstdint>
#include <cstring>
#include <limits>

#include "kernels/common/gguf_blocks.h"
#include "kernels/common/half.h"
#include "kernels/common/dtype.h"

namespace tierserve {
namespace {

// Plain types are copied as the bytes lie; files store them little-endian.
static_assert(std::endian::native == std::endian::little);

static_assert(BlockElems(DType::kQ8_0) == kGgufQK && BlockBytes(DType::kQ8_0) == kQ8_0BlockBytes);
static_assert(BlockElems(DType::kQ4_0) == kGgufQK && BlockBytes(DType::kQ4_0) == kQ4_0BlockBytes);
static_assert(BlockElems(DType::kQ4_1) == kGgufQK && BlockBytes(DType::kQ4_1) == kQ4_1BlockBytes);
static_assert(BlockElems(DType::kQ5_0) == kGgufQK && BlockBytes(DType::kQ5_0) == kQ5_0BlockBytes);
static_assert(BlockElems(DType::kQ5_1) == kGgufQK && BlockBytes(DType::kQ5_1) == kQ5_1BlockBytes);
static_assert(BlockElems(DType::kQ4_K) == kGgufQK_K && BlockBytes(DType::kQ4_K) == kQ4_KBlockBytes);
static_assert(BlockElems(DType::kQ6_K) == kGgufQK_K && BlockBytes(DType::kQ6_K) == kQ6_KBlockBytes);

template <void (*Block)(const uint8_t*, float*), int kElems, int kBytes>
void Blocks(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n / kElems; ++i) Block(src + i * kBytes, dst + i * kElems);
}

}  // namespace

bool CanDequantizeRowF32(DType type) {
  switch (type) {
    case DType::kF32:
    case DType::kF16:
    case DType::kBF16:
    case DType::kQ8_0:
    case DType::kQ4_0:
    case DType::kQ4_1:
    case DType::kQ5_0:
    case DType::kQ5_1:
    case DType::kQ4_K:
    case DType::kQ6_K:
      return true;
    default:
      return false;
  }
}

void DequantizeRowF32(DType type, const void* src, float* dst, int64_t n) {
  const auto* s = static_cast<const uint8_t*>(src);
  switch (type) {
    case DType::kF32:
      if (n > 0) memcpy(dst, s, static_cast<size_t>(n) * sizeof(float));
      return;
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        memcpy(&h, s + 2 * i, sizeof h);
        dst[i] = F16ToF32(h);
      }
      return;
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t b;
        memcpy(&b, s + 2 * i, sizeof b);
        dst[i] = BF16ToF32(b);
      }
      return;
    case DType::kQ8_0:
      return Blocks<DequantizeBlockQ8_0, kGgufQK, kQ8_0BlockBytes>(s, dst, n);
    case DType::kQ4_0:
      return Blocks<DequantizeBlockQ4_0, kGgufQK, kQ4_0BlockBytes>(s, dst, n);
    case DType::kQ4_1:
      return Blocks<DequantizeBlockQ4_1, kGgufQK, kQ4_1BlockBytes>(s, dst, n);
    case DType::kQ5_0:
      return Blocks<DequantizeBlockQ5_0, kGgufQK, kQ5_0BlockBytes>(s, dst, n);
    case DType::kQ5_1:
      return Blocks<DequantizeBlockQ5_1, kGgufQK, kQ5_1BlockBytes>(s, dst, n);
    case DType::kQ4_K:
      return Blocks<DequantizeBlockQ4_K, kGgufQK_K, kQ4_KBlockBytes>(s, dst, n);
    case DType::kQ6_K:
      return Blocks<DequantizeBlockQ6_K, kGgufQK_K, kQ6_KBlockBytes>(s, dst, n);
    default:
      for (int64_t i = 0; i < n; ++i) dst[i] = std::numeric_limits<float>::quiet_NaN();
      return;
  }
}

}  // namespace tierserve
