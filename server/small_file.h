// Reading the small files an operator points the daemon at (the config, TLS
// certificates and keys, API keys, passwords): regular files only, opened
// without blocking (a FIFO or device named by mistake cannot hang start-up),
// read up to a size limit.
#ifndef TIERSERVE_SERVER_SMALL_FILE_H_
#define TIERSERVE_SERVER_SMALL_FILE_H_

#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"

namespace tierserve {

// What the file is, for messages: "cannot open the <noun>: ...; expected <expected>".
struct SmallFileKind {
  absl::string_view noun;      // e.g. "config file", "TLS certificate"
  absl::string_view expected;  // e.g. "a YAML config file", "a PEM certificate"
};

// The whole file at `path`, at most `max_bytes` long. Every error begins with
// `context` (e.g. "tierserve.yaml: server.tls.cert_file: ", or empty), then
// the path.
absl::StatusOr<std::string> ReadSmallFile(const std::string& path, int64_t max_bytes,
                                          absl::string_view context, SmallFileKind kind);

}  // namespace tierserve

#endif  // TIERSERVE_SERVER_SMALL_FILE_H_
