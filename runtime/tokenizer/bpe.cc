#include "runtime/tokenizer/bpe.h"

#include <queue>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "runtime/tokenizer/byte_level.h"

namespace tierserve {

absl::StatusOr<BpeModel> BpeModel::Build(
    const std::vector<std::string>& tokens,
    const std::vector<std::pair<std::string, std::string>>& merges, bool ignore_merges) {
  BpeModel model;
  model.ignore_merges_ = ignore_merges;
  model.ids_.reserve(tokens.size());
  for (size_t id = 0; id < tokens.size(); ++id) {
    auto [it, inserted] = model.ids_.emplace(tokens[id], static_cast<int32_t>(id));
    if (!inserted) {
      return absl::InvalidArgumentError(
          absl::StrCat("token \"", absl::Utf8SafeCHexEscape(tokens[id]), "\" appears twice, as id ",
                       it->second, " and as id ", id));
    }
  }
  for (int b = 0; b < 256; ++b) {
    model.byte_ids_[b] = model.Find(ByteLevelUtf8(static_cast<uint8_t>(b)));
  }
  model.merges_.reserve(merges.size());
  std::string joined;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [left, right] = merges[rank];
    const int32_t left_id = model.Find(left);
    const int32_t right_id = model.Find(right);
    joined.assign(left).append(right);
    const int32_t new_id = model.Find(joined);
    if (left_id < 0 || right_id < 0 || new_id < 0) {
      const std::string& missing = left_id < 0 ? left : right_id < 0 ? right : joined;
      return absl::InvalidArgumentError(
          absl::StrCat("merge ", rank, " (\"", absl::Utf8SafeCHexEscape(left), "\" \"",
                       absl::Utf8SafeCHexEscape(right), "\") names \"",
                       absl::Utf8SafeCHexEscape(missing), "\", which is not in the vocabulary"));
    }
    model.merges_[PairKey(left_id, right_id)] = Merge{static_cast<int32_t>(rank), new_id};
  }
  return model;
}

int32_t BpeModel::Find(std::string_view token_text) const {
  auto it = ids_.find(absl::string_view(token_text.data(), token_text.size()));
  return it == ids_.end() ? -1 : it->second;
}

void BpeModel::Encode(std::string_view piece, std::vector<int32_t>* ids) const {
  if (piece.empty()) return;
  if (ignore_merges_ || piece.size() == 1) {
    const int32_t whole = Find(BytesToByteLevel(piece));
    if (whole >= 0) {
      ids->push_back(whole);
      return;
    }
  }

  // Symbols form a doubly linked list over a fixed array; a merge folds the
  // right symbol into the left one and marks it dead.
  struct Symbol {
    int32_t id;
    int32_t prev;
    int32_t next;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(piece.size());
  for (char c : piece) {
    const int32_t id = byte_ids_[static_cast<uint8_t>(c)];
    if (id < 0) continue;
    const auto index = static_cast<int32_t>(symbols.size());
    symbols.push_back({id, index - 1, index + 1});
  }
  if (symbols.empty()) return;
  symbols.back().next = -1;

  // Candidate merges, lowest rank first, then leftmost. An entry is stale
  // when either symbol has changed since it was pushed; that is detected by
  // looking the pair up again.
  struct Candidate {
    int32_t rank;
    int32_t pos;
    int32_t new_id;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  auto push_pair = [&](int32_t pos) {
    const int32_t next = symbols[pos].next;
    if (next < 0) return;
    auto it = merges_.find(PairKey(symbols[pos].id, symbols[next].id));
    if (it != merges_.end()) queue.push({it->second.rank, pos, it->second.new_id});
  };
  for (int32_t pos = 0; pos + 1 < static_cast<int32_t>(symbols.size()); ++pos) push_pair(pos);

  constexpr int32_t kDead = -2;
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (left.id == kDead || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    auto it = merges_.find(PairKey(left.id, right.id));
    if (it == merges_.end() || it->second.rank != top.rank) continue;
    left.id = top.new_id;
    right.id = kDead;
    left.next = right.next;
    if (left.next >= 0) symbols[left.next].prev = top.pos;
    if (left.prev >= 0) push_pair(left.prev);
    push_pair(top.pos);
  }

  for (int32_t pos = 0; pos >= 0; pos = symbols[pos].next) ids->push_back(symbols[pos].id);
}

}  // namespace tierserve
