// StreamingDetokenizer: token ids in, whole UTF-8 characters out.
#include "runtime/tokenizer/tokenizer.h"
#include "runtime/tokenizer/utf8.h"

namespace tierserve {

StreamingDetokenizer::StreamingDetokenizer(const Tokenizer* tokenizer, bool skip_special)
    : tokenizer_(tokenizer), skip_special_(skip_special) {}

std::string StreamingDetokenizer::Push(int32_t id) {
  if (skip_special_ && tokenizer_->IsSpecial(id)) return std::string();
  pending_.append(tokenizer_->TokenBytes(id));
  // Bytes that can still become a character wait for the next token; all
  // else is final. Lossy decoding is the same whether a buffer is decoded
  // whole or cut before such a tail, so the deltas add up to Decode().
  const size_t keep = IncompleteUtf8Suffix(pending_);
  std::string out = LossyUtf8(std::string_view(pending_).substr(0, pending_.size() - keep));
  pending_.erase(0, pending_.size() - keep);
  return out;
}

std::string StreamingDetokenizer::Finish() {
  std::string out = LossyUtf8(pending_);
  pending_.clear();
  return out;
}

}  // namespace tierserve
