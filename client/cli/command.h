#ifndef BKV_CLIENT_CLI_COMMAND_H_
#define BKV_CLIENT_CLI_COMMAND_H_

// What every `bkv` command shares: its parsed arguments and context, the
// one error-to-exit-code contract, output formatting, the store, the
// repository and the key's source. The parser (command_tree.h) fills Args;
// the command files (backup_commands.cc, repo_commands.cc, ...) read it.

#include <array>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/blob_store.h"
#include "client/cancel.h"
#include "client/cli/cli.h"
#include "client/cli/interrupt.h"
#include "client/cli/passkey_page.h"
#include "client/key_slots.h"
#include "client/repo/repository.h"
#include "client/threshold_client.h"
#include "client/vault_client.h"
#include "crypto/backup_key.h"
#include "crypto/secret_bytes.h"

namespace bkv::cli {

class CommandTree;

struct Args {
  std::vector<std::string> words;     // the command, e.g. {"vault", "status"}
  std::vector<std::string> operands;  // its positional arguments
  // "--flag" -> value ("1" for a switch), then the environment's and the
  // config file's settings (settings.h) for what the command line left out.
  std::map<std::string, std::string> values;
  bool json = false;
  bool no_compress = false;
  bool read_data = false;
};

struct Context {
  Context(FILE* o, FILE* e) : out(o), err(e) {}
  Args args;
  FILE* out;
  FILE* err;
  // Cancelled by SIGINT/SIGTERM once a command arms `interrupts`; every
  // store operation and vault RPC observes it.
  CancelToken cancel;
  std::optional<InterruptWatcher> interrupts;
  // What a store could not clean up after a stopped or failed write
  // (BlobStore::FailedCleanups), gathered as each store closes.
  std::vector<std::string> failed_cleanups;
  const CommandTree* tree = nullptr;  // the parser, for `bkv completion`
};

// Armed after the password prompts (which keep Ctrl-C's default: it ends
// the process before anything was written).
void CatchInterrupts(Context& c);

// Errors and exit codes (cli.h lists the codes).
absl::Status Usage(std::string_view msg);  // a command-line mistake: exit 2
// exit 128 + sig; `failed`: what the stores could not clean up.
absl::Status Interrupted(int sig, const std::vector<std::string>& failed);
// An outcome with its own exit code: 15 (kLeaverLeft: a migration left a
// realm holding the old version), 16 (kChangedDegraded: a realm password
// change in force, a realm lags).
absl::Status WithExit(ExitCode code, std::string_view msg);
int ExitFor(const absl::Status& s);  // the one Status -> exit code map
// A status whose details the command already printed as JSON.
inline constexpr char kReportedPayload[] = "bkv.cli/reported";

// Flag values; Need is a usage error when the flag is missing or empty,
// Value is "" then.
absl::StatusOr<std::string> Need(const Args& a, const std::string& flag);
std::string Value(const Args& a, const std::string& flag);

std::string JsonString(std::string_view s);
std::string JsonArray(const std::vector<std::string>& items);
std::string Human(double bytes);  // 1.5 MiB
std::string UtcTime(int64_t unix_ms);
// The first 16 KiB of `path` (`what` names it in errors), trailing newlines
// dropped. `no_symlink`: a symbolic link there is refused (O_NOFOLLOW).
absl::StatusOr<std::string> ReadSmallFile(const std::string& path,
                                          const std::string& what,
                                          bool no_symlink = false);

// The store of `flag` (--to creates a file store; --from only reads one),
// seen through the command's cancellation.
absl::StatusOr<std::unique_ptr<BlobStore>> Store(Context& c,
                                                 const std::string& flag);
// What killed runs left in a store (BlobStore::FindLeftovers): found by
// `bkv check`, deleted by the next backup and by prune.
struct StoreLeftovers {
  size_t objects = 0;
  uint64_t bytes = 0;
  std::string unlisted;  // why they could not be listed, or ""
  // ,"KEY":{"objects":N,"bytes":B,"listed":true}
  std::string JsonField(std::string_view key) const;
  std::string Line() const;  // "leftovers: ...", for people
};
// Lists them; deletes nothing.
StoreLeftovers FindStoreLeftovers(BlobStore& store);
// Deletes them and says so on stderr.
StoreLeftovers SweepStore(Context& c, BlobStore& store);
// Where the client remembers rollback counters (snapshot sequence, keyring
// generation): $BKV_STATE_DIR, $XDG_STATE_HOME/bkv or ~/.local/state/bkv.
std::string StateDir();
absl::StatusOr<std::unique_ptr<Repository>> OpenRepo(const Args& a,
                                                     BlobStore& store,
                                                     const BackupKey& key,
                                                     bool create,
                                                     RepoOptions o = {});

// The key's source (key_source.cc): a key file, or the vault behind a
// password.
struct Vault {
  std::unique_ptr<client::VaultClient> client;
  std::string account;
};
absl::StatusOr<SecretBytes> AskPassword(const Args& a, const char* what);
absl::Status ConfirmNewPassword(const Args& a, const SecretBytes& pw,
                                const std::string& account);
absl::Status Explained(const absl::Status& s);
absl::StatusOr<Vault> OpenVault(const Args& a, FILE* err);
absl::StatusOr<BackupKey> ReadKeyFile(const std::string& path);
// The secret the user holds: a key file, or what the vault releases behind a
// password. With the vault, a backup (`register_into` is its store) into an
// account that has no key yet registers a fresh one.
absl::StatusOr<SlotSecret> LoadSecret(const Args& a, FILE* err,
                                      BlobStore* register_into = nullptr);
// A recovery through realms returns the key before its rotation ends; the
// command runs on and this, called once before the CLI exits, waits for the
// rotation and says on `err` why it failed (docs/threshold.md).
void WaitForRealmRotation(FILE* err);
// A client of the realm set in `path` (--token-dir, the vault flags, the
// state directory). A set's keyring slot label: client::RealmSetDigest.
// `retired`: realms that need no token file (the migration's new file says
// they are gone: docs/threshold.md, "A realm that left for good").
absl::StatusOr<std::unique_ptr<client::ThresholdClient>> OpenRealms(
    const Args& a, FILE* err, const std::string& path,
    std::span<const client::RetiredRealm> retired = {});
// A vault slot names the pinned vault key and the account.
absl::StatusOr<VaultParams> VaultSlotParams(const Args& a, const Vault& v);
// --rp-id, --passkey-timeout, --open.
absl::StatusOr<PasskeyPageOptions> PasskeyOptions(const Args& a, FILE* err);
// With --vault: the keyring (if any) has a slot for this vault and account,
// checked before any login.
absl::Status ExpectVaultSlot(const Args& a, KeySlots& slots);
// The master key: the secret above (or a passkey, --passkey) opens a slot
// of the store's keyring, or is the key itself in a set from before slots.
absl::StatusOr<BackupKey> LoadKey(const Args& a, FILE* err, BlobStore& store,
                                  bool may_register = false);

}  // namespace bkv::cli

#endif  // BKV_CLIENT_CLI_COMMAND_H_
