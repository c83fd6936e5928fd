// bkv-vault: the vault server's one binary. The command tree is CLI11's
// (cmdline/cmdline.h), shared in layout with `bkv`: every command and
// subcommand answers --help and --version, a mistyped one gets a
// suggestion. Each leaf's flags are parsed by its own command (serve's by
// the config loader, which also reads them from the TOML file), which
// receives its words after the top command plus the rest of the line.
#include <CLI/CLI.hpp>
#include <iostream>
#include <span>
#include <string>
#include <vector>

#include "cmdline/cmdline.h"
#include "server/cluster_command.h"
#include "server/health_command.h"
#include "server/hsm_command.h"
#include "server/rollback_command.h"
#include "server/serve_command.h"
#include "server/token_command.h"

namespace bkv::server {
namespace {

constexpr char kVersion[] =
    "bkv-vault " BKV_PROJECT_VERSION " (vault protocol version 2)";

using RunFn = int (*)(std::span<const std::string> args);

int RunHsm(std::span<const std::string> args) {
  return RunHsmCommand(args, std::cout, std::cerr);
}
int RunRollback(std::span<const std::string> args) {
  return RunRollbackCommand(args, std::cout, std::cerr);
}
int RunCluster(std::span<const std::string> args) {
  return RunClusterCommand(args, std::cout, std::cerr);
}
int RunHealth(std::span<const std::string> args) {
  return RunHealthCommand(args, std::cout, std::cerr);
}

// A top-level command, its subcommands (none: it is a leaf) and what runs
// it.
struct Command {
  const char* name;
  const char* summary;
  RunFn run;
  std::vector<std::pair<const char*, const char*>> subs;
};

const std::vector<Command>& Commands() {
  static const std::vector<Command> kCommands = {
      {"serve", "run the vault", RunServeCommand, {}},
      {"token",
       "development account tokens",
       RunTokenCommand,
       {{"mint", "mint a development account token"}}},
      {"hsm",
       "key ceremony and token status",
       RunHsm,
       {{"init", "create (or keep) the vault's keys on the token"},
        {"status", "are the token and every key there? self-tests"},
        {"export-request", "new node: a transport key for the keys"},
        {"export", "wrap the keys for a new node's transport key"},
        {"import", "new node: unwrap the keys into its token"}}},
      {"health", "is a running vault serving?", RunHealth, {}},
      {"rollback",
       "recover from a restored (rolled back) store",
       RunRollback,
       {{"reanchor", "re-anchor a restored store"}}},
      {"cluster",
       "the quorum of endorsing nodes: key ceremony",
       RunCluster,
       {{"keygen", "make (or show) this token's endorsement key"},
        {"show", "print this token's endorsement key"},
        {"digest", "check the members file, print its digest"}}},
  };
  return kCommands;
}

// What runs the top-level command `name`, which the parse selected.
RunFn RunOf(const std::string& name) {
  for (const Command& c : Commands()) {
    if (name == c.name) return c.run;
  }
  return nullptr;  // not reached: only registered commands parse
}

// A leaf takes the rest of the line as is: its command parses it (and
// prints its own --help).
void AddLeaf(CLI::App& parent, const char* name, const char* summary) {
  CLI::App* leaf = parent.add_subcommand(name, summary);
  leaf->set_help_flag();
  leaf->set_version_flag("--version", kVersion, "the version");
  leaf->prefix_command();
}

void Register(CLI::App& app) {
  app.formatter(cmdline::MakeHelpFormatter());
  app.set_help_flag("-h,--help", "this text");
  app.set_version_flag("--version", kVersion, "the version");
  app.require_subcommand(1);
  app.footer(
      "`bkv-vault COMMAND [SUBCOMMAND] --help` lists a command's flags.");
  for (const Command& c : Commands()) {
    if (c.subs.empty()) {
      AddLeaf(app, c.name, c.summary);
      continue;
    }
    CLI::App* group = app.add_subcommand(c.name, c.summary);
    group->set_version_flag("--version", kVersion, "the version");
    group->require_subcommand(1);
    for (const auto& [name, summary] : c.subs) AddLeaf(*group, name, summary);
  }
}

int Main(int argc, char** argv) {
  CLI::App app("", "bkv-vault");
  Register(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    // A group's help is its command's own usage, which lists its flags.
    std::vector<std::string> words;
    cmdline::Selected(app, &words);
    if (words.empty()) {
      std::cout << app.help();
      return 0;
    }
    const std::vector<std::string> help = {"--help"};
    return RunOf(words[0])(help);
  } catch (const CLI::CallForVersion& v) {
    std::cout << v.what() << "\n";
    return 0;
  } catch (const CLI::ParseError& e) {
    std::cerr << "bkv-vault: " << cmdline::UsageError(app, e) << "\n";
    return 2;
  }
  std::vector<std::string> words;
  const CLI::App& leaf = cmdline::Selected(app, &words);
  std::vector<std::string> args(words.begin() + 1, words.end());
  for (const std::string& a : leaf.remaining()) args.push_back(a);
  return RunOf(words[0])(args);
}

}  // namespace
}  // namespace bkv::server

int main(int argc, char** argv) { return bkv::server::Main(argc, argv); }
