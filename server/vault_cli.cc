#include "server/vault_cli.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "cmdline/cmdline.h"

namespace bkv::server {
namespace {

constexpr char kVersion[] =
    "bkv-vault " BKV_PROJECT_VERSION " (vault protocol version 2)";

// PINs have no flag by design; these are the names an operator might try.
constexpr std::string_view kPinFlags[] = {"--pin", "--user-pin", "--so-pin",
                                          "--hsm-pin", "--hsm-so-pin"};

// The refusal for the first PIN-like flag in `args` (its value is never
// repeated), or "".
std::string RefusedSecretFlag(const std::vector<std::string>& args) {
  for (const std::string& arg : args) {
    const std::string_view flag =
        std::string_view(arg).substr(0, arg.find('='));
    if (std::find(std::begin(kPinFlags), std::end(kPinFlags), flag) !=
        std::end(kPinFlags)) {
      return absl::StrCat(
          std::string(flag),
          " is not accepted: PINs never go on the command line; use "
          "--pin-file FILE (--so-pin-file, --hsm-pin-file) or $BKV_HSM_PIN");
    }
  }
  return "";
}

}  // namespace

VaultCli::VaultCli() : root_(cmdline::MakeRoot("bkv-vault", kVersion)) {}

VaultCli::~VaultCli() = default;

CLI::App* VaultCli::Add(CLI::App& parent, const char* name, const char* summary,
                        const char* details, RunFn run) {
  CLI::App* cmd = parent.add_subcommand(name, summary);
  if (details && *details) cmd->footer(cmdline::Wrap(details));
  cmd->set_version_flag("--version", kVersion, "the version");
  if (run) {
    runs_[cmd] = std::move(run);
  } else {
    cmd->require_subcommand(1);
  }
  return cmd;
}

CLI::Option* VaultCli::Value(CLI::App* cmd, const char* flag,
                             std::string& value, const char* type,
                             const char* help) {
  return cmdline::NeedsValue(
      cmd->add_option(flag, value, help)->type_name(type));
}

CLI::Option* VaultCli::SoPinFile(CLI::App* cmd, std::string& file) {
  return Value(cmd, "--so-pin-file", file, "FILE",
               "the token's security-officer PIN (mode 0600)")
      ->required();
}

CLI::Option* VaultCli::Switch(CLI::App* cmd, const char* flag, bool& value,
                              const char* help) {
  return cmd->add_flag(flag, value, help);
}

int VaultCli::Main(int argc, const char* const* argv, Io io) {
  // Set last: a subcommand would inherit it.
  root_->footer(
      "`bkv-vault COMMAND [SUBCOMMAND] --help` lists a command's flags.\n"
      "Exit codes: 0 done, 1 failed (the reason is on stderr or in the log), "
      "2 usage error.");
  std::vector<std::string> args = cmdline::Arguments(argc, argv);
  if (std::string refused = RefusedSecretFlag(args); !refused.empty()) {
    io.err << "bkv-vault: " << refused << "\n";
    return kExitUsage;
  }
  std::reverse(args.begin(), args.end());  // CLI11 takes them last first
  try {
    root_->parse(args);
  } catch (const CLI::CallForHelp&) {
    io.out << root_->help();
    return kExitOk;
  } catch (const CLI::CallForVersion& v) {
    io.out << v.what() << "\n";
    return kExitOk;
  } catch (const CLI::ParseError& e) {
    io.err << "bkv-vault: " << cmdline::UsageError(*root_, e) << "\n";
    return kExitUsage;
  }
  auto run = runs_.find(&cmdline::Selected(*root_, nullptr));
  return run->second(io);  // only leaves parse: groups need a subcommand
}

std::string VaultCli::BashCompletion() const {
  return cmdline::BashCompletion(*root_, "_bkv_vault");
}

}  // namespace bkv::server
