// The kernel table: per device kind, the entry points the model code runs on
// activations (norms, rotary embedding, residual adds, gated activations, the
// pieces of attention) and what the device can multiply. The architectures
// and the loader ask the table of their execution device instead of calling
// a device's kernels by name, so a device kind adds a table, not branches in
// every model. Weight multiplication itself is the WeightFormat's
// (runtime/quant/): one class per precision, whose kernels are the device's.
//
// `cpu` and `sim:N` share the CPU table (a simulated accelerator's memory is
// host memory). `cuda:N` has no table in this build: KernelsOf says so.
//
// Thread-safety: tables are immutable; the entry points are reentrant.
#ifndef TIERSERVE_RUNTIME_DEVICE_KERNELS_H_
#define TIERSERVE_RUNTIME_DEVICE_KERNELS_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "kernels/common/attention.h"
#include "kernels/common/dtype.h"
#include "runtime/device/device.h"
#include "runtime/placement/precision.h"

namespace tierserve {

struct Kernels {
  // y = x / rms(x) * w over one row of n.
  void (*rms_norm)(const float* x, const float* w, float* y, int64_t n, float eps);
  // y = (x - mean) / std * w + b over one row of n.
  void (*layer_norm)(const float* x, const float* w, const float* b, float* y, int64_t n,
                     float eps);
  // Rotates each of n_heads heads of one row by the position's (cos, sin).
  void (*rope_rotate_half)(float* x, int64_t n_heads, int64_t head_dim, const float* cos_sin);
  // y += x.
  void (*add_in_place)(float* y, const float* x, int64_t n);
  // gate = silu(gate) * up.
  void (*silu_mul)(float* gate, const float* up, int64_t n);
  // x = gelu(x), tanh approximation.
  void (*gelu_tanh)(float* x, int64_t n);
  // Attention (kernels/common/attention.h; kernels/cpu/attention.h says
  // what the arguments are): the partial results of the query heads of
  // num_kv KV heads over one span of positions [0, n); the merge of one
  // head's spans into its output.
  void (*attend_span)(const float* q, int64_t num_kv, int64_t group, int64_t head_dim, float scale,
                      const KvView& kv, int64_t n, int64_t span, float* partials, int64_t partial_stride);
  void (*merge_spans)(const float* partials, int64_t num_spans, int64_t head_dim, float* out);

  // Whether weights of stored element type `type` (GGUF blocks) are
  // multiplied as stored, decoded in registers; otherwise the loader makes
  // them fp32 (or the precision asked for).
  bool (*multiplies_stored)(DType type);
  // Whether a weight in `precision` can be made at load and multiplied here.
  bool (*multiplies)(Precision precision);
};

// The table of `kind`; Unimplemented for cuda in this build.
absl::StatusOr<const Kernels*> KernelsOf(DeviceKind kind);
// The CPU table (cpu and sim:N).
const Kernels& CpuKernels();

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_DEVICE_KERNELS_H_
