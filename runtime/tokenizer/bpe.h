// Merge-rank byte-pair encoding of one pre-token.
#ifndef TIERSERVE_RUNTIME_TOKENIZER_BPE_H_
#define TIERSERVE_RUNTIME_TOKENIZER_BPE_H_

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

namespace tierserve {

// Encodes pre-tokens (raw bytes) into token ids: start from one symbol per
// byte (its byte-level character) and repeatedly merge the adjacent pair of
// lowest merge rank, leftmost first, as HF's BPE model does. Bytes whose
// character is not in the vocabulary are dropped (HF's behaviour without an
// unknown token).
//
// Immutable after Build; Encode is const and safe to call concurrently.
class BpeModel {
 public:
  // `tokens`: id -> byte-level token text. `merges`: pairs of token texts,
  // highest priority first; each side and their concatenation must be
  // tokens. A pair listed twice keeps its last rank, as in HF.
  // `ignore_merges`: a pre-token whose byte-level text is a token is emitted
  // whole.
  static absl::StatusOr<BpeModel> Build(
      const std::vector<std::string>& tokens,
      const std::vector<std::pair<std::string, std::string>>& merges, bool ignore_merges);

  // Appends the ids of `piece` (raw bytes) to `ids`.
  void Encode(std::string_view piece, std::vector<int32_t>* ids) const;

  // The id of a byte-level token text, or -1.
  int32_t Find(std::string_view token_text) const;

 private:
  struct Merge {
    int32_t rank;
    int32_t new_id;
  };

  static uint64_t PairKey(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) |
           static_cast<uint32_t>(right);
  }

  absl::flat_hash_map<std::string, int32_t> ids_;
  absl::flat_hash_map<uint64_t, Merge> merges_;
  std::array<int32_t, 256> byte_ids_{};  // id of each byte's character, or -1
  bool ignore_merges_ = false;
};

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_TOKENIZER_BPE_H_
