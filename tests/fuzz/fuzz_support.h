// Helpers shared by the fuzz targets of tests/fuzz: splitting one input into
// the several texts a parser takes, and a tiny ChatML tokenizer for the
// targets that need one but do not fuzz its vocabulary.
#ifndef TIERSERVE_TESTS_FUZZ_FUZZ_SUPPORT_H_
#define TIERSERVE_TESTS_FUZZ_FUZZ_SUPPORT_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "runtime/tokenizer/tokenizer.h"

namespace tierserve::fuzz {

// The input as text.
inline std::string_view AsText(const uint8_t* data, size_t size) {
  return std::string_view(reinterpret_cast<const char*>(data), size);
}

// `input` cut at its first `max_parts - 1` NUL bytes (JSON and YAML cannot
// hold a raw NUL, so it separates the files of one input); the last part
// keeps the rest, NULs included. Always at least one part.
std::vector<std::string_view> SplitOnNul(std::string_view input, size_t max_parts);

// A byte-level BPE tokenizer over the 256 byte tokens, a few merges
// ("Ġt", "he", "the", ...) and the ChatML added tokens <|endoftext|> (0 after
// the bytes), <|im_start|> and <|im_end|> (special), with `chat_template`.
// Aborts if it cannot be built: that is a bug of the harness, not a finding.
std::unique_ptr<Tokenizer> ChatMLTokenizer(std::string chat_template);

// `base` with its chat template replaced by `chat_template`; everything else
// is `base`'s. Cheap to make, where building a tokenizer is not. `base` must
// outlive it.
std::unique_ptr<Tokenizer> WithChatTemplate(const Tokenizer* base, std::string chat_template);

// SmolLM2-Instruct's chat template (tests/data/tokenizers/smollm2/chat_template.jinja).
extern const char kSmolLm2ChatTemplate[];

// With TIERSERVE_FUZZ_VERBOSE set, prints `what` and `status` to stderr: run
// a target with -runs=0 over a corpus to see what each seed reaches.
void Report(const char* what, const absl::Status& status);

// Aborts with `what` on stderr: a broken invariant, reported by libFuzzer
// as a crash with the input that caused it.
[[noreturn]] void InvariantFailed(const char* what);

}  // namespace tierserve::fuzz

#endif  // TIERSERVE_TESTS_FUZZ_FUZZ_SUPPORT_H_
