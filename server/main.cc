// bkv-vault: the vault server's one binary, a small subcommand dispatcher.
// Each command is a row in kCommands.
#include <iostream>
#include <span>
#include <string>
#include <vector>

#include "server/health_command.h"
#include "server/hsm_command.h"
#include "server/rollback_command.h"
#include "server/serve_command.h"
#include "server/token_command.h"

namespace bkv::server {
namespace {

struct Command {
  const char* name;
  const char* summary;
  int (*run)(std::span<const std::string> args);
};

int RunHsm(std::span<const std::string> args) {
  return RunHsmCommand(args, std::cout, std::cerr);
}

int RunRollback(std::span<const std::string> args) {
  return RunRollbackCommand(args, std::cout, std::cerr);
}

int RunHealth(std::span<const std::string> args) {
  return RunHealthCommand(args, std::cout, std::cerr);
}

constexpr Command kCommands[] = {
    {"serve", "run the vault (bkv-vault serve --help)", RunServeCommand},
    {"token", "mint a development account token (token mint --help)",
     RunTokenCommand},
    {"hsm", "key ceremony and token status (bkv-vault hsm --help)", RunHsm},
    {"health", "is a running vault serving? (health --help)", RunHealth},
    {"rollback", "re-anchor a restored store (rollback --help)", RunRollback},
};

void PrintUsage(std::ostream& os) {
  os << "usage: bkv-vault <command> [flags]\n\ncommands:\n";
  for (const Command& c : kCommands) {
    os << "  " << c.name << std::string(12 - std::string(c.name).size(), ' ')
       << c.summary << "\n";
  }
  os << "\n`bkv-vault <command> --help` lists a command's flags; "
        "`bkv-vault --version` the version.\n";
}

int Main(int argc, char** argv) {
  std::vector<std::string> args(argv + (argc > 0 ? 1 : 0), argv + argc);
  if (args.empty()) {
    PrintUsage(std::cerr);
    return 2;
  }
  if (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    PrintUsage(std::cout);
    return 0;
  }
  if (args[0] == "--version") {
    std::cout << "bkv-vault " << BKV_PROJECT_VERSION
              << " (vault protocol version 2)\n";
    return 0;
  }
  for (const Command& c : kCommands) {
    if (args[0] == c.name) {
      return c.run(std::span<const std::string>(args).subspan(1));
    }
  }
  std::cerr << "bkv-vault: unknown command '" << args[0] << "'\n";
  PrintUsage(std::cerr);
  return 2;
}

}  // namespace
}  // namespace bkv::server

int main(int argc, char** argv) { return bkv::server::Main(argc, argv); }
