#include "server/small_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "runtime/base/bounded_read.h"

namespace tierserve {

absl::StatusOr<std::string> ReadSmallFile(const std::string& path, int64_t max_bytes,
                                          absl::string_view context, SmallFileKind kind) {
  const int fd = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    return absl::NotFoundError(absl::StrCat(context, path, ": cannot open the ", kind.noun, ": ",
                                            std::strerror(errno), "; expected ", kind.expected));
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return absl::InvalidArgumentError(
        absl::StrCat(context, path, ": not a regular file; expected ", kind.expected));
  }
  // The read's own messages name the path; the context goes in front, and a
  // file over the limit says what was expected instead.
  absl::StatusOr<std::string> text = ReadFdUpTo(fd, path, max_bytes, kind.noun);
  if (IsLongerThanLimit(text.status())) {
    return absl::InvalidArgumentError(absl::StrCat(context, path, ": the file is larger than ",
                                                   max_bytes, " bytes; expected ", kind.expected));
  }
  if (!text.ok()) return absl::DataLossError(absl::StrCat(context, text.status().message()));
  return text;
}

}  // namespace tierserve
