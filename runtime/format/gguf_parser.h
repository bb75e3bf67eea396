// Internal to the GGUF reader: the validated contents of a file, and the
// parser that fills them. GgufFile (gguf.h) is the public face; nothing else
// should include this header.
#ifndef TIERSERVE_RUNTIME_FORMAT_GGUF_PARSER_H_
#define TIERSERVE_RUNTIME_FORMAT_GGUF_PARSER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "runtime/base/mapped_file.h"
#include "runtime/format/gguf.h"
#include "runtime/format/weight_store.h"

namespace tierserve {

struct GgufContents {
  std::unique_ptr<MappedFile> file;  // owns `data` when opened from a path; else null
  const uint8_t* data = nullptr;     // the whole file; every TensorView points into it
  uint64_t size = 0;
  std::string path;
  uint32_t version = 0;
  uint64_t alignment = 32;
  uint64_t data_offset = 0;  // file offset of the tensor data section
  std::map<std::string, GgufValue, std::less<>> metadata;
  std::vector<TensorView> tensors;                   // in file order
  absl::flat_hash_map<std::string, size_t> by_name;  // index into `tensors`
};

// Fills `c` from the bytes [c->data, c->data + c->size); c->path names them
// in messages. On error
// `c` is partly filled and must be discarded.
absl::Status ParseGguf(GgufContents* c);

// "u32", "string", "array", ... for messages; "unknown type N" otherwise.
std::string GgufValueTypeName(uint32_t type);

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_FORMAT_GGUF_PARSER_H_
