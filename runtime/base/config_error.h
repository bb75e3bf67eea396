// One-line configuration errors, shared by the config reader (server/) and
// the placement code that checks a config against a model (runtime/):
//   <file>: <key path>: <what was wrong>; <what is allowed>
#ifndef TIERSERVE_RUNTIME_BASE_CONFIG_ERROR_H_
#define TIERSERVE_RUNTIME_BASE_CONFIG_ERROR_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace tierserve {

// "<source>: <key_path>: <what>" as InvalidArgument; an empty source or key
// path is left out.
absl::Status ConfigError(absl::string_view source, absl::string_view key_path,
                         absl::string_view what);

// `parent.key`, or `parent["key"]` when the key is not a plain identifier
// (dots, colons, spaces, empty); just the key at the top level.
std::string ChildKeyPath(absl::string_view parent, absl::string_view key);

// Text quoted for a one-line message: control characters escaped, long text cut.
std::string QuoteForMessage(absl::string_view text);

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_BASE_CONFIG_ERROR_H_
