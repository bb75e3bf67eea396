// Tokenizer::FromVocab and the byte-level BPE tokenizer it builds.
#include "runtime/tokenizer/tokenizer.h"

#include <algorithm>

#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "runtime/base/status_macros.h"
#include "runtime/tokenizer/added_tokens.h"
#include "runtime/tokenizer/bpe.h"
#include "runtime/tokenizer/byte_level.h"
#include "runtime/tokenizer/pre_tokenizer.h"
#include "runtime/tokenizer/utf8.h"

namespace tierserve {
namespace {

// Encode: added tokens first (two passes, as HF), then the pre-tokenizer,
// then BPE on each piece. Decode: the bytes of each token, concatenated, then
// decoded lossily, since one token may hold part of a character.
//
// Immutable after construction; thread-safe.
class BpeTokenizer final : public Tokenizer {
 public:
  BpeTokenizer(BpeVocab vocab, BpeModel model) : model_(std::move(model)) {
    tokens_ = std::move(vocab.tokens);
    token_bytes_.reserve(tokens_.size());
    for (const std::string& t : tokens_) {
      token_bytes_.push_back(ByteLevelToBytes(t));
      // Added tokens match their literal text; the others their bytes.
      max_token_bytes_ = std::max({max_token_bytes_, t.size(), token_bytes_.back().size()});
    }
    special_.assign(tokens_.size(), false);
    std::vector<std::pair<std::string, int32_t>> raw, normalized;
    for (const BpeVocab::Added& a : vocab.added) {
      special_[a.id] = a.special;
      (a.normalized ? normalized : raw).emplace_back(tokens_[a.id], a.id);
    }
    raw_added_ = AddedTokenMatcher(raw);
    normalized_added_ = AddedTokenMatcher(normalized);
    pre_ = vocab.pre;
    bos_id_ = vocab.bos_id;
    eos_id_ = vocab.eos_id;
    add_bos_ = vocab.add_bos;
    chat_template_ = std::move(vocab.chat_template);
  }

  std::vector<int32_t> Encode(std::string_view text, absl::Span<const TextSpan> literal,
                              bool add_special) const override {
    std::vector<int32_t> ids;
    ids.reserve(text.size() / 3 + 2);
    if (add_special && add_bos_ && bos_id_) ids.push_back(*bos_id_);
    // Added tokens are matched outside the literal ranges; plain text that
    // touches plain text is joined again, so the pre-tokenizer sees what it
    // would see without the ranges.
    std::vector<TextSegment> segments;
    auto add_plain = [&segments](std::string_view t) {
      if (t.empty()) return;
      if (!segments.empty() && segments.back().id < 0 &&
          segments.back().text.data() + segments.back().text.size() == t.data()) {
        segments.back().text = std::string_view(segments.back().text.data(), segments.back().text.size() + t.size());
      } else {
        segments.push_back({t, -1});
      }
    };
    std::vector<TextSegment> raw_segments, found;
    auto split = [&](std::string_view part) {
      raw_segments.clear();
      raw_added_.Split(part, &raw_segments);
      for (const TextSegment& s : raw_segments) {
        if (s.id >= 0) {
          segments.push_back(s);
          continue;
        }
        found.clear();
        normalized_added_.Split(s.text, &found);
        for (const TextSegment& f : found) {
          if (f.id >= 0) {
            segments.push_back(f);
          } else {
            add_plain(f.text);
          }
        }
      }
    };
    size_t at = 0;
    for (const TextSpan& span : literal) {
      const size_t begin = std::clamp(span.begin, at, text.size());
      const size_t end = std::clamp(span.end, begin, text.size());
      split(text.substr(at, begin - at));
      add_plain(text.substr(begin, end - begin));
      at = end;
    }
    split(text.substr(at));
    std::vector<std::string_view> pieces;
    for (const TextSegment& s : segments) {
      if (s.id >= 0) {
        ids.push_back(s.id);
        continue;
      }
      pieces.clear();
      PreTokenize(pre_, s.text, &pieces);
      for (std::string_view piece : pieces) model_.Encode(piece, &ids);
    }
    return ids;
  }

