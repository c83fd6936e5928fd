// `bkv`: the parser setup. The commands live in one file per group
// (key_commands.cc, backup_commands.cc, repo_commands.cc, store_commands.cc,
// vault_commands.cc), each with one registration function listed in
// kRegistrations; command_tree.h has the parser.
#include "client/cli/cli.h"

#include <CLI/CLI.hpp>
#include <optional>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/cli/command.h"
#include "client/cli/command_tree.h"
#include "client/cli/settings.h"
#include "cmdline/cmdline.h"

namespace bkv::cli {
namespace {

constexpr char kAbout[] =
    "Encrypted, incremental backups under a 64-digit key or a vault "
    "password. `bkv COMMAND --help` lists a command's flags.";

constexpr char kFooter[] =
    R"(a passkey instead of a key file (every command that opens a set):
  --passkey [--open] [--rp-id ID] [--passkey-timeout S]
                                      serves a one-time page on 127.0.0.1,
                                      prints its URL (opens $BROWSER with
                                      --open)
password instead of a key file (backup, restore, list):
  --vault ADDR [--password-stdin]     the key is kept by bkv-vault behind a
                                      password, asked on the terminal (twice
                                      when set; 8+ characters, 30+ bits by
                                      zxcvbn) or read from stdin; the first
                                      backup registers a new key;
                                      ADDR,ADDR,... names several nodes of
                                      one vault (failover, docs/operations.md)
  --vault-key HEX                     the vault's public key (64 hex digits,
                                      `bkv-vault hsm status`), pinned; or
                                      $BKV_VAULT_KEY
  --account ID                        or $BKV_ACCOUNT
  --token-file F                      account token; or $BKV_ACCOUNT_TOKEN
  --vault-ca F                        use TLS, trusting these PEM roots
                                      (required unless the vault is on
                                      loopback)
  --insecure-plaintext                plaintext to a non-loopback vault:
                                      DANGEROUS, the account token goes
                                      out in the clear
  --realms F --token-dir D            instead of --vault: the key is split
                                      across threshold realms (a t-of-n
                                      realm-set file, docs/threshold.md);
                                      D holds a token file per realm id
  --opaque-context S, --server-identity S
                                      must match the vault's (GetVaultInfo)
  --max-wait SECONDS                  longest wait when the vault asks to
                                      retry later (default 5)
options:
  --json          machine-readable output on stdout (schemas:
                  docs/operations.md, "JSON output")
  --lock-wait S   backup: wait up to S seconds (default 300) for a
                  running prune to finish
  --help          this text
  --version       the version
store URLs:
  file:///dir
  s3://bucket/prefix?endpoint=https://host:port&region=R
      credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
  webdav://host:port/path, webdavs://host/path
      credentials: BKV_WEBDAV_USER, BKV_WEBDAV_PASSWORD
settings: flags first, then the environment, then a config file
  (--config FILE, else $XDG_CONFIG_HOME/bkv/config.toml or
  ~/.config/bkv/config.toml; TOML, e.g. store = "file:///backups"):
  BKV_STORE (store: --to of backup, --from of the rest), BKV_KEY_FILE
  (key_file), BKV_VAULT (vault), BKV_VAULT_KEY (vault_key), BKV_ACCOUNT
  (account), BKV_TOKEN_FILE (token_file), BKV_VAULT_CA (vault_ca),
  BKV_ACCOUNT_TOKEN (never in the file: no secret is). docs/operations.md,
  "Client settings"
Keys are never taken from the command line: use --key-file.
A progress bar is drawn on stderr when it is a terminal.
exit codes:
  0 success
  1 other failure
  2 usage error, or a vault that is not the configured one
  3 wrong key (or the store refused its credentials)
  4 backup or backup list corrupted or tampered with (see bkv repair)
  5 not found
  6 store unavailable or I/O error
  7 the output already exists (a restore target that is not an empty
    folder, the FILE of key new --out)
  8 vault: locked, the key is destroyed (delete, then register anew)
  9 vault: the account token was refused
  10 passkey: the passkey used has no slot in this set (another passkey)
  11 passkey: its PRF output does not open its slot (another salt)
  12 passkey: the authenticator does not support the prf extension
  13 passkey page: no result before --passkey-timeout (default 120 s)
  14 passkey page: closed, or the browser's prompt was cancelled
  15 realms migrate: the key moved, but a realm that left still holds the
     replaced registration (run it again; see its message)
  16 vault change-password --realms: the NEW password is in force, but a
     realm named on stderr did not take it (tell its operator; the next
     recovery repairs it)
  17 vault change-password --realms: either password may be in force (its
     commit was cut; the message says which): run the same change again.
     Any other non-zero exit of it: the OLD password is in force
  130 interrupted by SIGINT (Ctrl-C), 143 by SIGTERM: the run's temporary
      objects and partial files were deleted)";

