#include "runtime/tokenizer/pre_tokenizer.h"

#include <algorithm>
#include <cstdint>

#include "runtime/tokenizer/unicode_classes.h"
#include "runtime/tokenizer/utf8.h"

namespace tierserve {
namespace {

struct CharInfo {
  uint32_t offset;  // byte offset in the text
  char32_t cp;      // U+FFFD for an invalid byte
  CharClass cls;
};

// The characters of `text`, plus a sentinel whose offset is text.size().
std::vector<CharInfo> Decode(std::string_view text) {
  std::vector<CharInfo> chars;
  chars.reserve(text.size() + 1);
  size_t pos = 0;
  while (pos < text.size()) {
    const auto b = static_cast<unsigned char>(text[pos]);
    if (b < 0x80) {
      chars.push_back({static_cast<uint32_t>(pos), b, ClassifyCodePoint(b)});
      ++pos;
      continue;
    }
    const Utf8Char ch = DecodeUtf8At(text, pos);
    if (ch.valid) {
      chars.push_back(
          {static_cast<uint32_t>(pos), ch.code_point, ClassifyCodePoint(ch.code_point)});
      pos += ch.len;
    } else {
      chars.push_back({static_cast<uint32_t>(pos), 0xFFFD, CharClass::kOther});
      ++pos;
    }
  }
  chars.push_back({static_cast<uint32_t>(text.size()), 0, CharClass::kOther});
  return chars;
}

bool IsCrLf(char32_t cp) { return cp == '\r' || cp == '\n'; }

// The end of the run of characters of class `cls` that starts at `i` (< e).
size_t RunEnd(const CharInfo* c, size_t i, size_t e, CharClass cls) {
  while (i < e && c[i].cls == cls) ++i;
  return i;
}

// `\s+(?!\S)|\s+` at a whitespace character i: the run minus its last
// character when that character is followed by a non-space (it then joins
// the next piece, e.g. as the " " of " ?\p{L}+"), else the whole run.
size_t MatchWhitespace(const CharInfo* c, size_t i, size_t e) {
  const size_t j = RunEnd(c, i, e, CharClass::kWhitespace);
  if (j == e || j - i == 1) return j;
  return j - 1;
}

// Case folding, as far as the contraction letters need it: U+017F LATIN
// SMALL LETTER LONG S folds to 's' (checked against tokenizers' Oniguruma).
char32_t FoldForContraction(char32_t cp) {
  if (cp >= 'A' && cp <= 'Z') return cp - 'A' + 'a';
  if (cp == 0x17F) return 's';
  return cp;
}

// Length (2 or 3) of a contraction at i ('s 't 're 've 'm 'll 'd), or 0.
size_t MatchContraction(const CharInfo* c, size_t i, size_t e, bool ignore_case) {
  if (c[i].cp != '\'' || i + 1 >= e) return 0;
  auto fold = [ignore_case](char32_t cp) { return ignore_case ? FoldForContraction(cp) : cp; };
  const char32_t a = fold(c[i + 1].cp);
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if (i + 2 >= e) return 0;
  const char32_t b = fold(c[i + 2].cp);
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  return 0;
}

// The end of the GPT-2 regex match that starts at i, within [i, e).
size_t MatchGpt2(const CharInfo* c, size_t i, size_t e) {
  if (const size_t n = MatchContraction(c, i, e, /*ignore_case=*/false)) return i + n;
  // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: the first non-space
  // character decides which one applies, and the run is of its class.
  if (c[i].cls != CharClass::kWhitespace) return RunEnd(c, i, e, c[i].cls);
  if (c[i].cp == ' ' && i + 1 < e && c[i + 1].cls != CharClass::kWhitespace) {
    return RunEnd(c, i + 1, e, c[i + 1].cls);
  }
  return MatchWhitespace(c, i, e);
}

// The end of the Llama-3 regex match that starts at i, within [i, e).
size_t MatchLlama3(const CharInfo* c, size_t i, size_t e) {
  if (const size_t n = MatchContraction(c, i, e, /*ignore_case=*/true)) return i + n;
  const CharClass cls = c[i].cls;
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (cls == CharClass::kLetter) return RunEnd(c, i, e, CharClass::kLetter);
  if (cls != CharClass::kNumber && !IsCrLf(c[i].cp) && i + 1 < e &&
      c[i + 1].cls == CharClass::kLetter) {
    return RunEnd(c, i + 1, e, CharClass::kLetter);
  }
  // \p{N}{1,3}
  if (cls == CharClass::kNumber) return std::min(RunEnd(c, i, e, CharClass::kNumber), i + 3);
  // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
  size_t k = i;
  if (c[i].cp == ' ' && i + 1 < e && c[i + 1].cls == CharClass::kOther) k = i + 1;
  if (c[k].cls == CharClass::kOther) {
    size_t j = RunEnd(c, k, e, CharClass::kOther);
    while (j < e && IsCrLf(c[j].cp)) ++j;
    return j;
  }
  // \s*[\r\n]+ : whitespace up to and including the run's last \r or \n.
  const size_t j = RunEnd(c, i, e, CharClass::kWhitespace);
  for (size_t m = j; m > i; --m) {
    if (IsCrLf(c[m - 1].cp)) return m;
  }
  return MatchWhitespace(c, i, e);
}

template <typename Matcher>
void SplitRange(const std::vector<CharInfo>& chars, std::string_view text, size_t b, size_t e,
                Matcher match, std::vector<std::string_view>* pieces) {
  const CharInfo* c = chars.data();
  size_t i = b;
  while (i < e) {
    const size_t j = match(c, i, e);
    pieces->push_back(text.substr(c[i].offset, c[j].offset - c[i].offset));
    i = j;
  }
}

}  // namespace

void PreTokenize(PreTokenizer kind, std::string_view text, std::vector<std::string_view>* pieces) {
  if (text.empty()) return;
  const std::vector<CharInfo> chars = Decode(text);
  const size_t n = chars.size() - 1;
  switch (kind) {
    case PreTokenizer::kGpt2:
      SplitRange(chars, text, 0, n, MatchGpt2, pieces);
      return;
    case PreTokenizer::kLlama3:
      SplitRange(chars, text, 0, n, MatchLlama3, pieces);
      return;
    case PreTokenizer::kSmolLm: {
      // Digits(individual_digits=true) first: each digit is its own piece and
      // the GPT-2 regex sees the text between digits on its own, so e.g. the
      // space before a digit is not kept back for it.
      size_t b = 0;
      for (size_t i = 0; i < n; ++i) {
        if (!IsDigitsPreTokenizerNumeric(chars[i].cp)) continue;
        SplitRange(chars, text, b, i, MatchGpt2, pieces);
        pieces->push_back(text.substr(chars[i].offset, chars[i + 1].offset - chars[i].offset));
        b = i + 1;
      }
      SplitRange(chars, text, b, n, MatchGpt2, pieces);
      return;
    }
  }
}

}  // namespace tierserve
