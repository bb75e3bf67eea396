// `tierserve plan`: where each model of a config would rest and what every
// device would hold, without loading any weights.
#ifndef TIERSERVE_SERVER_PLAN_COMMAND_H_
#define TIERSERVE_SERVER_PLAN_COMMAND_H_

#include <string>
#include <vector>

namespace tierserve {

// Prints each model's resolved device map (as YAML) and its bytes per device
// and tier; exits 1 on a config error or a model that does not fit.
int RunPlanCommand(const std::vector<std::string>& args);

}  // namespace tierserve

#endif  // TIERSERVE_SERVER_PLAN_COMMAND_H_