  std::string Decode(absl::Span<const int32_t> ids, bool skip_special) const override {
    std::string bytes;
    for (int32_t id : ids) {
      if (!InRange(id) || (skip_special && special_[id])) continue;
      bytes.append(token_bytes_[id]);
    }
    return LossyUtf8(bytes);
  }

  size_t max_token_bytes() const override { return std::max<size_t>(1, max_token_bytes_); }
  std::string TokenBytes(int32_t id) const override {
    return InRange(id) ? token_bytes_[id] : std::string();
  }
  std::string_view TokenText(int32_t id) const override {
    return InRange(id) ? std::string_view(tokens_[id]) : std::string_view();
  }
  std::optional<int32_t> TokenId(std::string_view token_text) const override {
    const int32_t id = model_.Find(token_text);
    return id >= 0 ? std::optional<int32_t>(id) : std::nullopt;
  }
  bool IsSpecial(int32_t id) const override { return InRange(id) && special_[id]; }

  int32_t vocab_size() const override { return static_cast<int32_t>(tokens_.size()); }
  std::optional<int32_t> bos_id() const override { return bos_id_; }
  std::optional<int32_t> eos_id() const override { return eos_id_; }
  const std::string& chat_template() const override { return chat_template_; }

 private:
  bool InRange(int32_t id) const { return id >= 0 && static_cast<size_t>(id) < tokens_.size(); }

  std::vector<std::string> tokens_;       // id -> byte-level text
  std::vector<std::string> token_bytes_;  // id -> raw bytes
  size_t max_token_bytes_ = 0;
  std::vector<bool> special_;
  BpeModel model_;
  AddedTokenMatcher raw_added_;
  AddedTokenMatcher normalized_added_;
  PreTokenizer pre_ = PreTokenizer::kGpt2;
  std::optional<int32_t> bos_id_;
  std::optional<int32_t> eos_id_;
  bool add_bos_ = false;
  std::string chat_template_;
};

absl::Status CheckId(std::optional<int32_t> id, size_t vocab_size, absl::string_view what) {
  if (id && (*id < 0 || static_cast<size_t>(*id) >= vocab_size)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " id ", *id, " is outside the vocabulary [0, ", vocab_size, ")"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromVocab(BpeVocab vocab) {
  const size_t n = vocab.tokens.size();
  if (n == 0) return absl::InvalidArgumentError("the vocabulary is empty");
  if (n > static_cast<size_t>(INT32_MAX)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the vocabulary has ", n, " tokens, more than ids can hold"));
  }
  absl::flat_hash_set<int32_t> added_ids;
  for (const BpeVocab::Added& a : vocab.added) {
    TS_RETURN_IF_ERROR(CheckId(a.id, n, "added token"));
    if (!added_ids.insert(a.id).second) {
      return absl::InvalidArgumentError(absl::StrCat("added token id ", a.id, " is listed twice"));
    }
    if (vocab.tokens[a.id].empty()) {
      return absl::InvalidArgumentError(absl::StrCat("added token id ", a.id, " has empty text"));
    }
  }
  TS_RETURN_IF_ERROR(CheckId(vocab.bos_id, n, "bos"));
  TS_RETURN_IF_ERROR(CheckId(vocab.eos_id, n, "eos"));
  if (vocab.add_bos && !vocab.bos_id) {
    return absl::InvalidArgumentError("add_bos is set but there is no bos token");
  }
  TS_ASSIGN_OR_RETURN(BpeModel model,
                      BpeModel::Build(vocab.tokens, vocab.merges, vocab.ignore_merges));
  return std::unique_ptr<Tokenizer>(new BpeTokenizer(std::move(vocab), std::move(model)));
}

}  // namespace tierserve
