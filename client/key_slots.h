#ifndef BKV_CLIENT_KEY_SLOTS_H_
#define BKV_CLIENT_KEY_SLOTS_H_

// A backup set's ways in, as stored in its `keyring` object
// (docs/backup-format.md, "Keyring (key slots)"). This is where a user's
// secret (64-digit key, the vault's released secret, a passkey's PRF output)
// becomes the set's master key, and where slots are added and removed with
// the master key in hand. Nothing here talks to a vault or a browser: the
// caller brings the secret.
//
// A store without a keyring is a legacy set: the 64-digit key or the vault's
// secret is the master key itself. The first slot added migrates it: the
// keyring gets a slot for the way it was opened plus the new one, and no
// object is re-encrypted.
//
// Thread-compatible; each call reads the keyring afresh.

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/blob_store.h"
#include "crypto/backup_key.h"
#include "crypto/keyring.h"

namespace bkv {

// The secret a user holds for one slot, and what identifies its slot.
struct SlotSecret {
  SlotType type = SlotType::kRecoveryKey;
  SecretBytes secret;  // 32 bytes
  VaultParams vault;   // kVault: the vault and account it came from
  // kPasskey: the credential that produced `secret`, and the salt it was
  // evaluated on (empty: the slot's own salt, as the caller asked for it).
  std::vector<uint8_t> credential_id;
  std::optional<std::array<uint8_t, PasskeyParams::kSaltSize>> salt;

  static SlotSecret RecoveryKey(const BackupKey& key);
  static SlotSecret Vault(const SecretBytes& released, VaultParams params);
  static SlotSecret Passkey(const SecretBytes& prf_output,
                            std::vector<uint8_t> credential_id);
};

// One line of `bkv slot list`.
struct SlotInfo {
  SlotId id{};
  SlotType type = SlotType::kRecoveryKey;
  std::string
      description;  // "rp localhost, credential 3f2a…", "vault … account …"
};

// What a WebAuthn `get` needs to evaluate every enrolled passkey's PRF in one
// assertion (`allowCredentials` and `prf.evalByCredential`).
struct PasskeyRequest {
  SlotId slot{};
  PasskeyParams params;
};

// Whether a failed keyring change may have reached the store (review
// finding 3): a put whose outcome is unknown is settled by reading the
// keyring again. kWritten: the put landed and a later step (the client's
// state) failed. Carried on the Status; absent means kNotWritten.
enum class KeyringWrite { kNotWritten, kMaybeWritten, kWritten };
KeyringWrite KeyringWriteOf(const absl::Status& status);

struct KeySlotsOptions {
  // Remembers the newest keyring generation per set; empty disables.
  std::string state_dir;
};

class KeySlots {
 public:
  KeySlots(BlobStore& store, KeySlotsOptions options)
      : store_(store), options_(std::move(options)) {}

  // True when the store has a keyring object.
  absl::StatusOr<bool> HasKeyring();
  // The set's master key. Legacy set: the recovery key or vault secret
  // itself (a passkey is NotFound/kNoSlot). Keyring: the matching slot must
  // open (SlotError kinds on failure).
  absl::StatusOr<BackupKey> Unlock(const SlotSecret& secret);
  // The master key for a key an SDK caller hands over without saying what
  // it is (bkv_backup, bkv_repo_open, ...; review #7): a legacy set's key;
  // or, with a keyring, the master key itself or the secret of one of its
  // recovery-key or vault slots (a vault-released secret names no account).
  // PermissionDenied/kWrongSecret when it is none of these.
  absl::StatusOr<BackupKey> MasterFor(const BackupKey& key);
  // Before a legacy set's first keyring: PermissionDenied unless the set's
  // authenticated objects (v2 config and head, v1 manifest) open under
  // `key`; FailedPrecondition for a store with no backup (review #3).
  absl::Status ProveLegacyKey(const BackupKey& key);
  // Before asking the vault (a counted login) or a passkey: NotFound/kNoSlot
  // when the set has a keyring without a slot `who` (its secret unused) could
  // open, DataLoss when the keyring does not decode. OK for a legacy set.
  absl::Status ExpectSlot(const SlotSecret& who);

  absl::StatusOr<std::vector<SlotInfo>> List();
  // The passkey slots, for the assertion's per-credential salts.
  absl::StatusOr<std::vector<PasskeyRequest>> PasskeyRequests();

