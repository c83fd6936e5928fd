#ifndef BKV_HSM_KEY_CEREMONY_H_
#define BKV_HSM_KEY_CEREMONY_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "hsm/ake_key_pair.h"
#include "hsm/pkcs11_hsm.h"
#include "hsm/token_sealer.h"

namespace bkv::hsm {

struct CeremonyOptions {
  // Destroys every bkv key on the token and makes new ones. Everything sealed
  // before becomes unreadable and clients must re-pin the public key.
  bool force_new_keys = false;
};

struct CeremonyReport {
  struct Key {
    std::string label;
    bool created;  // false: an existing key was kept
  };
  std::vector<Key> keys;
  AkeKeyPair::PublicKey ake_public_key{};
  std::string ake_fingerprint_hex;
};

// The key ceremony behind `bkv-vault hsm init` (key labels: key_labels.h).
// Idempotent: keys already on the token are checked (sensitive,
// non-extractable, right type and size) and kept; missing ones are generated
// inside the token. The AKE scalar comes from libsodium
// (crypto_core_ristretto255_scalar_random), is wrapped inside the token and
// stored only wrapped. Ends by loading the AKE key pair back, so a report
// means the keys work. A half-made AKE pair is refused rather than repaired.
absl::StatusOr<CeremonyReport> RunKeyCeremony(Pkcs11Hsm& hsm,
                                              const CeremonyOptions& options);

// What `bkv-vault hsm status` shows: which objects exist, and the public key.
struct KeyInventory {
  struct Entry {
    std::string label;
    bool present;
  };
  std::vector<Entry> entries;
  std::optional<AkeKeyPair::PublicKey> ake_public_key;
  bool complete() const;
};
absl::StatusOr<KeyInventory> InspectKeys(Pkcs11Hsm& hsm);

// The one verdict `hsm status` and `serve` share: FailedPrecondition naming
// every missing or unreadable object and the recovery procedure (restore
// the token from its backup; a new key would orphan every record).
absl::Status CheckInventory(const KeyInventory& inventory,
                            absl::string_view token_description);
absl::Status RequireAllKeys(Pkcs11Hsm& hsm);

// Everything the vault needs from the token, found by label.
struct VaultKeys {
  static absl::StatusOr<VaultKeys> Load(std::shared_ptr<Pkcs11Hsm> hsm);

  TokenSealer sealer;
  TokenKeyedHash oprf_seed;
  AkeKeyPair ake;
};

// Check values of the vault's keys, kept beside the records they protect
// (`serve` keeps them in <data_dir>/kKeyCheckFile). A key object that was
// replaced, regenerated or damaged changes its check value: a flipped bit
// in a SoftHSM object file can leave a key that loads and passes every
// self-test yet is not the key the records were made with. One line per
// key, "<label> <hex>": the OPRF seed's HMAC of a fixed label (truncated to
// 32 bytes), a blob sealed under the record key, the AKE public key. None
// of them reveals a key.
inline constexpr absl::string_view kKeyCheckFile = "hsm-keys.check";
absl::StatusOr<std::string> MakeKeyCheck(const VaultKeys& keys);
// FailedPrecondition naming the first key whose check value differs and
// the recovery procedure.
absl::Status VerifyKeyCheck(const VaultKeys& keys, absl::string_view check,
                            absl::string_view token_description);

}  // namespace bkv::hsm

#endif  // BKV_HSM_KEY_CEREMONY_H_
