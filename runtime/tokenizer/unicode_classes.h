// The character classes that byte-level pre-tokenizer regexes are written in
// (`\p{L}`, `\p{N}`, `\s`), with the meaning HF `tokenizers` gives them.
//
// HF `tokenizers` runs its regexes on Oniguruma; checked by experiment
// against tokenizers 0.23.3 over every code point:
//   \s    = the 25 White_Space code points (U+0009-000D, U+0020, U+0085,
//           U+00A0, U+1680, U+2000-200A, U+2028, U+2029, U+202F, U+205F, U+3000);
//   \p{L} = general category L* (Lu Ll Lt Lm Lo), \p{N} = N* (Nd Nl No),
//           per Unicode 16.0.
// ICU gives the categories; code points that an ICU older than 76 leaves
// unassigned but Unicode 16.0 assigns as letters or numbers are looked up in
// a small table, so any ICU from Unicode 15 on gives the same answers.
// (An ICU built on Unicode 17 would also class that version's new letters
// and numbers, which tokenizers 0.23.3 does not.)
// tests/data/tokenizers/unicode_classes.json holds the classes as measured
// from the reference library; the unit test compares every code point.
//
// The `Digits` pre-tokenizer tests Rust's `char::is_numeric` instead, which
// is N* per Unicode 17.0 (a few more code points than \p{N}).
#ifndef TIERSERVE_RUNTIME_TOKENIZER_UNICODE_CLASSES_H_
#define TIERSERVE_RUNTIME_TOKENIZER_UNICODE_CLASSES_H_

#include <cstdint>

namespace tierserve {

enum class CharClass : uint8_t {
  kLetter,      // \p{L}
  kNumber,      // \p{N}
  kWhitespace,  // \s
  kOther,       // none of the above (punctuation, symbols, marks, controls, unassigned)
};

// The class of a Unicode scalar value. Thread-safe.
CharClass ClassifyCodePoint(char32_t code_point);

// Whether the `Digits` pre-tokenizer treats `code_point` as a digit.
bool IsDigitsPreTokenizerNumeric(char32_t code_point);

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_TOKENIZER_UNICODE_CLASSES_H_
