#include "runtime/format/weight_store.h"

#include <cstdint>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/cpu/dequantize.h"
#include "kernels/common/dtype.h"

namespace tierserve {
namespace {

// Integers converted value by value; the source may sit at any alignment.
template <typename T>
void IntegersToF32(const uint8_t* src, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    T v;
    memcpy(&v, src + i * static_cast<int64_t>(sizeof(T)), sizeof(T));
    out[i] = static_cast<float>(v);
  }
}

}  // namespace

absl::Status ReadAsF32(const TensorView& t, float* out, int64_t out_elems) {
  auto where = [&] {
    return absl::StrCat(t.file, ": tensor '", t.name, "' (", std::string(DTypeName(t.dtype)), ")");
  };
  const int64_t n = t.NumElements();
  if (out_elems != n) {
    return absl::InvalidArgumentError(
        absl::StrCat(where(), " has ", n, " elements but the output holds ", out_elems));
  }
  const int64_t blk = BlockElems(t.dtype);
  if (n % blk != 0 || static_cast<uint64_t>(n / blk * BlockBytes(t.dtype)) != t.nbytes) {
    return absl::InvalidArgumentError(absl::StrCat(where(), " has ", n, " elements in ", t.nbytes,
                                                   " bytes, which does not match its dtype"));
  }
  switch (t.dtype) {
    case DType::kF64:
      for (int64_t i = 0; i < n; ++i) {
        double v;
        memcpy(&v, t.data + 8 * i, sizeof v);
        out[i] = static_cast<float>(v);
      }
      return absl::OkStatus();
    case DType::kI8:
      IntegersToF32<int8_t>(t.data, out, n);
      return absl::OkStatus();
    case DType::kU8:
      IntegersToF32<uint8_t>(t.data, out, n);
      return absl::OkStatus();
    case DType::kI16:
      IntegersToF32<int16_t>(t.data, out, n);
      return absl::OkStatus();
    // Every int32 up to 2^24 converts exactly; beyond, fp32 rounds as a cast does.
    case DType::kI32:
      IntegersToF32<int32_t>(t.data, out, n);
      return absl::OkStatus();
    case DType::kI64:
    case DType::kBool:
      return absl::InvalidArgumentError(absl::StrCat(
          where(),
          " cannot be read as fp32: BOOL has no numeric meaning and I64 values may not "
          "convert exactly; read the raw bytes instead"));
    default:
      break;
  }
  if (!CanDequantizeRowF32(t.dtype)) {
    return absl::UnimplementedError(absl::StrCat(where(), " cannot be converted to fp32"));
  }
  DequantizeRowF32(t.dtype, t.data, out, n);
  return absl::OkStatus();
}

}  // namespace tierserve
