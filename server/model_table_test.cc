#include "server/model_table.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace tierserve {
namespace {

std::vector<std::string> Visited(const ModelTable& table) {
  std::vector<std::string> names;
  table.ForEach([&names](const ServedModel& m) { names.push_back(m.name); });
  return names;
}

// ListModels promises the configuration file's order, which is the order
// serve registers the models in; names sort otherwise.
TEST(ModelTableTest, VisitsModelsInTheOrderTheyWereAdded) {
  ModelTable table;
  table.AddLoading("zeta", 0, 1);
  table.AddLoading("alpha", 0, 1);
  table.AddLoading("mid", 0, 1);
  EXPECT_EQ(Visited(table), (std::vector<std::string>{"zeta", "alpha", "mid"}));

  // A change of state, or the same name added again, keeps the place.
  table.SetFailed("alpha", "no such file");
  table.AddLoading("zeta", 16, 2);
  EXPECT_EQ(Visited(table), (std::vector<std::string>{"zeta", "alpha", "mid"}));
  absl::StatusOr<v1::ModelState> alpha = table.State("alpha");
  ASSERT_TRUE(alpha.ok()) << alpha.status();
  EXPECT_EQ(*alpha, v1::MODEL_STATE_FAILED);
}

TEST(ModelTableTest, UnknownModelNamesTheServedOnesInConfigOrder) {
  ModelTable table;
  EXPECT_EQ(table.Find("nope").status().message(), "unknown model \"nope\"; served models: none");
  table.AddLoading("zeta", 0, 1);
  table.AddLoading("alpha", 0, 1);
  const absl::Status s = table.Find("nope").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "unknown model \"nope\"; served models: zeta, alpha");
  EXPECT_EQ(table.Find("alpha").status().code(), absl::StatusCode::kUnavailable);  // still loading
}

}  // namespace
}  // namespace tierserve
