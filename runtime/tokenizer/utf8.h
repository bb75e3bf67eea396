// UTF-8 decoding helpers shared by the tokenizer: strict decoding of one
// character, lossy conversion with U+FFFD, and detection of a sequence cut
// short at the end of a buffer (for streaming).
#ifndef TIERSERVE_RUNTIME_TOKENIZER_UTF8_H_
#define TIERSERVE_RUNTIME_TOKENIZER_UTF8_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tierserve {

// One decoded character. An invalid or truncated sequence decodes as
// `valid = false` with `len` = the length of its maximal valid prefix (at
// least 1), the unit that a lossy decoder replaces by one U+FFFD.
struct Utf8Char {
  char32_t code_point;  // U+FFFD when !valid
  uint32_t len;         // bytes consumed, >= 1
  bool valid;
};

// Decodes the character starting at `text[pos]`. REQUIRES: pos < text.size().
Utf8Char DecodeUtf8At(std::string_view text, size_t pos);

// Appends the UTF-8 encoding of `code_point` (must be a scalar value).
void AppendUtf8(char32_t code_point, std::string* out);

// `bytes` as valid UTF-8: each maximal invalid subpart becomes U+FFFD, the
// substitution of the Unicode Standard (§3.9) used by Rust's
// String::from_utf8_lossy and Python's errors="replace".
std::string LossyUtf8(std::string_view bytes);

// The number of trailing bytes of `bytes` that form a valid but incomplete
// UTF-8 sequence (0 when the buffer ends on a whole character or on bytes
// that can never become valid).
size_t IncompleteUtf8Suffix(std::string_view bytes);

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_TOKENIZER_UTF8_H_
