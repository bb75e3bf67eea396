#include "runtime/generate/stop_matcher.h"

#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tierserve {
namespace {

using ::testing::HasSubstr;

StopMatcher Make(std::vector<std::string> stops) {
  absl::StatusOr<StopMatcher> m = StopMatcher::Create(std::move(stops));
  EXPECT_TRUE(m.ok()) << m.status();
  return *std::move(m);
}

// Pushes each delta, checking what each Push releases.
struct Step {
  std::string delta;
  std::string emitted;
  bool stopped = false;
};

void RunSteps(StopMatcher& m, const std::vector<Step>& steps) {
  for (size_t i = 0; i < steps.size(); ++i) {
    const StopMatcher::Result r = m.Push(steps[i].delta);
    EXPECT_EQ(r.text, steps[i].emitted) << "step " << i << " delta \"" << steps[i].delta << "\"";
    EXPECT_EQ(r.stopped, steps[i].stopped) << "step " << i;
  }
}

TEST(StopMatcherTest, NoStopStringsPassesEverythingThrough) {
  StopMatcher m = Make({});
  RunSteps(m, {{"hello", "hello"}, {" world", " world"}});
  EXPECT_EQ(m.Flush(), "");
}

TEST(StopMatcherTest, StopInsideOneDelta) {
  StopMatcher m = Make({"END"});
  const StopMatcher::Result r = m.Push("abcENDxyz");
  EXPECT_EQ(r.text, "abc");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.stop_index, 0);
  // Nothing more once stopped.
  const StopMatcher::Result after = m.Push("more");
  EXPECT_EQ(after.text, "");
  EXPECT_TRUE(after.stopped);
  EXPECT_EQ(after.stop_index, 0);
  EXPECT_EQ(m.Flush(), "");
}

TEST(StopMatcherTest, StopAtTheVeryStart) {
  StopMatcher m = Make({"\n\n"});
  RunSteps(m, {{"\n", ""}, {"\nrest", "", true}});
}

TEST(StopMatcherTest, StopSpanningSeveralDeltas) {
  StopMatcher m = Make({"</answer>"});
  RunSteps(m, {
             {"42 <", "42 "},
             {"/ans", ""},
             {"wer", ""},
             {">tail", "", true},
         });
}

TEST(StopMatcherTest, PrefixThatDoesNotMatchIsReleased) {
  StopMatcher m = Make({"END"});
  RunSteps(m, {
             {"xE", "x"},
             {"N", ""},
             {"q", "ENq"},
             {"EEN", "E"},  // "EN" still may become "END"
         });
  EXPECT_EQ(m.Flush(), "EN");
  EXPECT_FALSE(m.stopped());
}

TEST(StopMatcherTest, HoldsBackOnlyWhatCouldStillMatch) {
  StopMatcher m = Make({"hello"});
  RunSteps(m, {{"say hel", "say "}, {"p", "help"}, {" hell", " "}, {"o!", "", true}});
}

TEST(StopMatcherTest, SelfOverlappingStopString) {
  // "aab" inside "aaab": the matcher must not lose the occurrence that
  // starts one byte later than the first partial match.
  StopMatcher m = Make({"aab"});
  RunSteps(m, {{"a", ""}, {"a", ""}, {"a", "a"}, {"b", "", true}});
}

TEST(StopMatcherTest, OverlappingPrefixesTheFirstCompletedWins) {
  {
    // "abcd" is in progress when "bcx" completes.
    StopMatcher m = Make({"abcd", "bcx"});
    RunSteps(m, {{"ab", ""}, {"c", ""}});
    const StopMatcher::Result r = m.Push("x");
    EXPECT_EQ(r.text, "a");
    EXPECT_TRUE(r.stopped);
    EXPECT_EQ(r.stop_index, 1);
  }
  {
    // A stop string nested in a longer one completes first.
    StopMatcher m = Make({"abcd", "c"});
    const StopMatcher::Result r = m.Push("abcd");
    EXPECT_EQ(r.text, "ab");
    EXPECT_EQ(r.stop_index, 1);
  }
  {
    // Completed by the same byte: the longest wins.
    StopMatcher m = Make({"d", "bcd"});
    const StopMatcher::Result r = m.Push("abcde");
    EXPECT_EQ(r.text, "a");
    EXPECT_EQ(r.stop_index, 1);
  }
  {
    // The longer stop string is abandoned, the shorter one still matches.
    StopMatcher m = Make({"Observation:", "Obs"});
    RunSteps(m, {{"x Ob", "x "}});
    const StopMatcher::Result r = m.Push("s.");
    EXPECT_EQ(r.text, "");
    EXPECT_EQ(r.stop_index, 1);
  }
}

