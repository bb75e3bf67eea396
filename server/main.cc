// tierserve: serves LLM text generation for models larger than the hardware.
// Subcommands: `generate` (one completion on the command line); the gRPC
// daemon (`serve`) builds on the same runtime.
#include <iostream>
#include <string>
#include <vector>

#include "server/generate_command.h"

namespace {

constexpr char kUsage[] =
    "usage: tierserve <command> [flags]\n"
    "\n"
    "commands:\n"
    "  generate   load a model and print the completion of a prompt\n"
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
  if (command == "generate") return tierserve::RunGenerateCommand(rest);
  if (command == "version" || command == "--version") {
    std::cout << "tierserve 0.1.0\n";
    return 0;
  }
  if (command == "help" || command == "--help" || command == "-h") {
    std::cout << kUsage;
    return 0;
  }
  std::cerr << "tierserve: unknown command \"" << command << "\"\n" << kUsage;
  return 2;
}
