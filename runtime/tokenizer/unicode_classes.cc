#include "runtime/tokenizer/unicode_classes.h"

#include <unicode/uchar.h>

#include <algorithm>
#include <array>
#include <iterator>

namespace tierserve {
namespace {

struct Range {
  char32_t first;
  char32_t last;
};

// Letters new in Unicode 16.0, which ICU releases before 76 report as
// unassigned. Derived by diffing Oniguruma's \p{L} (tokenizers 0.23.3)
// against ICU 72.
constexpr Range kUnicode16Letters[] = {
    {0x1C89, 0x1C8A},   {0xA7CB, 0xA7CD},   {0xA7DA, 0xA7DC},   {0x105C0, 0x105F3},
    {0x10D4A, 0x10D65}, {0x10D6F, 0x10D85}, {0x10EC2, 0x10EC4}, {0x11380, 0x11389},
    {0x1138B, 0x1138B}, {0x1138E, 0x1138E}, {0x11390, 0x113B5}, {0x113B7, 0x113B7},
    {0x113D1, 0x113D1}, {0x113D3, 0x113D3}, {0x11BC0, 0x11BE0}, {0x13460, 0x143FA},
    {0x16100, 0x1611D}, {0x16D40, 0x16D6C}, {0x18CFF, 0x18CFF}, {0x1E5D0, 0x1E5ED},
    {0x1E5F0, 0x1E5F0}, {0x2EBF0, 0x2EE5D},
};

// Numbers new in Unicode 16.0 (same derivation).
constexpr Range kUnicode16Numbers[] = {
    {0x10D40, 0x10D49}, {0x116D0, 0x116E3}, {0x11BF0, 0x11BF9}, {0x16130, 0x16139},
    {0x16D70, 0x16D79}, {0x1CCF0, 0x1CCF9}, {0x1E5F1, 0x1E5FA},
};

// Numbers new in Unicode 17.0 that Rust's char::is_numeric (as built into
// tokenizers 0.23.3) already knows and Oniguruma does not.
constexpr Range kUnicode17Numbers[] = {
    {0x11DE0, 0x11DE9},
    {0x16FF4, 0x16FF6},
};

template <size_t N>
bool InRanges(const Range (&ranges)[N], char32_t cp) {
  const Range* it = std::upper_bound(std::begin(ranges), std::end(ranges), cp,
                                     [](char32_t c, const Range& r) { return c < r.first; });
  return it != std::begin(ranges) && cp <= std::prev(it)->last;
}

constexpr std::array<CharClass, 128> MakeAsciiTable() {
  std::array<CharClass, 128> table{};
  for (int c = 0; c < 128; ++c) {
    CharClass cls = CharClass::kOther;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) cls = CharClass::kLetter;
    if (c >= '0' && c <= '9') cls = CharClass::kNumber;
    if ((c >= 0x09 && c <= 0x0D) || c == ' ') cls = CharClass::kWhitespace;
    table[c] = cls;
  }
  return table;
}

constexpr std::array<CharClass, 128> kAsciiClasses = MakeAsciiTable();

}  // namespace

CharClass ClassifyCodePoint(char32_t cp) {
  if (cp < 128) return kAsciiClasses[cp];
  const auto c = static_cast<UChar32>(cp);
  if (u_isUWhiteSpace(c)) return CharClass::kWhitespace;
  switch (u_charType(c)) {
    case U_UPPERCASE_LETTER:
    case U_LOWERCASE_LETTER:
    case U_TITLECASE_LETTER:
    case U_MODIFIER_LETTER:
    case U_OTHER_LETTER:
      return CharClass::kLetter;
    case U_DECIMAL_DIGIT_NUMBER:
    case U_LETTER_NUMBER:
    case U_OTHER_NUMBER:
      return CharClass::kNumber;
    case U_UNASSIGNED:
      if (InRanges(kUnicode16Letters, cp)) return CharClass::kLetter;
      if (InRanges(kUnicode16Numbers, cp)) return CharClass::kNumber;
      return CharClass::kOther;
    default:
      return CharClass::kOther;
  }
}

bool IsDigitsPreTokenizerNumeric(char32_t cp) {
  if (cp < 128) return cp >= '0' && cp <= '9';
  return ClassifyCodePoint(cp) == CharClass::kNumber || InRanges(kUnicode17Numbers, cp);
}

}  // namespace tierserve
