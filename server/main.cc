// bkv-vault: the vault server's one binary. The command tree is CLI11's
// (server/vault_cli.h on cmdline/cmdline.h), shared in layout with `bkv`:
// every command answers --help and --version, takes `--flag value` and
// `--flag=value` alike and gets a suggestion for a mistyped word. Each
// command file registers its commands; this file lists them.
#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>

#include "server/account_command.h"
#include "server/cluster_command.h"
#include "server/health_command.h"
#include "server/hsm_command.h"
#include "server/rollback_command.h"
#include "server/serve_command.h"
#include "server/token_command.h"
#include "server/vault_cli.h"
#ifdef BKV_TEST_REALM  // bkv-vault-testrealm only (tests/server/test_realm.h)
#include "tests/server/test_realm.h"
#endif

namespace bkv::server {
namespace {

void RegisterCompletionCommand(VaultCli& cli) {
  auto shell = std::make_shared<std::string>();
  CLI::App* cmd = cli.Add(
      cli.root(), "completion", "a bash completion script for bkv-vault",
      "`cmake --install` puts it in share/bash-completion/completions.",
      [&cli, shell](Io io) {
        io.out << cli.BashCompletion();
        return kExitOk;
      });
  cmd->add_option("SHELL", *shell, "bash")
      ->required()
      ->check(CLI::IsMember({"bash"}));
}

// The commands, in the order `bkv-vault --help` lists them.
using Registration = void (*)(VaultCli&);
constexpr Registration kRegistrations[] = {
    RegisterServeCommand,    RegisterTokenCommands,     RegisterHsmCommands,
    RegisterHealthCommand,   RegisterRollbackCommands,  RegisterClusterCommands,
    RegisterAccountCommands, RegisterCompletionCommand,
};

}  // namespace
}  // namespace bkv::server

int main(int argc, char** argv) {
  using namespace bkv::server;
#ifdef BKV_TEST_REALM
  test_realm::TakeFlags(argc, argv);
#endif
  VaultCli cli;
  for (Registration r : kRegistrations) r(cli);
  return cli.Main(argc, argv, {std::cout, std::cerr});
}
