#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "runtime/base/thread_pool.h"
#include "runtime/model/model_loader.h"

namespace tierserve {
namespace {

// LoadModel reports every module it records, in order, with the parameters
// done so far growing to the records' sum, never past the source's total.
TEST(LoadModelProgressTest, EveryModuleIsReportedAndTheCountGrowsToTheTotal) {
  ThreadPool pool(1);
  ModelLoadOptions o;
  o.pool = &pool;
  std::vector<LoadProgress> seen;
  std::vector<std::string> modules;
  o.on_progress = [&](const LoadProgress& p) {
    seen.push_back(p);
    modules.push_back(p.module->module);
  };
  absl::StatusOr<LoadedModel> m = LoadModel("tests/data/tiny_llama", o);
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(seen.size(), m->modules.size());
  int64_t sum = 0;
  for (size_t i = 0; i < seen.size(); ++i) {
    EXPECT_EQ(modules[i], m->modules[i].module);
    sum += m->modules[i].parameters;
    EXPECT_EQ(seen[i].parameters_done, std::min(sum, seen[i].parameters_total));
    EXPECT_EQ(seen[i].parameters_total, seen[0].parameters_total);
    if (i > 0) {
      EXPECT_GE(seen[i].parameters_done, seen[i - 1].parameters_done);
    }
  }
  EXPECT_GT(seen.back().parameters_done, 0);
  EXPECT_LE(seen.back().parameters_done, seen.back().parameters_total);
}

}  // namespace
}  // namespace tierserve
