// Literal matching of added tokens (special tokens such as "<|im_start|>")
// in raw text, before pre-tokenization.
#ifndef TIERSERVE_RUNTIME_TOKENIZER_ADDED_TOKENS_H_
#define TIERSERVE_RUNTIME_TOKENIZER_ADDED_TOKENS_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace tierserve {

// A span of text: either an added token (`id` >= 0) or plain text (`id` == -1).
struct TextSegment {
  std::string_view text;
  int32_t id;
};

// Finds added tokens in text with HF's rule: leftmost match first, and of
// those the longest. A byte trie, so a scan costs O(text length x longest
// token) at worst and about one lookup per byte in practice.
//
// Immutable after construction; Split is const and thread-safe.
class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  // `tokens`: (content, id) pairs; empty contents are ignored.
  explicit AddedTokenMatcher(const std::vector<std::pair<std::string, int32_t>>& tokens);

  bool empty() const { return terminal_.size() <= 1; }

  // Appends the segments of `text` in order: found tokens, and the plain
  // text between them (never empty).
  void Split(std::string_view text, std::vector<TextSegment>* segments) const;

 private:
  static uint64_t EdgeKey(int32_t node, uint8_t byte) {
    return (static_cast<uint64_t>(node) << 8) | byte;
  }
  // The length and id of the longest token starting at text[pos], or {0, -1}.
  std::pair<size_t, int32_t> LongestAt(std::string_view text, size_t pos) const;

  absl::flat_hash_map<uint64_t, int32_t> edges_;  // (node, byte) -> child node
  std::vector<int32_t> terminal_{-1};             // node -> token id ending there, or -1
  bool first_byte_[256] = {};                     // bytes some token starts with
};

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_TOKENIZER_ADDED_TOKENS_H_