  // The changes below open the set with `opened_with` first (so the
  // keyring they rewrite is the authentic one), change it in memory and
  // store it whole with generation + 1. Add and Remove apply themselves
  // again (at most 3 tries) when another client changed the keyring in
  // between (a newer generation sealed by the master key).
  //
  // Adds a slot for `added` with `params` (ParamsFor, or a passkey's). A
  // legacy set gets its keyring here: `opened_with` becomes its first slot.
  absl::StatusOr<SlotId> Add(const SlotSecret& opened_with,
                             const SlotSecret& added,
                             std::vector<uint8_t> params);
  // Removes the slot whose id starts with `id_prefix` (hex). Returns true
  // when that slot's secret is the master key itself (a migrated set's first
  // slot): only a rekey locks its holder out. The last slot is refused.
  absl::StatusOr<bool> Remove(const SlotSecret& opened_with,
                              const std::string& id_prefix);
  // Passkey salt rotation: re-wraps the slot `old_output` opens under
  // `new_salt` with `new_output` (both from one assertion: eval.first and
  // eval.second).
  // The master key and the slot `secret` opened (for a legacy set, a slot
  // of its type with ParamsFor's parameters; nothing is written).
  absl::StatusOr<std::pair<BackupKey, KeySlot>> UnlockSlot(
      const SlotSecret& secret);
  // Writes this store's first keyring for `master`, with one slot like
  // `like` (type and parameters) under `secret`. FailedPrecondition when the
  // store already has one (looked for right before the put). `new_set`: a
  // set this client just made (rekey, into a store it found empty), so the
  // URL is pinned to it anew, whatever this client saw there before.
  absl::Status CreateKeyring(const BackupKey& master, const KeySlot& like,
                             const SlotSecret& secret, bool new_set = false);
  absl::Status RotatePasskeySalt(
      const SlotSecret& old_output,
      const std::array<uint8_t, PasskeyParams::kSaltSize>& new_salt,
      const SecretBytes& new_output);

 private:
  // The verified keyring and its master key, or the legacy key.
  struct Opened {
    std::optional<Keyring> ring;
    BackupKey master;
    SlotId slot{};  // the slot that opened it (ring only)
  };
  absl::StatusOr<std::optional<Keyring>> Read();
  // One try of Add / Remove (Aborted when another client's change came in
  // between; the public calls then apply it again).
  absl::StatusOr<SlotId> AddOnce(const SlotSecret& opened_with,
                                 const SlotSecret& added,
                                 std::vector<uint8_t> params);
  absl::StatusOr<bool> RemoveOnce(const SlotSecret& opened_with,
                                  const std::string& id_prefix);
  absl::StatusOr<Opened> Open(const SlotSecret& secret);
  // DataLoss when this client saw a keyring at this store URL.
  absl::Status KeyringGone();
  // kFirst/kNewSet: the store must still have no keyring right before the
  // put; kUpdate: it must still hold the bytes Read gave (StillAsRead). The
  // pin is checked before the put (kNewSet: replaced after it).
  enum class WriteMode { kUpdate, kFirst, kNewSet };
  absl::Status Write(Keyring& ring, const BackupKey& master,
                     WriteMode mode = WriteMode::kUpdate);
  // After a failed put of `written`: what the store now holds.
  KeyringWrite AfterFailedPut(const std::vector<uint8_t>& written,
                              WriteMode mode);
  // Aborted when another client changed the keyring since Read (its
  // generation moved past `generation`, sealed by `master`), DataLoss when
  // it changed otherwise.
  absl::Status StillAsRead(const SetId& set_id, uint64_t generation,
                           const SecretBytes& master);
  // The generation, per set id and per store URL, after CheckPin.
  absl::Status Remember(const Keyring& ring, const SecretBytes& master);
  // DataLoss when this store URL held another set id or master key;
  // `record`: pins an unpinned URL (after a verified read or a put).
  absl::Status CheckPin(const Keyring& ring, const SecretBytes& master,
                        bool record = true);
  // Pins this store URL to `ring`'s set and master key, replacing any pin.
  absl::Status Repin(const Keyring& ring, const SecretBytes& master);

  BlobStore& store_;
  KeySlotsOptions options_;
  std::vector<uint8_t> read_bytes_;  // the keyring as Read last got it
};

// The parameters `added` needs: empty for a key, VaultParams for the vault;
// a passkey's are built by the caller (rp id, credential id, salt).
std::vector<uint8_t> ParamsFor(const SlotSecret& s);

}  // namespace bkv

#endif  // BKV_CLIENT_KEY_SLOTS_H_
