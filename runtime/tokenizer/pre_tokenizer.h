// Pre-tokenization: the split of text into the pieces that BPE encodes one
// by one, as HF's pre-tokenizers do it. The regexes are hand-coded matchers
// (the `\s+(?!\S)` lookahead is beyond RE2 and std::regex) that reproduce
// Oniguruma's leftmost-alternative backtracking for these patterns exactly.
//
//   GPT-2:   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   SmolLM:  every Digits-numeric character alone, then GPT-2 on the rest
//   Llama-3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//            ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//
// Character classes are those of unicode_classes.h. Bytes that are not valid
// UTF-8 count as one character each of the class "other", so any input is
// split without loss.
#ifndef TIERSERVE_RUNTIME_TOKENIZER_PRE_TOKENIZER_H_
#define TIERSERVE_RUNTIME_TOKENIZER_PRE_TOKENIZER_H_

#include <string_view>
#include <vector>

#include "runtime/tokenizer/tokenizer.h"

namespace tierserve {

// Appends to `pieces` the pre-tokens of `text`: non-empty views into `text`
// that cover it in order. Thread-safe.
void PreTokenize(PreTokenizer kind, std::string_view text, std::vector<std::string_view>* pieces);

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_TOKENIZER_PRE_TOKENIZER_H_
