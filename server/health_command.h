// `tierserve health`: asks a running daemon's grpc.health.v1.Health/Check
// whether it serves, for container HEALTHCHECKs and liveness probes (no
// Python or grpcurl needed in the image).
#ifndef TIERSERVE_SERVER_HEALTH_COMMAND_H_
#define TIERSERVE_SERVER_HEALTH_COMMAND_H_

#include <string>
#include <vector>

namespace tierserve {

// `args` are the arguments after the word "health". Returns 0 when the
// service answers SERVING, 1 otherwise (not reachable, an RPC error, or any
// other status), with one line on stderr saying what it got.
int RunHealthCommand(const std::vector<std::string>& args);

}  // namespace tierserve

#endif  // TIERSERVE_SERVER_HEALTH_COMMAND_H_
