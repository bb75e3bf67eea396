#include "server/load_progress.h"

#include <algorithm>
#include <sstream>

#include "gtest/gtest.h"

namespace tierserve {
namespace {

TEST(LoadProgressTest, DescribesTheShareAndWhatIsBeingDone) {
  ModuleRecord read{"model.embed_tokens", "cpu", Precision::kQ8_0, 100, 0};
  ModuleRecord quantized{"model.layers.3.mlp.up_proj", "cpu", Precision::kNf4, 100, 0};
  EXPECT_EQ(LoadProgressPrinter::Describe(LoadProgress{&read, 25'000'000, 100'000'000}, 1.25),
            "25% (25.0 of 100.0 M parameters, 1.2 s), reading model.embed_tokens");
  EXPECT_EQ(LoadProgressPrinter::Describe(LoadProgress{&quantized, 999'999, 1'000'000}, 3),
            "99% (1.0 of 1.0 M parameters, 3.0 s), quantizing model.layers.3.mlp.up_proj to nf4");
}

TEST(LoadProgressTest, LogStylePrintsALinePerTenthAndNotTheEnd) {
  std::ostringstream out;
  LoadProgressPrinter p(&out, "m: ", LoadProgressPrinter::Style::kLog, std::chrono::seconds(0));
  ModuleRecord r{"x", "cpu", Precision::kFp32, 1, 4};
  for (int done : {5, 9, 10, 15, 19, 31, 100}) p.Report(LoadProgress{&r, done, 100});
  const std::string s = out.str();
  // 10% once (not again at 15 or 19), 30% (31 skips 20), nothing at 100%.
  EXPECT_NE(s.find("m: loading 10% "), std::string::npos) << s;
  EXPECT_NE(s.find("m: loading 31% "), std::string::npos) << s;
  EXPECT_EQ(s.find("loading 15%"), std::string::npos) << s;
  EXPECT_EQ(s.find("loading 5%"), std::string::npos) << s;
  EXPECT_EQ(s.find("100%"), std::string::npos) << s;
  EXPECT_EQ(std::count(s.begin(), s.end(), '\n'), 2) << s;
}

TEST(LoadProgressTest, LogStyleIsQuietForAFastLoad) {
  std::ostringstream out;
  LoadProgressPrinter p(&out, "m: ", LoadProgressPrinter::Style::kLog, std::chrono::hours(1));
  ModuleRecord r{"x", "cpu", Precision::kFp32, 1, 4};
  for (int done = 1; done < 100; ++done) p.Report(LoadProgress{&r, done, 100});
  EXPECT_EQ(out.str(), "");
}

TEST(LoadProgressTest, TerminalStyleRedrawsOneLineAndClearsIt) {
  std::ostringstream out;
  {
    LoadProgressPrinter p(&out, "g: ", LoadProgressPrinter::Style::kTerminal, std::chrono::seconds(0));
    ModuleRecord r{"x", "cpu", Precision::kInt8, 1, 1};
    p.Report(LoadProgress{&r, 1, 2});
    p.Report(LoadProgress{&r, 2, 2});
  }  // the destructor clears the line
  const std::string s = out.str();
  EXPECT_EQ(s.find('\n'), std::string::npos) << s;
  EXPECT_EQ(s.rfind("\r\x1b[K"), s.size() - 4) << s;
  EXPECT_NE(s.find("\rg: loading 50% "), std::string::npos) << s;
  EXPECT_NE(s.find("quantizing x to int8"), std::string::npos) << s;
}

}  // namespace
}  // namespace tierserve
