// A whole file mapped read-only into memory. Model readers hand out views
// into it, so tensors are used in place and the page cache is the only copy.
//
// Ownership: the MappedFile owns the mapping; views into data() are valid
// until it is destroyed. The file descriptor is closed right after mapping.
// Files are expected not to shrink while mapped: as with any mapping, reading
// a page past a new, shorter end raises SIGBUS.
// Thread-safety: immutable after Open(); safe to share.
#ifndef TIERSERVE_RUNTIME_BASE_MAPPED_FILE_H_
#define TIERSERVE_RUNTIME_BASE_MAPPED_FILE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace tierserve {

class MappedFile {
 public:
  // Maps the regular file at `path`. An empty file succeeds with size() == 0
  // and data() == nullptr (there is nothing to map). Errors name the path and
  // the operating system's reason.
  static absl::StatusOr<std::unique_ptr<MappedFile>> Open(const std::string& path);

  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile(std::string path, const uint8_t* data, uint64_t size);

  std::string path_;
  const uint8_t* data_;
  uint64_t size_;
};

// Drops the resident pages that lie wholly inside [data, data + bytes) of a
// read-only file mapping, so they stop counting in the process's memory;
// a later read faults them back in from the page cache. For a tensor whose
// bytes were copied or converted and will not be read from the mapping again.
void ReleaseMappedPages(const void* data, uint64_t bytes);

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_BASE_MAPPED_FILE_H_
