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
#include "runtime/format/weight_store.h"

namespace tierserve {

// Opens `path`: a `.safetensors` file, or a folder holding either
// `model.safetensors` or `model.safetensors.index.json` and its shards.
absl::StatusOr<std::unique_ptr<WeightStore>> OpenSafetensors(const std::string& path);

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_FORMAT_SAFETENSORS_H_
