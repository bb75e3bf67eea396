#include "runtime/tokenizer/byte_level.h"

#include <array>

#include "runtime/tokenizer/utf8.h"

namespace tierserve {
namespace {

constexpr bool MapsToItself(int b) {
  return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

constexpr std::array<char32_t, 256> MakeByteToCodePoint() {
  std::array<char32_t, 256> table{};
  char32_t next = 0x100;
  for (int b = 0; b < 256; ++b) table[b] = MapsToItself(b) ? static_cast<char32_t>(b) : next++;
  return table;
}

constexpr std::array<char32_t, 256> kByteToCodePoint = MakeByteToCodePoint();

// Every mapped code point is below U+0144, so the inverse is a small array.
constexpr size_t kInverseSize = 0x144;

constexpr std::array<int16_t, kInverseSize> MakeInverse() {
  std::array<int16_t, kInverseSize> inverse{};
  for (auto& v : inverse) v = -1;
  for (int b = 0; b < 256; ++b) inverse[kByteToCodePoint[b]] = static_cast<int16_t>(b);
  return inverse;
}

constexpr std::array<int16_t, kInverseSize> kCodePointToByte = MakeInverse();

struct Utf8Table {
  std::array<char, 4> bytes[256];
  uint8_t len[256];
};

const Utf8Table& Utf8Forms() {
  static const Utf8Table table = [] {
    Utf8Table t{};
    for (int b = 0; b < 256; ++b) {
      std::string s;
      AppendUtf8(kByteToCodePoint[b], &s);
      for (size_t i = 0; i < s.size(); ++i) t.bytes[b][i] = s[i];
      t.len[b] = static_cast<uint8_t>(s.size());
    }
    return t;
  }();
  return table;
}

}  // namespace

char32_t ByteLevelCodePoint(uint8_t byte) { return kByteToCodePoint[byte]; }

std::optional<uint8_t> ByteLevelByte(char32_t cp) {
  if (cp >= kInverseSize || kCodePointToByte[cp] < 0) return std::nullopt;
  return static_cast<uint8_t>(kCodePointToByte[cp]);
}

std::string_view ByteLevelUtf8(uint8_t byte) {
  const Utf8Table& t = Utf8Forms();
  return std::string_view(t.bytes[byte].data(), t.len[byte]);
}

std::string BytesToByteLevel(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) out.append(ByteLevelUtf8(static_cast<uint8_t>(c)));
  return out;
}

std::string ByteLevelToBytes(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    const Utf8Char ch = DecodeUtf8At(text, pos);
    const std::optional<uint8_t> b = ch.valid ? ByteLevelByte(ch.code_point) : std::nullopt;
    if (!b) return std::string(text);
    out.push_back(static_cast<char>(*b));
    pos += ch.len;
  }
  return out;
}

}  // namespace tierserve
