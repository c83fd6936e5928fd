#ifndef BKV_CLIENT_CLI_COMMAND_TREE_H_
#define BKV_CLIENT_CLI_COMMAND_TREE_H_

// The `bkv` command line as a CLI11 tree. A command is one registration
// function in its command file (backup_commands.cc, ...), listed once in
// cli.cc's kRegistrations:
//
//   void RegisterFooCommands(CommandTree& t) {
//     CLI::App* foo = t.Add(t.root(), "foo", "one-line summary",
//                           "what it does, in full", Foo);
//     t.Operand(foo, "PATH", "what PATH is");
//     t.Value(foo, "--to", "URL", "the store");
//     t.KeyFlags(foo);
//   }
//
// Every command gets --help, --version, --json and --config; flag values
// land in Context::args (command.h), where settings.h adds the
// environment's and the config file's. Help, completion and man page are
// generated from this tree.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "client/cli/command.h"

namespace CLI {
class App;
class Option;
}  // namespace CLI

namespace bkv::cli {

using RunFn = absl::Status (*)(Context&);

class CommandTree {
 public:
  explicit CommandTree(Context& c);
  ~CommandTree();

  CLI::App& root() { return *root_; }

  // `parent <name>`; `run` is null for a group, which needs a subcommand.
  CLI::App* Add(CLI::App& parent, const char* name, const char* summary,
                const char* details, RunFn run);
  // --flag TYPE; the last one given wins.
  CLI::Option* Value(CLI::App* cmd, const char* flag, const char* type,
                     const char* help);
  // --flag without a value.
  CLI::Option* Switch(CLI::App* cmd, const char* flag, const char* help);
  // A required positional argument, appended to Args::operands.
  CLI::Option* Operand(CLI::App* cmd, const char* name, const char* help);
  // --key-file and --password-stdin, plus VaultFlags.
  void KeyFlags(CLI::App* cmd);
  // --passkey, --open, --rp-id, --passkey-timeout.
  void PasskeyFlags(CLI::App* cmd);
  // Where the vault is and how to trust it (--vault, --vault-key, ...).
  void VaultFlags(CLI::App* cmd);

  // After a parse: the deepest command given, its words and what it runs.
  const CLI::App& Selected(std::vector<std::string>* words) const;
  RunFn RunOf(const CLI::App& cmd) const;
  // Every command's words ("vault status"), depth first.
  std::vector<std::string> Names() const;
  // A bash completion script: per command, its subcommands and flags.
  std::string BashCompletion() const;

 private:
  Context& c_;
  std::unique_ptr<CLI::App> root_;
  std::map<const CLI::App*, RunFn> runs_;
};

// One per command file.
void RegisterKeyCommands(CommandTree& t);     // key new
void RegisterBackupCommands(CommandTree& t);  // backup, restore
void RegisterRepoCommands(
    CommandTree& t);  // snapshots forget prune check repair
void RegisterStoreCommands(CommandTree& t);  // list
void RegisterVaultCommands(CommandTree& t);  // vault status|delete|...
void RegisterSlotCommands(CommandTree& t);   // slot list|add|remove, rekey
void RegisterRealmCommands(CommandTree& t);  // realms migrate

}  // namespace bkv::cli

#endif  // BKV_CLIENT_CLI_COMMAND_TREE_H_
