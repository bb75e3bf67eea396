// Strict, typed reading of one node of a parsed YAML config file. Every
// problem becomes a one-line error of the form
//   <file>: <key path>: <what was wrong>; <what is allowed>
// where the key path spells how to reach the node (`models[0].quantization.
// load_in_8bit`, `models[0].device_map["model.layers.0-14"]`).
//
// YAML is lenient where a config must not be: quoted text is not a number,
// `yes`/`on` are not booleans, and a key given twice is an error rather than a
// silent pick.
//
// Value type; holds a yaml-cpp node handle (shared with its document).
// Thread-safety: none needed for reads of a document no one mutates.
#ifndef TIERSERVE_SERVER_CONFIG_NODE_H_
#define TIERSERVE_SERVER_CONFIG_NODE_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "runtime/base/config_error.h"
#include "yaml-cpp/yaml.h"

namespace tierserve {

// Parses a byte size: a whole number of bytes, or a number (fractions
// allowed) with a unit: B, KB/MB/GB/TB (powers of 1000), KiB/MiB/GiB/TiB
// (powers of 1024). Fractions of a byte are dropped. On failure returns
// std::nullopt; the value must fit in int64.
std::optional<int64_t> ParseByteSize(absl::string_view text);
// What ParseByteSize accepts, for error messages.
inline constexpr char kByteSizeForms[] =
    "a size like 512MiB, 2GiB, 1.5GB or a number of bytes (units B, KB, MB, GB, TB, KiB, MiB, "
    "GiB, TiB)";

class ConfigNode {
 public:
  ConfigNode(YAML::Node node, std::string source, std::string key_path)
      : node_(std::move(node)), source_(std::move(source)), key_path_(std::move(key_path)) {}

  const YAML::Node& yaml() const { return node_; }
  const std::string& source() const { return source_; }
  const std::string& key_path() const { return key_path_; }

  // "<source>: <key path>: <what>".
  absl::Status Error(absl::string_view what) const;
  // A short description of the value for messages: `"text"`, `a list`, `a map`, `no value`.
  std::string Describe() const;

  bool IsMap() const { return node_.IsMap(); }
  bool IsPlainScalar() const;

  // Checks this is a map whose keys are distinct text and all in `known`;
  // `what` names the map in the error for a non-map ("a map of server settings").
  absl::Status CheckMap(const std::vector<std::string>& known, absl::string_view what) const;
  // Checks this is a map with distinct text keys, and calls `fn(key, value)`
  // for each entry in file order, stopping at the first error.
  absl::Status ForEachEntry(
      absl::string_view what,
      const std::function<absl::Status(const std::string& key, const ConfigNode& value)>& fn) const;

  // The value under `key` of this map, or std::nullopt when the key is absent.
  // REQUIRES: CheckMap succeeded.
  std::optional<ConfigNode> Get(absl::string_view key) const;
  // The list items, or an error if this is not a list.
  absl::StatusOr<std::vector<ConfigNode>> Items(absl::string_view what) const;

  // Non-empty text. `allowed` describes what is expected ("a model name").
  absl::StatusOr<std::string> String(absl::string_view allowed) const;
  // An integer in [lo, hi], written as plain digits.
  absl::StatusOr<int64_t> Int(int64_t lo, int64_t hi) const;
  // true or false (also True/TRUE/False/FALSE; never yes/no/on/off).
  absl::StatusOr<bool> Bool() const;
  // A finite number > 0.
  absl::StatusOr<double> NonNegativeDouble() const;
  // A byte size (see ParseByteSize) in [lo, hi].
  absl::StatusOr<int64_t> ByteSize(int64_t lo, int64_t hi) const;
  // One of `choices`, spelled exactly.
  absl::StatusOr<std::string> OneOf(const std::vector<std::string>& choices) const;

 private:
  YAML::Node node_;
  std::string source_;
  std::string key_path_;
};

}  // namespace tierserve

#endif  // TIERSERVE_SERVER_CONFIG_NODE_H_
