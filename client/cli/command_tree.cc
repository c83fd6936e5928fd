#include "client/cli/command_tree.h"

#include <CLI/CLI.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cmdline/cmdline.h"

namespace bkv::cli {
namespace {

constexpr char kVersion[] = "bkv " BKV_PROJECT_VERSION
                            " (vault protocol 2, repository format 2 with "
                            "trees and named chunk ids (config 4; reads 2 "
                            "and 3), backup stream format 1)";

}  // namespace

CommandTree::CommandTree(Context& c)
    : c_(c), root_(cmdline::MakeRoot("bkv", kVersion)) {}

CommandTree::~CommandTree() = default;

CLI::App* CommandTree::Add(CLI::App& parent, const char* name,
                           const char* summary, const char* details,
                           RunFn run) {
  CLI::App* cmd = parent.add_subcommand(name, summary);
  if (details && *details) cmd->footer(cmdline::Wrap(details));
  cmd->set_version_flag("--version", kVersion, "the version");
  if (run == nullptr) {
    cmd->require_subcommand(1);
    return cmd;
  }
  runs_[cmd] = run;
  Switch(cmd, "--json",
         "machine-readable output on stdout (docs/operations.md, \"JSON "
         "output\")");
  Value(cmd, "--config", "FILE",
        "settings file (default ~/.config/bkv/config.toml)");
  return cmd;
}

CLI::Option* CommandTree::Value(CLI::App* cmd, const char* flag,
                                const char* type, const char* help) {
  std::string name = flag;
  return cmdline::NeedsValue(
      cmd->add_option_function<std::string>(
             name,
             [this, name](const std::string& v) { c_.args.values[name] = v; },
             help)
          ->type_name(type));
}

CLI::Option* CommandTree::Switch(CLI::App* cmd, const char* flag,
                                 const char* help) {
  std::string name = flag;
  return cmd->add_flag_callback(
      name, [this, name] { c_.args.values[name] = "1"; }, help);
}

CLI::Option* CommandTree::Operand(CLI::App* cmd, const char* name,
                                  const char* help) {
  return cmd
      ->add_option_function<std::string>(
          name, [this](const std::string& v) { c_.args.operands.push_back(v); },
          help)
      ->required();
}

void CommandTree::KeyFlags(CLI::App* cmd) {
  Value(cmd, "--key-file", "F", "the 64-digit backup key (bkv key new)");
  VaultFlags(cmd);
  PasskeyFlags(cmd);
}

void CommandTree::PasskeyFlags(CLI::App* cmd) {
  Switch(cmd, "--passkey",
         "open the set with a passkey on a one-time page on 127.0.0.1");
  Switch(cmd, "--open", "with --passkey: open the page in $BROWSER");
  Value(cmd, "--rp-id", "ID",
        "the passkeys' relying party (default: bkv.localhost to enrol, "
        "the slots' own to unlock)");
  Value(cmd, "--passkey-timeout", "S",
        "give up on the page after S seconds (default 120)");
}

namespace {

struct FlagSpec {
  const char* name;
  const char* type;  // nullptr: a switch
  const char* help;
};

constexpr FlagSpec kVaultFlags[] = {
    {"--password-stdin", nullptr,
     "read the vault password from stdin instead of the terminal"},
    {"--vault", "ADDR",
     "the vault (host:port; ADDR,ADDR,... for the nodes of one vault)"},
    {"--vault-key", "HEX",
     "its public key or fingerprint, pinned (bkv-vault hsm status)"},
    {"--account", "ID", "the vault account"},
    {"--realms", "F",
     "threshold realms instead of --vault: the realm-set file "
     "(docs/threshold.md)"},
    {"--token-dir", "D",
     "with --realms: one account token file per realm, named by realm id"},
    {"--token-file", "F", "account token (or $BKV_ACCOUNT_TOKEN)"},
    {"--vault-ca", "F",
     "TLS, trusting these PEM roots (required unless the vault is on "
     "loopback)"},
    {"--insecure-plaintext", nullptr,
     "allow plaintext to a non-loopback vault: DANGEROUS, the account token "
     "(a bearer credential) and the whole exchange cross the network in the "
     "clear"},
    {"--opaque-context", "S",
     "the vault's OPAQUE context (default \"bkv OPAQUE v1\")"},
    {"--server-identity", "S",
     "the vault's OPAQUE server identity, if configured"},
    {"--max-wait", "SECONDS",
     "longest total wait when the vault asks to retry later (default 5)"},
};

}  // namespace

void CommandTree::VaultFlags(CLI::App* cmd) {
  for (const FlagSpec& f : kVaultFlags) {
    CLI::Option* o = f.type ? Value(cmd, f.name, f.type, f.help)
                            : Switch(cmd, f.name, f.help);
    o->group("vault flags");
  }
}

const CLI::App& CommandTree::Selected(std::vector<std::string>* words) const {
  return cmdline::Selected(*root_, words);
}

RunFn CommandTree::RunOf(const CLI::App& cmd) const {
  auto it = runs_.find(&cmd);
  return it == runs_.end() ? nullptr : it->second;
}

std::vector<std::string> CommandTree::Names() const {
  return cmdline::CommandNames(*root_);
}

std::string CommandTree::BashCompletion() const {
  return cmdline::BashCompletion(*root_, "_bkv");
}

}  // namespace bkv::cli
