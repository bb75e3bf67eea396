// Fuzzes the GGUF reader (runtime/format/gguf_parser.cc) through
// GgufFile::FromBytes, then everything the loader reads from a parsed file:
// the typed metadata accessors on every key, each tensor dequantized to fp32
// (ReadAsF32), the model config (ReadGgufConfig) and the tokenizer
// (Tokenizer::FromGguf) with a short encode/decode.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "runtime/format/gguf.h"
#include "runtime/format/weight_store.h"
#include "runtime/model/model_config.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/fuzz/fuzz_support.h"

namespace tierserve {
namespace {

// Tensors above this many elements are not dequantized: the output buffer
// is the harness's allocation, not the parser's.
constexpr int64_t kMaxElementsToRead = int64_t{1} << 20;

void ReadEveryKey(const GgufFile& g) {
  for (const auto& [key, value] : g.metadata()) {
    (void)g.GetUint(key);
    (void)g.GetInt(key);
    (void)g.GetFloat(key);
    (void)g.GetBool(key);
    (void)g.GetString(key);
    (void)g.GetStringArray(key);
    (void)g.GetFloatArray(key);
    (void)g.GetIntArray(key);
  }
}

void ReadEveryTensor(const GgufFile& g, absl::Span<const uint8_t> file) {
  for (const std::string& name : g.Names()) {
    const TensorView* t = g.Find(name);
    if (t == nullptr) fuzz::InvariantFailed("a name from Names() is not found");
    // Compared as offsets: a pointer past the end of the input is already UB.
    if (t->data < file.data() ||
        static_cast<uint64_t>(t->data - file.data()) > file.size() ||
        t->nbytes > file.size() - static_cast<uint64_t>(t->data - file.data())) {
      fuzz::InvariantFailed("a tensor's bytes lie outside the file");
    }
    const int64_t n = t->NumElements();
    if (n < 0) fuzz::InvariantFailed("a tensor has a negative element count");
    if (n > kMaxElementsToRead) continue;
    std::vector<float> out(static_cast<size_t>(n));
    (void)ReadAsF32(*t, out.data(), n);
  }
}

}  // namespace
}  // namespace tierserve

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tierserve;
  absl::StatusOr<std::unique_ptr<GgufFile>> f =
      GgufFile::FromBytes(absl::MakeConstSpan(data, size), "fuzz.gguf");
  fuzz::Report("GgufFile::FromBytes", f.status());
  if (!f.ok()) return 0;
  const GgufFile& g = **f;
  ReadEveryKey(g);
  ReadEveryTensor(g, absl::MakeConstSpan(data, size));
  fuzz::Report("ReadGgufConfig", ReadGgufConfig(g).status());
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = Tokenizer::FromGguf(g);
  fuzz::Report("Tokenizer::FromGguf", tok.status());
  if (tok.ok()) {
    const std::vector<int32_t> ids = (*tok)->Encode("Hello, world! 123 <|im_start|> ünï", true);
    for (int32_t id : ids) {
      if (id < 0 || id >= (*tok)->vocab_size()) {
        fuzz::InvariantFailed("Encode gave an id outside the vocabulary");
      }
    }
    (void)(*tok)->Decode(ids);
  }
  return 0;
}
