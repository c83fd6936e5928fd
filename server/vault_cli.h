#ifndef BKV_SERVER_VAULT_CLI_H_
#define BKV_SERVER_VAULT_CLI_H_

// The `bkv-vault` command line as a CLI11 tree (cmdline/cmdline.h, shared in
// layout with `bkv`). A command file registers its commands with one
// function, declared in its header and listed once in main.cc's
// kRegistrations:
//
//   void RegisterFooCommands(VaultCli& cli) {
//     auto f = std::make_shared<FooFlags>();
//     CLI::App* foo = cli.Add(cli.root(), "foo", "one-line summary",
//                             "what it does, in full",
//                             [f](Io io) { return RunFoo(*f, io); });
//     cli.Value(foo, "--bar", f->bar, "B", "what B is");
//   }
//
// A group (no run function) needs a subcommand. Every command answers
// --help and --version; help, bash completion and the man page come from
// this tree. PINs have no flag: a PIN-like flag is refused before parsing.

#include <functional>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

namespace CLI {
class App;
class Option;
}  // namespace CLI

namespace bkv::server {

struct Io {
  std::ostream& out;
  std::ostream& err;
};

// Exit codes of every bkv-vault command.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;

class VaultCli {
 public:
  using RunFn = std::function<int(Io)>;

  VaultCli();
  ~VaultCli();

  CLI::App& root() { return *root_; }

  // `parent <name>`; a null `run` makes a group, which needs a subcommand.
  CLI::App* Add(CLI::App& parent, const char* name, const char* summary,
                const char* details, RunFn run);
  // --flag TYPE into `value`; the last one given wins.
  CLI::Option* Value(CLI::App* cmd, const char* flag, std::string& value,
                     const char* type, const char* help);
  // --so-pin-file FILE, required: the token's security-officer PIN.
  CLI::Option* SoPinFile(CLI::App* cmd, std::string& file);
  // --flag without a value.
  CLI::Option* Switch(CLI::App* cmd, const char* flag, bool& value,
                      const char* help);

  // Parses argv and runs the selected command; returns its exit code.
  int Main(int argc, const char* const* argv, Io io);

  std::string BashCompletion() const;

 private:
  std::unique_ptr<CLI::App> root_;
  std::map<const CLI::App*, RunFn> runs_;
};

}  // namespace bkv::server

#endif  // BKV_SERVER_VAULT_CLI_H_
