// Fuzzes the safetensors reader (runtime/format/safetensors.cc) through
// SafetensorsFromBytes: the 8-byte length, the JSON header and the layout
// checks; then every tensor of an accepted file is read as fp32 and checked
// to lie inside the input.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "runtime/format/safetensors.h"
#include "runtime/format/weight_store.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

// Tensors above this many elements are not converted: the output buffer is
// the harness's allocation, not the parser's.
constexpr int64_t kMaxElementsToRead = int64_t{1} << 20;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tierserve;
  const absl::Span<const uint8_t> file = absl::MakeConstSpan(data, size);
  absl::StatusOr<std::unique_ptr<WeightStore>> store =
      SafetensorsFromBytes(file, "fuzz.safetensors");
  fuzz::Report("SafetensorsFromBytes", store.status());
  if (!store.ok()) return 0;
  uint64_t covered = 0;
  for (const std::string& name : (*store)->Names()) {
    const TensorView* t = (*store)->Find(name);
    if (t == nullptr) fuzz::InvariantFailed("a name from Names() is not found");
    if (t->data < file.data() ||
        static_cast<uint64_t>(t->data - file.data()) > file.size() ||
        t->nbytes > file.size() - static_cast<uint64_t>(t->data - file.data())) {
      fuzz::InvariantFailed("a tensor's bytes lie outside the file");
    }
    covered += t->nbytes;
    const int64_t n = t->NumElements();
    if (n < 0) fuzz::InvariantFailed("a tensor has a negative element count");
    if (n > kMaxElementsToRead) continue;
    std::vector<float> out(static_cast<size_t>(n));
    (void)ReadAsF32(*t, out.data(), n);
  }
  // The tensors tile the buffer exactly: together they cannot exceed it.
  if (covered > size) fuzz::InvariantFailed("the tensors cover more bytes than the file holds");
  return 0;
}
