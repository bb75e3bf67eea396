#include "runtime/tokenizer/added_tokens.h"

namespace tierserve {

AddedTokenMatcher::AddedTokenMatcher(const std::vector<std::pair<std::string, int32_t>>& tokens) {
  for (const auto& [content, id] : tokens) {
    if (content.empty()) continue;
    int32_t node = 0;
    for (char c : content) {
      const auto byte = static_cast<uint8_t>(c);
      auto [it, inserted] =
          edges_.emplace(EdgeKey(node, byte), static_cast<int32_t>(terminal_.size()));
      if (inserted) terminal_.push_back(-1);
      node = it->second;
    }
    terminal_[node] = id;
    first_byte_[static_cast<uint8_t>(content[0])] = true;
  }
}

std::pair<size_t, int32_t> AddedTokenMatcher::LongestAt(std::string_view text, size_t pos) const {
  std::pair<size_t, int32_t> best{0, -1};
  int32_t node = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    auto it = edges_.find(EdgeKey(node, static_cast<uint8_t>(text[i])));
    if (it == edges_.end()) break;
    node = it->second;
    if (terminal_[node] >= 0) best = {i + 1 - pos, terminal_[node]};
  }
  return best;
}

void AddedTokenMatcher::Split(std::string_view text, std::vector<TextSegment>* segments) const {
  size_t plain_start = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    if (!first_byte_[static_cast<uint8_t>(text[pos])]) {
      ++pos;
      continue;
    }
    const auto [len, id] = LongestAt(text, pos);
    if (len == 0) {
      ++pos;
      continue;
    }
    if (pos > plain_start) segments->push_back({text.substr(plain_start, pos - plain_start), -1});
    segments->push_back({text.substr(pos, len), id});
    pos += len;
    plain_start = pos;
  }
  if (text.size() > plain_start) segments->push_back({text.substr(plain_start), -1});
}

}  // namespace tierserve
