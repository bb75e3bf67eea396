// Reading a whole file that must be small: a config, a key, /proc/meminfo, a
// cgroup's memory.max. The size is bounded by the caller, and read() is what
// finds the end: procfs and cgroupfs files report st_size 0, so st_size is
// never consulted. Memory grows with what is read, not with the bound.
//
// Thread-safety: free functions with no shared state.
#ifndef TIERSERVE_RUNTIME_BASE_BOUNDED_READ_H_
#define TIERSERVE_RUNTIME_BASE_BOUNDED_READ_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tierserve {

// The whole of the open file `fd`, from its current offset to its end, if that
// is at most `max_bytes` long; one byte more is read to tell "exactly the
// limit" from "over it". read() is retried on EINTR.
//
// Takes ownership of `fd`: it is closed on every path, success or error.
// `path` and `what` are for messages only. Errors:
//   - longer than `max_bytes`: "<path>: longer than <max_bytes> bytes",
//     for which IsLongerThanLimit() is true (and for no other error);
//   - read() failed: "<path>: cannot read the <what>: <strerror>", with the
//     code absl::ErrnoToStatus gives the errno.
// REQUIRES: max_bytes >= 0 (a negative bound is InvalidArgument).
absl::StatusOr<std::string> ReadFdUpTo(int fd, absl::string_view path, int64_t max_bytes,
                                       absl::string_view what = "file");

// Opens `path` read-only and reads it as ReadFdUpTo does. A failed open is
// "<path>: cannot open the file: <strerror>", with the errno's code: a file
// that does not exist is NotFound.
absl::StatusOr<std::string> ReadFileUpTo(const std::string& path, int64_t max_bytes);

// True for the error ReadFdUpTo / ReadFileUpTo return for a file longer than
// the bound, false for every other status (OK included).
bool IsLongerThanLimit(const absl::Status& status);

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_BASE_BOUNDED_READ_H_