TEST(StopMatcherTest, Utf8MultibyteText) {
  {
    StopMatcher m = Make({"。"});
    RunSteps(m, {{"你好", "你好"}, {"。再见", "", true}});
  }
  {
    // A delta may end inside a character of the stop string.
    StopMatcher m = Make({"ñor"});
    RunSteps(m, {{"se\xC3", "se"}, {"\xB1o", ""}, {"res", "", true}});
  }
  {
    // "€" (E2 82 AC) and "₿" (E2 82 BF) share two bytes: the held bytes are
    // released together with the rest of their character.
    StopMatcher m = Make({"€"});
    RunSteps(m, {{"a\xE2\x82", "a"}, {"\xBF b", "\xE2\x82\xBF b"}, {"1€", "1", true}});
  }
}

TEST(StopMatcherTest, FlushReleasesHeldText) {
  StopMatcher m = Make({"END"});
  RunSteps(m, {{"abc EN", "abc "}});
  EXPECT_EQ(m.Flush(), "EN");
  EXPECT_EQ(m.Flush(), "");
  const StopMatcher::Result r = m.Push("D");
  EXPECT_EQ(r.text, "");
  EXPECT_FALSE(r.stopped);
}

TEST(StopMatcherTest, ResultDoesNotDependOnHowTheTextIsCut) {
  const std::vector<std::string> stops = {"abc", "bca", "cc", "abab", "cbacbacba"};
  std::mt19937 gen(2024);
  for (int trial = 0; trial < 400; ++trial) {
    std::string text;
    const int len = 1 + static_cast<int>(gen() % 24);
    for (int i = 0; i < len; ++i) text.push_back("abc"[gen() % 3]);

    // Reference: the first end position at which some stop string is a suffix
    // of the text so far; the longest such stop string decides the cut.
    std::string expected = text;
    bool expect_stop = false;
    for (size_t end = 1; end <= text.size() && !expect_stop; ++end) {
      const std::string_view prefix(text.data(), end);
      size_t best = 0;
      for (const std::string& s : stops) {
        if (s.size() > best && prefix.ends_with(s)) best = s.size();
      }
      if (best > 0) {
        expected = text.substr(0, end - best);
        expect_stop = true;
      }
    }

    StopMatcher m = Make(stops);
    std::string emitted;
    bool stopped = false;
    for (size_t pos = 0; pos < text.size() && !stopped;) {
      const size_t n = std::min<size_t>(1 + gen() % 5, text.size() - pos);
      const StopMatcher::Result r = m.Push(std::string_view(text).substr(pos, n));
      emitted += r.text;
      stopped = r.stopped;
      pos += n;
    }
    if (!stopped) emitted += m.Flush();
    EXPECT_EQ(emitted, expected) << "text " << text;
    EXPECT_EQ(stopped, expect_stop) << "text " << text;
  }
}

TEST(StopMatcherTest, Validation) {
  absl::StatusOr<StopMatcher> too_many = StopMatcher::Create(std::vector<std::string>(17, "x"));
  EXPECT_EQ(too_many.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(too_many.status().message(), HasSubstr("at most 16 stop strings"));
  EXPECT_THAT(too_many.status().message(), HasSubstr("got 17"));

  absl::StatusOr<StopMatcher> empty = StopMatcher::Create({"ok", ""});
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(empty.status().message(), HasSubstr("stop[1] is 0 bytes long"));
  EXPECT_THAT(empty.status().message(), HasSubstr("1..256 bytes"));

  absl::StatusOr<StopMatcher> too_long = StopMatcher::Create({std::string(257, 'a')});
  EXPECT_EQ(too_long.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(too_long.status().message(), HasSubstr("stop[0] is 257 bytes long"));

  EXPECT_TRUE(StopMatcher::Create(std::vector<std::string>(16, std::string(256, 'a'))).ok());
}

TEST(StopMatcherTest, LongestAllowedStopStringAcrossManyDeltas) {
  const std::string stop(256, 'z');
  StopMatcher m = Make({stop});
  std::string emitted;
  for (int i = 0; i < 255; ++i) emitted += m.Push("z").text;
  emitted += m.Push("y").text;  // breaks the run: all 255 held bytes come out
  EXPECT_EQ(emitted, std::string(255, 'z') + "y");
  for (int i = 0; i < 255; ++i) EXPECT_EQ(m.Push("z").text, "");
  const StopMatcher::Result r = m.Push("zq");
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.text, "");
}

}  // namespace
}  // namespace tierserve
