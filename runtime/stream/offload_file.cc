#include "runtime/stream/offload_file.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "runtime/base/aligned_bytes.h"

namespace tierserve {
namespace {

std::string Reason(int err) { return std::strerror(err); }

}  // namespace

absl::StatusOr<std::unique_ptr<OffloadFile>> OffloadFile::Create(const std::string& path) {
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    const int err = errno;
    return absl::Status(err == ENOENT || err == ENOTDIR ? absl::StatusCode::kNotFound
                                                         : absl::StatusCode::kPermissionDenied,
                        absl::StrCat("cannot create the offload file ", path, ": ", Reason(err)));
  }
  // Truncating a file another process streams from would fail its requests:
  // the lock says whose it is.
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    close(fd);
    return absl::FailedPreconditionError(
        absl::StrCat("the offload file ", path, " is in use by another server or model (",
                     err == EWOULDBLOCK ? "it holds the lock" : Reason(err),
                     "); give each server its own offload_folder"));
  }
  if (ftruncate(fd, 0) != 0) {
    const int err = errno;
    close(fd);
    return absl::PermissionDeniedError(
        absl::StrCat("cannot truncate the offload file ", path, ": ", Reason(err)));
  }
  return std::unique_ptr<OffloadFile>(new OffloadFile(path, fd));
}

OffloadFile::~OffloadFile() { close(fd_); }

absl::StatusOr<int64_t> OffloadFile::Append(const void* data, int64_t bytes,
                                            int64_t alignment) {
  const int64_t offset = AlignUp(size_, alignment);
  const auto* p = static_cast<const uint8_t*>(data);
  int64_t done = 0;
  while (done < bytes) {
    const ssize_t n = pwrite(fd_, p + done, static_cast<size_t>(bytes - done), offset + done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : ENOSPC;
      return absl::ResourceExhaustedError(absl::StrCat("cannot write ", bytes,
                                                       " bytes to the offload file ", path_,
                                                       " at offset ", offset, ": ", Reason(err)));
    }
    done += n;
  }
  size_ = offset + bytes;
  return offset;
}

absl::Status OffloadFile::Read(int64_t offset, int64_t bytes, void* out) const {
  auto* p = static_cast<uint8_t*>(out);
  int64_t done = 0;
  while (done < bytes) {
    const ssize_t n = pread(fd_, p + done, static_cast<size_t>(bytes - done), offset + done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return absl::DataLossError(absl::StrCat("offload file ", path_, ": reading bytes [", offset,
                                              ", ", offset + bytes, ") failed: ",
                                              Reason(errno)));
    }
    if (n == 0) {
      return absl::DataLossError(absl::StrCat(
          "offload file ", path_, ": bytes [", offset, ", ", offset + bytes,
          ") are missing (the file ends at ", offset + done,
          "; it was truncated or replaced after load)"));
    }
    done += n;
  }
  return absl::OkStatus();
}

}  // namespace tierserve
