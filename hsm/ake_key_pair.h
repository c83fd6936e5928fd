#ifndef BKV_HSM_AKE_KEY_PAIR_H_
#define BKV_HSM_AKE_KEY_PAIR_H_

#include <array>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "crypto/secret_bytes.h"
#include "hsm/pkcs11_hsm.h"

namespace bkv::hsm {

// The vault's long-term OPAQUE AKE key pair on ristretto255 (RFC 9807 §6.4:
// server_private_key, server_public_key), which clients pin.
//
// ristretto255 cannot run inside SoftHSM (or most HSMs), so the private scalar
// is the one bkv secret that lives in process memory: on the token it exists
// only wrapped (CKM_AES_KEY_WRAP_PAD) by the non-extractable key
// bkv-ake-wrap-v1; Load unwraps it into a temporary session object, reads it
// once into locked, non-dumpable memory and destroys the object. See
// docs/threat-model.md.
//
// The public key is free to share; the private scalar is reachable only
// through RevealPrivateKey(), for the AKE code. Immutable, so thread-safe.
class AkeKeyPair {
 public:
  static constexpr size_t kKeySize = 32;
  using PublicKey = std::array<uint8_t, kKeySize>;

  // Unwraps the token's key pair and checks that the private scalar's base
  // multiple is the stored public key.
  static absl::StatusOr<AkeKeyPair> Load(Pkcs11Hsm& hsm);
  // From a known scalar (test vectors); the public key is derived.
  static absl::StatusOr<AkeKeyPair> FromPrivateKey(SecretBytes scalar);

  AkeKeyPair(AkeKeyPair&&) = default;
  AkeKeyPair& operator=(AkeKeyPair&&) = default;

  const PublicKey& public_key() const { return public_key_; }
  // SHA-256 of the public key, lower-case hex: what clients pin.
  std::string FingerprintHex() const;
  // The 32-byte scalar, in locked memory. For the AKE code only.
  const SecretBytes& RevealPrivateKey() const { return private_key_; }

 private:
  AkeKeyPair(SecretBytes private_key, PublicKey public_key)
      : private_key_(std::move(private_key)), public_key_(public_key) {}

  SecretBytes private_key_;
  PublicKey public_key_;
};

// ristretto255 base-point multiple of a 32-byte scalar; InvalidArgument for a
// zero or malformed scalar.
absl::StatusOr<AkeKeyPair::PublicKey> DeriveAkePublicKey(
    const SecretBytes& scalar);

// SHA-256 of a public key, hex: the pinning fingerprint.
std::string PublicKeyFingerprintHex(const AkeKeyPair::PublicKey& public_key);

}  // namespace bkv::hsm

#endif  // BKV_HSM_AKE_KEY_PAIR_H_
