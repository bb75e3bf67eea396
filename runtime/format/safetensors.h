// safetensors reader: one file, or a sharded checkpoint through
// `model.safetensors.index.json`. Memory-mapped; tensors are used in place.
// The header is validated as the reference reader does (size limits, JSON,
// dtype sizes, contiguous non-overlapping offsets covering the buffer exactly)
// before any data is touched.
//
// Thread-safety: immutable after Open(); safe to share.
#ifndef TIERSERVE_RUNTIME_FORMAT_SAFETENSORS_H_
#define TIERSERVE_RUNTIME_FORMAT_SAFETENSORS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "runtime/format/weight_store.h"

namespace tierserve {

// Opens `path`: a `.safetensors` file, or a folder holding either
// `model.safetensors` or `model.safetensors.index.json` and its shards.
absl::StatusOr<std::unique_ptr<WeightStore>> OpenSafetensors(const std::string& path);

// The same checks over one `.safetensors` image already in memory; `source`
// names it in messages. The tensors point into `bytes`, which must outlive
// the store.
absl::StatusOr<std::unique_ptr<WeightStore>> SafetensorsFromBytes(absl::Span<const uint8_t> bytes,
                                                                  const std::string& source);

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_FORMAT_SAFETENSORS_H_
