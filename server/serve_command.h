// `tierserve serve`: the gRPC daemon.
#ifndef TIERSERVE_SERVER_SERVE_COMMAND_H_
#define TIERSERVE_SERVER_SERVE_COMMAND_H_

#include <string>
#include <vector>

namespace tierserve {

// `args` are the arguments after the word "serve". Returns the exit code.
int RunServeCommand(const std::vector<std::string>& args);

}  // namespace tierserve

#endif  // TIERSERVE_SERVER_SERVE_COMMAND_H_
