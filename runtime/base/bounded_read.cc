#include "runtime/base/bounded_read.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace tierserve {
namespace {

// Marks the "longer than the bound" error, so that a caller can tell it from a
// read error by more than its code (absl::ErrnoToStatus maps ERANGE and
// EOVERFLOW to OutOfRange too).
constexpr absl::string_view kLongerThanLimitPayload = "tierserve/bounded_read/longer_than_limit";

// Most files read this way fit in the first buffer; a larger one doubles it.
constexpr size_t kFirstBufferBytes = 4096;

}  // namespace

absl::StatusOr<std::string> ReadFdUpTo(int fd, absl::string_view path, int64_t max_bytes,
                                       absl::string_view what) {
  if (max_bytes < 0) {
    ::close(fd);
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": a read bound of ", max_bytes, " bytes; expected 0 or more"));
  }
  // One byte past the bound tells a file that fits from one that does not.
  const size_t wanted = static_cast<size_t>(max_bytes) + 1;
  std::string bytes(std::min(wanted, kFirstBufferBytes), '\0');
  size_t size = 0;
  while (true) {
    if (size == bytes.size()) {
      if (size == wanted) break;
      bytes.resize(std::min(wanted, 2 * size));
    }
    const ssize_t n = ::read(fd, bytes.data() + size, bytes.size() - size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return absl::ErrnoToStatus(err, absl::StrCat(path, ": cannot read the ", what));
    }
    if (n == 0) break;
    size += static_cast<size_t>(n);
  }
  ::close(fd);
  if (size > static_cast<size_t>(max_bytes)) {
    absl::Status status =
        absl::OutOfRangeError(absl::StrCat(path, ": longer than ", max_bytes, " bytes"));
    status.SetPayload(kLongerThanLimitPayload, absl::Cord(absl::StrCat(max_bytes)));
    return status;
  }
  bytes.resize(size);
  return bytes;
}

absl::StatusOr<std::string> ReadFileUpTo(const std::string& path, int64_t max_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat(path, ": cannot open the file"));
  return ReadFdUpTo(fd, path, max_bytes);
}

bool IsLongerThanLimit(const absl::Status& status) {
  return status.GetPayload(kLongerThanLimitPayload).has_value();
}

}  // namespace tierserve
