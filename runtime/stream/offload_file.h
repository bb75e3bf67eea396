// The file that holds a model's disk-tier modules: each offloaded module
// group's image, written once at load in its final precision, read back
// whole into a staging buffer each time the group is used. Reads go through
// pread, so the bytes pass through the page cache into the staging buffer
// and never count in the process's resident memory as a mapping would.
//
// Thread-safety: Append on the loading thread only; Read is safe from any
// thread once loading is done.
#ifndef TIERSERVE_RUNTIME_STREAM_OFFLOAD_FILE_H_
#define TIERSERVE_RUNTIME_STREAM_OFFLOAD_FILE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace tierserve {

class OffloadFile {
 public:
  // Creates (or truncates) `path`, readable and writable by the owner only,
  // and holds an exclusive lock on it while open: a second process (or
  // model) given the same path gets FailedPrecondition.
  static absl::StatusOr<std::unique_ptr<OffloadFile>> Create(const std::string& path);
  ~OffloadFile();
  OffloadFile(const OffloadFile&) = delete;
  OffloadFile& operator=(const OffloadFile&) = delete;

  // Writes `bytes` at the next offset aligned to `alignment` (a power of
  // two); returns that offset.
  absl::StatusOr<int64_t> Append(const void* data, int64_t bytes, int64_t alignment);
  // Reads exactly `bytes` at `offset` into `out`. A short read (the file was
  // truncated) or an I/O error names the path, the range and the reason.
  absl::Status Read(int64_t offset, int64_t bytes, void* out) const;

  const std::string& path() const { return path_; }
  int64_t size() const { return size_; }


 private:
  OffloadFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}

  std::string path_;
  int fd_;
  int64_t size_ = 0;
};

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_STREAM_OFFLOAD_FILE_H_