absl::Status Completion(Context& c) {
  std::fputs(c.tree->BashCompletion().c_str(), c.out);
  return absl::OkStatus();
}

void RegisterCompletionCommand(CommandTree& t) {
  CLI::App* cmd =
      t.Add(t.root(), "completion", "a bash completion script for bkv",
            "`cmake --install` puts it in "
            "share/bash-completion/completions.",
            Completion);
  t.Operand(cmd, "SHELL", "bash")->check(CLI::IsMember({"bash"}));
}

// The commands, in the order `bkv --help` lists them.
using Registration = void (*)(CommandTree&);
constexpr Registration kRegistrations[] = {
    RegisterKeyCommands,   RegisterBackupCommands,    RegisterRepoCommands,
    RegisterStoreCommands, RegisterVaultCommands,     RegisterSlotCommands,
    RegisterRealmCommands, RegisterCompletionCommand,
};

void Register(CommandTree& tree) {
  tree.root().description(kAbout);
  tree.root().footer(kFooter);
  for (Registration r : kRegistrations) r(tree);
}

// Secrets have no flag by design; the refusal says what to use instead.
absl::Status RefuseSecretFlags(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const std::string_view flag = arg.substr(0, arg.find('='));
    if (flag == "--key" || flag == "--password") {
      return Usage(absl::StrCat(
          std::string(flag),
          " is not accepted: secrets never go on the command line; use "
          "--key-file FILE (or --password-stdin with --vault)"));
    }
  }
  return absl::OkStatus();
}

// Fills c.args from argv, then from the environment and the config file.
// An exit code when that is all there is to do: help, the version, or a
// usage error (said on stderr).
std::optional<int> Parse(CommandTree& tree, int argc, char** argv, Context& c) {
  if (absl::Status s = RefuseSecretFlags(argc, argv); !s.ok()) {
    std::fprintf(c.err, "bkv: %s\n", std::string(s.message()).c_str());
    return kUsage;
  }
  try {
    tree.root().parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::fputs(tree.root().help().c_str(), c.out);
    return kOk;
  } catch (const CLI::CallForVersion& v) {
    std::fprintf(c.out, "%s\n", v.what());
    return kOk;
  } catch (const CLI::ParseError& e) {
    std::fprintf(c.err, "bkv: %s\n",
                 cmdline::UsageError(tree.root(), e).c_str());
    return kUsage;
  }
  tree.Selected(&c.args.words);
  c.args.json = c.args.values.count("--json") > 0;
  c.args.no_compress = c.args.values.count("--no-compress") > 0;
  c.args.read_data = c.args.values.count("--read-data") > 0;
  absl::Status applied = ApplySettings(c.args.values, c.args.words[0],
                                       Value(c.args, "--config"), ProcessEnv);
  if (!applied.ok()) {
    std::fprintf(c.err, "bkv: usage: %s\n",
                 std::string(applied.message()).c_str());
    return kUsage;
  }
  return std::nullopt;
}

}  // namespace

std::vector<std::string> CommandNames() {
  Context c(stdout, stderr);
  CommandTree tree(c);
  Register(tree);
  return tree.Names();
}

int Run(int argc, char** argv, FILE* out, FILE* err) {
  Context c(out, err);
  CommandTree tree(c);
  Register(tree);
  c.tree = &tree;
  if (std::optional<int> done = Parse(tree, argc, argv, c)) return *done;
  CancelScope vault_calls(&c.cancel);
  absl::Status s = tree.RunOf(tree.Selected(nullptr))(c);
  WaitForRealmRotation(err);
  if (s.ok()) return kOk;
  if (c.interrupts && c.interrupts->signal() != 0) {
    s = Interrupted(c.interrupts->signal(), c.failed_cleanups);
  }
  std::fprintf(err, "bkv: %s\n", std::string(s.message()).c_str());
  if (c.args.json && !s.GetPayload(kReportedPayload)) {
    std::fprintf(out, "{\"error\":%s,\"exit_code\":%d}\n",
                 JsonString(std::string(s.message())).c_str(), ExitFor(s));
  }
  return ExitFor(s);
}

}  // namespace bkv::cli
