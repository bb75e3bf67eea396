#include "server/plan_command.h"

#include <iostream>

#include "absl/flags/flag.h"
#include "server/common_flags.h"
#include "server/config.h"
#include "server/config_flags.h"
#include "server/model_plan.h"

namespace tierserve {

int RunPlanCommand(const std::vector<std::string>& args) {
  ParseCommandFlags("plan",
                    "tierserve plan --config FILE [--accelerator=sim] [--model PATH]\n"
                    "Prints where each model of the config would rest — the device map, with\n"
                    "`auto` resolved from max_memory — and the bytes each device would hold\n"
                    "(weights in their precisions, KV cache, staging, headroom), without\n"
                    "loading any weights. Exits 1 when a model does not fit.",
                    args, /*reads_config=*/true);
  auto fail = [](const absl::Status& s) {
    std::cerr << "tierserve plan: " << s.message() << "\n";
    return 1;
  };
  absl::StatusOr<ServerConfig> loaded = ConfigFromFlags(FlagOverrides());
  if (!loaded.ok()) return fail(loaded.status());
  const ServerConfig& config = *loaded;
  for (const ModelServingConfig& m : config.models) {
    if (absl::Status s = CheckServable(m, config.source); !s.ok()) return fail(s);
    absl::StatusOr<ModelPlan> plan = PlanModel(m, config);
    if (!plan.ok()) return fail(plan.status());
    std::cout << FormatPlan(m, *plan);
  }
  return 0;
}

}  // namespace tierserve
