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

}  // namespace bkv::hsm

#endif  // BKV_HSM_KEY_CEREMONY_H_
