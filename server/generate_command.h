// `tierserve generate`: load a model and print a completion as it is made.
#ifndef TIERSERVE_SERVER_GENERATE_COMMAND_H_
#define TIERSERVE_SERVER_GENERATE_COMMAND_H_

#include <string>
#include <vector>

namespace tierserve {

// `args` are the arguments after the word "generate". Returns the exit code.
int RunGenerateCommand(const std::vector<std::string>& args);

}  // namespace tierserve

#endif  // TIERSERVE_SERVER_GENERATE_COMMAND_H_
