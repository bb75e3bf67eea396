// Finds stop strings in generated text as it streams out, delta by delta.
//
// The output ends right before the first stop string and never contains it,
// as in the OpenAI API and vLLM. "First" means the occurrence that is
// completed first while reading the text from left to right (of several
// completed by the same byte, the longest); this makes the result independent
// of how the text is cut into deltas. A stop string may span any number of
// deltas, so text that could be the start of a stop string is held back until
// the following bytes decide it.
//
// Matching is on bytes. Text and stop strings in valid UTF-8 are never cut
// inside a character, because a stop string begins on a character boundary.
//
// Thread-safety: not thread-safe; one per sequence.
#ifndef TIERSERVE_RUNTIME_GENERATE_STOP_MATCHER_H_
#define TIERSERVE_RUNTIME_GENERATE_STOP_MATCHER_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace tierserve {

inline constexpr size_t kMaxStopStrings = 16;
inline constexpr size_t kMaxStopStringBytes = 256;

class StopMatcher {
 public:
  struct Result {
    std::string text;      // safe to emit now
    bool stopped = false;  // a stop string was completed; nothing follows `text`
    int stop_index = -1;   // which one (index into the constructor's list), or -1
  };

  // At most kMaxStopStrings strings, each 1..kMaxStopStringBytes bytes; an
  // empty list is allowed (nothing is ever held back). Duplicates are allowed.
  static absl::StatusOr<StopMatcher> Create(std::vector<std::string> stop_strings);

  // Appends `delta` to the text seen so far. Once a stop string has been found,
  // or after Flush(), returns an empty text (with `stopped` and `stop_index`
  // as they were).
  Result Push(std::string_view delta);

  // Ends the stream for another reason (EOS, length): returns the held-back
  // text, which can no longer become a stop string.
  std::string Flush();

  bool stopped() const { return stopped_; }

 private:
  struct Pattern {
    std::string text;
    std::vector<uint16_t> failure;  // KMP: longest proper border of text[0..i]
    size_t state = 0;               // longest prefix of text that ends the stream
  };

  explicit StopMatcher(std::vector<Pattern> patterns);

  std::vector<Pattern> patterns_;
  std::string held_;  // the longest suffix of the stream that is a proper prefix of a pattern
  bool stopped_ = false;
  bool finished_ = false;  // stopped or flushed: no more text
  int stop_index_ = -1;
};

}  // namespace tierserve

#endif  // TIERSERVE_RUNTIME_GENERATE_STOP_MATCHER_H_
