// GPT-2's byte-level alphabet: a reversible map from the 256 byte values to
// printable code points, so that any byte string can be written as text in
// a vocabulary (space 0x20 -> "Ġ" U+0120, '\n' -> "Ċ" U+010A).
//
// Bytes 0x21-0x7E, 0xA1-0xAC and 0xAE-0xFF map to the same code point; the
// other 68 bytes, in increasing order, map to U+0100 + n.
#ifndef TIERSERVE_RUNTIME_TOKENIZER_BYTE_LEVEL_H_
#define TIERSERVE_RUNTIME_TOKENIZER_BYTE_LEVEL_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tierserve {

// The code point that stands for `byte`.
char32_t ByteLevelCodePoint(uint8_t byte);

// The byte that `code_point` stands for, if it is one of the 256.
std::optional<uint8_t> ByteLevelByte(char32_t code_point);

// The UTF-8 text of ByteLevelCodePoint(byte); a view into a static table.
std::string_view ByteLevelUtf8(uint8_t byte);

// Raw bytes -> byte-level text ("a b" -> "aĠb").
std::string BytesToByteLevel(std::string_view bytes);

// Byte-level text -> raw bytes, as HF's ByteLevel decoder treats one token:
// when every character of `text` belongs to the alphabet the bytes they
// stand for, otherwise (e.g. an added token "<a b>") the text's own bytes.
std::string ByteLevelToBytes(std::string_view text);

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_TOKENIZER_BYTE_LEVEL_H_
