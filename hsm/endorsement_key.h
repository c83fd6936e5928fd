#ifndef BKV_HSM_ENDORSEMENT_KEY_H_
#define BKV_HSM_ENDORSEMENT_KEY_H_

#include <array>
#include <cstdint>
#include <memory>
#include <span>

#include "absl/status/statusor.h"
#include "hsm/pkcs11_hsm.h"

namespace bkv::hsm {

// The node's endorsement key (docs/rollback.md "Quorum across nodes"): an
// Ed25519 pair in the token (CKM_EC_EDWARDS_KEY_PAIR_GEN; the private half
// sensitive, never extractable, CKM_EDDSA sign only), labelled
// kEndorseKeyLabel. Others verify its signatures with the public key the
// security officer fixed in the members list. Thread-safe.
class EndorsementKey {
 public:
  static constexpr size_t kPublicKeySize = 32;
  static constexpr size_t kSignatureSize = 64;
  using PublicKey = std::array<uint8_t, kPublicKeySize>;
  using Signature = std::array<uint8_t, kSignatureSize>;

  // The token's key; NotFound (naming `bkv-vault cluster keygen`) when it
  // has none.
  static absl::StatusOr<std::unique_ptr<EndorsementKey>> Open(
      std::shared_ptr<Pkcs11Hsm> hsm);
  // Creates the pair; AlreadyExists if the token has one (a node keeps its
  // key for life: a new key is a new member).
  static absl::StatusOr<std::unique_ptr<EndorsementKey>> Generate(
      std::shared_ptr<Pkcs11Hsm> hsm);

  const PublicKey& public_key() const { return public_key_; }
  absl::StatusOr<Signature> Sign(std::span<const uint8_t> message) const;

 private:
  EndorsementKey(std::shared_ptr<Pkcs11Hsm> hsm, CK_OBJECT_HANDLE private_key,
                 const PublicKey& public_key)
      : hsm_(std::move(hsm)),
        private_key_(private_key),
        public_key_(public_key) {}
  static absl::StatusOr<std::unique_ptr<EndorsementKey>> Load(
      std::shared_ptr<Pkcs11Hsm> hsm, Pkcs11Hsm::Session& session);

  std::shared_ptr<Pkcs11Hsm> hsm_;
  const CK_OBJECT_HANDLE private_key_;
  const PublicKey public_key_;
};

// RFC 8032 verification (libsodium), what CKM_EDDSA signs.
bool VerifyEndorsement(const EndorsementKey::PublicKey& key,
                       std::span<const uint8_t> message,
                       const EndorsementKey::Signature& signature);

}  // namespace bkv::hsm

#endif  // BKV_HSM_ENDORSEMENT_KEY_H_
