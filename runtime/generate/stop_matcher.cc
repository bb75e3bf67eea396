#include "runtime/generate/stop_matcher.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace tierserve {

absl::StatusOr<StopMatcher> StopMatcher::Create(std::vector<std::string> stop_strings) {
  if (stop_strings.size() > kMaxStopStrings) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "stop: at most %d stop strings are allowed, got %d", kMaxStopStrings, stop_strings.size()));
  }
  std::vector<Pattern> patterns;
  patterns.reserve(stop_strings.size());
  for (size_t i = 0; i < stop_strings.size(); ++i) {
    std::string& s = stop_strings[i];
    if (s.empty() || s.size() > kMaxStopStringBytes) {
      return absl::InvalidArgumentError(
          absl::StrFormat("stop[%d] is %d bytes long; a stop string must be 1..%d bytes", i,
                          s.size(), kMaxStopStringBytes));
    }
    Pattern p;
    p.failure.resize(s.size());
    size_t k = 0;
    for (size_t j = 1; j < s.size(); ++j) {
      while (k > 0 && s[j] != s[k]) k = p.failure[k - 1];
      if (s[j] == s[k]) ++k;
      p.failure[j] = static_cast<uint16_t>(k);
    }
    p.text = std::move(s);
    patterns.push_back(std::move(p));
  }
  return StopMatcher(std::move(patterns));
}

StopMatcher::StopMatcher(std::vector<Pattern> patterns) : patterns_(std::move(patterns)) {}

StopMatcher::Result StopMatcher::Push(std::string_view delta) {
  Result result;
  if (finished_) {
    result.stopped = stopped_;
    result.stop_index = stop_index_;
    return result;
  }

  for (size_t j = 0; j < delta.size(); ++j) {
    const char c = delta[j];
    int best = -1;
    size_t best_len = 0;
    for (size_t k = 0; k < patterns_.size(); ++k) {
      Pattern& p = patterns_[k];
      size_t st = p.state;
      while (st > 0 && p.text[st] != c) st = p.failure[st - 1];
      if (p.text[st] == c) ++st;
      if (st == p.text.size()) {
        if (st > best_len) {
          best = static_cast<int>(k);
          best_len = st;
        }
        st = p.failure[st - 1];
      }
      p.state = st;
    }
    if (best >= 0) {
      // The occurrence began after everything already emitted: its first
      // bytes were a prefix of the pattern ending the stream, hence in held_.
      const size_t end = held_.size() + j + 1;
      result.text = std::move(held_);
      result.text.append(delta.substr(0, j + 1));
      result.text.resize(end - best_len);
      result.stopped = true;
      result.stop_index = best;
      held_.clear();
      stopped_ = true;
      finished_ = true;
      stop_index_ = best;
      return result;
    }
  }

  size_t hold = 0;
  for (const Pattern& p : patterns_) hold = std::max(hold, p.state);
  const size_t total = held_.size() + delta.size();
  if (hold == 0) {
    result.text = std::move(held_);
    result.text.append(delta);
    held_.clear();
  } else {
    std::string all = std::move(held_);
    all.append(delta);
    held_ = all.substr(total - hold);
    all.resize(total - hold);
    result.text = std::move(all);
  }
  return result;
}

std::string StopMatcher::Flush() {
  if (finished_) return "";
  finished_ = true;
  return std::exchange(held_, std::string());
}

}  // namespace tierserve
