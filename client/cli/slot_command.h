#ifndef BKV_CLIENT_CLI_SLOT_COMMAND_H_
#define BKV_CLIENT_CLI_SLOT_COMMAND_H_

// `bkv slot list|add|remove` and passkey unlock, behind a plain options
// struct so that any argument parser can drive them. The caller supplies how
// the set is opened (a key file, the vault, a passkey) as a SlotSecret.

#include <cstdio>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "client/blob_store.h"
#include "client/cli/passkey_page.h"
#include "client/key_slots.h"
#include "client/rekey.h"

namespace bkv {

struct SlotCommandOptions {
  enum class Action { kList, kAdd, kRemove };
  Action action = Action::kList;
  // add: the kind of the new slot.
  SlotType add_type = SlotType::kPasskey;
  // add a recovery key, or rekey a set opened with one: where the new
  // 64-digit key is written (mode 0600; must not exist).
  std::string new_key_file;
  // remove: a unique prefix of the slot's id (bkv slot list).
  std::string remove_id;
  PasskeyPageOptions passkey;
  std::string state_dir;
  bool json = false;
  FILE* out = stdout;
  FILE* err = stderr;
};

using SecretSource = std::function<absl::StatusOr<SlotSecret>()>;

// A new slot's secret, and how to take back what making it did outside the
// store (a vault registration, a key file) if the keyring put then fails:
// no orphan is left behind (review #10). `undo` may be empty.
struct NewSlotSecret {
  SlotSecret secret;
  std::function<absl::Status()> undo;
};
using NewSecretSource = std::function<absl::StatusOr<NewSlotSecret>()>;

// `opened_with` opens the set (add, remove); `new_vault_secret` registers and
// returns the secret of a new vault slot (add --vault).
absl::Status RunSlotCommand(BlobStore& store, const SlotCommandOptions& o,
                            const SecretSource& opened_with,
                            const NewSecretSource& new_vault_secret);

// The passkey ceremony on the page, then the slot it names. Errors carry
// PasskeyError kinds (another passkey, wrong output, no prf, timed out,
// closed); none writes the store.
absl::StatusOr<SlotSecret> PasskeySecret(KeySlots& slots,
                                         const PasskeyPageOptions& o);
absl::StatusOr<BackupKey> UnlockWithPasskey(KeySlots& slots,
                                            const PasskeyPageOptions& o);

// Registers `fresh` as the secret the vault releases for the account that
// opened the set with `old` (proving the password again), so the vault never
// again releases what opens the old keyring.
using VaultReregister = std::function<absl::Status(const SecretBytes& old,
                                                   const SecretBytes& fresh)>;

// `bkv rekey`: the set of `from` under a new master key into the empty
// `to`; plaintext passes through a private scratch directory (mode 0700)
// made under `scratch_parent`, removed afterwards. The new keyring's one
// slot gets a fresh secret (review finding 1): a new 64-digit key in
// o.new_key_file, or a new vault secret registered by `reregister` once
// every snapshot is in; a passkey is refused.
absl::Status RunRekeyCommand(BlobStore& from, BlobStore& to,
                             const SecretSource& opened_with,
                             const VaultReregister& reregister,
                             const std::string& scratch_parent,
                             const SlotCommandOptions& o);

// Writes `key`'s 64-digit text to a new file (mode 0600, must not exist).
absl::Status WriteKeyFile(const std::string& path, const BackupKey& key);

}  // namespace bkv

#endif  // BKV_CLIENT_CLI_SLOT_COMMAND_H_
