#include "server/small_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

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
  // One byte more than allowed, to tell "exactly the limit" from "over it".
  std::string text(static_cast<size_t>(max_bytes) + 1, '\0');
  size_t got = 0;
  while (got < text.size()) {
    const ssize_t n = read(fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      close(fd);
      return absl::DataLossError(absl::StrCat(context, path, ": cannot read the ", kind.noun, ": ",
                                              std::strerror(err)));
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  close(fd);
  if (static_cast<int64_t>(got) > max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(context, path, ": the file is larger than ",
                                                   max_bytes, " bytes; expected ", kind.expected));
  }
  text.resize(got);
  return text;
}

}  // namespace tierserve
