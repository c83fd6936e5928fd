#ifndef BKV_CRYPTO_KEYRING_H_
#define BKV_CRYPTO_KEYRING_H_

// Key slots: one master key per backup set, wrapped once per way in
// (docs/backup-format.md, "Keyring (key slots)").
//
//   keyring = body || mac(32)
//   body    = "BKVKEYR1" || u16 format = 1 || set id16 || u64 generation ||
//             u32 n || n x ( slot id16 || u8 type || str params || str wrap )
//   wrap    = nonce(12) || AES-256-GCM(kek, nonce, master key, AD) || tag(16)
//   kek     = HKDF-SHA512(set id, slot secret, "bkv keyring v1 slot key" || AD)
//   AD      = "bkv keyring v1 slot" || 0x00 || set id || slot id || type ||
//             str params
//   mac     = HMAC-SHA512(HKDF-SHA512(set id, master key,
//                                     "bkv keyring v1 ring key"), body)[0..32]
//
// A Keyring is a value: Decode checks structure only; Open returns the
// master key only after the slot's wrap opened and the MAC over the whole
// keyring verified. Changes happen in memory and Encode seals them (with the
// master key) under generation + 1. Thread-compatible.

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "crypto/secret_bytes.h"

namespace bkv {

enum class SlotType : uint8_t { kRecoveryKey = 1, kVault = 2, kPasskey = 3 };
std::string_view SlotTypeName(SlotType type);

using SlotId = std::array<uint8_t, 16>;
using SetId = std::array<uint8_t, 16>;

// Why a keyring refused a secret; carried on the Status (SlotErrorOf) so
// that callers map each to its own exit code without parsing messages.
enum class SlotError {
  kNoSlot,       // no slot of that type / for that credential (NotFound)
  kWrongSecret,  // the slot's wrap does not open (PermissionDenied)
  kTampered,     // structure or MAC wrong (DataLoss)
  kRolledBack,   // older generation than this client saw (DataLoss)
  kLastSlot,     // removing the only slot (FailedPrecondition)
};
absl::Status SlotStatus(SlotError kind, absl::Status status);
std::optional<SlotError> SlotErrorOf(const absl::Status& status);

// A passkey slot's public parameters: which credential, for which relying
// party, and the PRF salt (WebAuthn `prf` eval.first) it was wrapped under.
struct PasskeyParams {
  static constexpr size_t kSaltSize = 32;
  std::string rp_id;
  std::vector<uint8_t> credential_id;
  std::array<uint8_t, kSaltSize> salt{};
};
// A vault slot's: the vault's pinned public key and the account.
struct VaultParams {
  std::array<uint8_t, 32> vault_key{};
  std::string account;
};
std::vector<uint8_t> EncodePasskeyParams(const PasskeyParams& p);
absl::StatusOr<PasskeyParams> DecodePasskeyParams(
    std::span<const uint8_t> bytes);
std::vector<uint8_t> EncodeVaultParams(const VaultParams& p);
absl::StatusOr<VaultParams> DecodeVaultParams(std::span<const uint8_t> bytes);

struct KeySlot {
  SlotId id{};
  SlotType type = SlotType::kRecoveryKey;
  std::vector<uint8_t> params;  // per type, see above; empty for a key
  std::vector<uint8_t> wrap;    // 60 bytes
};

class Keyring {
 public:
  static constexpr char kObjectName[] = "keyring";
  static constexpr size_t kMasterKeySize = 32;
  static constexpr size_t kSecretSize = 32;
  static constexpr size_t kMaxSlots = 64;
  static constexpr size_t kMaxParams = 4096;

  // An empty keyring for a set: a random set id, generation 0. Encode needs
  // at least one slot.
  static Keyring Create();
  // Structure only (DataLoss / Unimplemented); nothing is authenticated
  // until Open.
  static absl::StatusOr<Keyring> Decode(std::span<const uint8_t> bytes);

  // Unwraps slot `id` with `secret` (kWrongSecret), then verifies the MAC of
  // the decoded keyring under the master key (kTampered).
  absl::StatusOr<SecretBytes> Open(const SlotId& id,
                                   const SecretBytes& secret) const;
  // True when `secret` opens slot `id`'s wrap (no MAC check): how a slot
  // whose secret is the master key itself (a migrated set) is recognised.
  bool Unwraps(const SlotId& id, const SecretBytes& secret) const;
  // True when the decoded MAC verifies under `master`: `master` is this
  // keyring's master key (an SDK caller handing over the key itself).
  bool SealedBy(const SecretBytes& master) const;

  // Adds a slot wrapping `master` under `secret`; returns its id.
  absl::StatusOr<SlotId> Add(const SecretBytes& master, SlotType type,
                             std::vector<uint8_t> params,
                             const SecretBytes& secret);
  // Re-wraps slot `id` under new parameters and secret, keeping its id
  // (passkey salt rotation).
  absl::Status Rewrap(const SlotId& id, const SecretBytes& master,
                      std::vector<uint8_t> params, const SecretBytes& secret);
  // Refuses to remove the last slot (kLastSlot); NotFound for an unknown id.
  absl::Status Remove(const SlotId& id);

  // body || mac under `master`, with generation + 1 (also kept here).
  absl::StatusOr<std::vector<uint8_t>> Encode(const SecretBytes& master);

  const SetId& set_id() const { return set_id_; }
  uint64_t generation() const { return generation_; }
  const std::vector<KeySlot>& slots() const { return slots_; }
  const KeySlot* Find(const SlotId& id) const;

 private:
  Keyring() = default;
  std::vector<uint8_t> Body() const;
  absl::StatusOr<std::vector<uint8_t>> Wrap(const SlotId& id, SlotType type,
                                            std::span<const uint8_t> params,
                                            const SecretBytes& master,
                                            const SecretBytes& secret) const;
  absl::StatusOr<SecretBytes> Unwrap(const KeySlot& slot,
                                     const SecretBytes& secret) const;

  SetId set_id_{};
  uint64_t generation_ = 0;
  std::vector<KeySlot> slots_;
  std::vector<uint8_t> mac_;  // as decoded; empty for a new keyring
};

std::string SlotIdHex(const SlotId& id);

// A public tag of a set's master key, for a client to remember which key
// the set at a store URL is under (review #2): HKDF-SHA512(set id, master,
// "bkv keyring v1 master fingerprint")[0..16]. One-way: it reveals nothing
// of the key.
std::array<uint8_t, 16> MasterFingerprint(const SetId& set,
                                          const SecretBytes& master);

}  // namespace bkv

#endif  // BKV_CRYPTO_KEYRING_H_
