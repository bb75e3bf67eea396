// tierserve: serves LLM text generation for models larger than the hardware.
// Subcommands: `serve` (the gRPC daemon), `generate` (one completion on the
// command line), `plan` (placements and memory, without loading) and
// `health` (a probe of a running daemon, for container health checks).
#include <iostream>
#include <string>
#include <vector>

#include "git_commit.h"
#include "server/generate_command.h"
#include "server/health_command.h"
#include "server/plan_command.h"
#include "server/serve_command.h"

namespace {

constexpr char kUsage[] =
    "usage: tierserve <command> [flags]\n"
    "\n"
    "commands:\n"
    "  serve      serve the models of a config over gRPC, with Prometheus metrics\n"
    "  generate   load a model and print the completion of a prompt\n"
    "  plan       print where each model of a config would rest, without loading it\n"
    "  health     ask a running daemon's gRPC health service; exit 0 when it serves\n"
    "  version    print the version\n"
    "\n"
    "Run `tierserve <command> --help` for the flags of a command.\n";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << kUsage;
    return 2;
  }
  const std::string command = argv[1];
  const std::vector<std::string> rest(argv + 2, argv + argc);
  if (command == "serve") return tierserve::RunServeCommand(rest);
  if (command == "generate") return tierserve::RunGenerateCommand(rest);
  if (command == "plan") return tierserve::RunPlanCommand(rest);
  if (command == "health") return tierserve::RunHealthCommand(rest);
  if (command == "version" || command == "--version") {
    std::cout << "tierserve " TIERSERVE_VERSION " (commit " TIERSERVE_GIT_COMMIT ")\n";
    return 0;
  }
  if (command == "help" || command == "--help" || command == "-h") {
    std::cout << kUsage;
    return 0;
  }
  std::cerr << "tierserve: unknown command \"" << command << "\"\n" << kUsage;
  return 2;
}
