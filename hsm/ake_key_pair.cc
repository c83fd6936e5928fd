#include "hsm/ake_key_pair.h"

#include <sodium.h>

#include <algorithm>

#include "crypto/hex.h"
#include "crypto/status_macros.h"
#include "hsm/key_labels.h"

namespace bkv::hsm {

absl::StatusOr<AkeKeyPair::PublicKey> DeriveAkePublicKey(
    const SecretBytes& scalar) {
  if (scalar.size() != AkeKeyPair::kKeySize) {
    return absl::InvalidArgumentError("AKE private key must be 32 bytes");
  }
  AkeKeyPair::PublicKey pk{};
  if (sodium_init() < 0 || crypto_scalarmult_ristretto255_base(
                               pk.data(), scalar.Reveal().data()) != 0) {
    return absl::InvalidArgumentError(
        "AKE private key is not a valid non-zero ristretto255 scalar");
  }
  return pk;
}

std::string PublicKeyFingerprintHex(const AkeKeyPair::PublicKey& public_key) {
  uint8_t digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(digest, public_key.data(), public_key.size());
  return HexEncode(digest);
}

absl::StatusOr<AkeKeyPair> AkeKeyPair::FromPrivateKey(SecretBytes scalar) {
  BKV_ASSIGN_OR_RETURN(PublicKey pk, DeriveAkePublicKey(scalar));
  SecretBytes locked = SecretBytes::Locked(scalar.size());
  std::copy_n(scalar.Reveal().data(), scalar.size(),
              locked.RevealMutable().data());
  return AkeKeyPair(std::move(locked), pk);
}

absl::StatusOr<AkeKeyPair> AkeKeyPair::Load(Pkcs11Hsm& hsm) {
  BKV_ASSIGN_OR_RETURN(Pkcs11Hsm::Session session, hsm.AcquireSession());
  BKV_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE wrap_key,
                       session.FindObject(CKO_SECRET_KEY, kAkeWrapKeyLabel));
  BKV_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE wrapped_obj,
                       session.FindObject(CKO_DATA, kAkePrivateLabel));
  BKV_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE public_obj,
                       session.FindObject(CKO_DATA, kAkePublicLabel));
  BKV_ASSIGN_OR_RETURN(std::vector<uint8_t> wrapped,
                       session.GetAttribute(wrapped_obj, CKA_VALUE));
  BKV_ASSIGN_OR_RETURN(std::vector<uint8_t> stored_public,
                       session.GetAttribute(public_obj, CKA_VALUE));

  // A session object, readable once and destroyed right after. SoftHSM (like
  // the spec's table 4.4 footnote) hides CKA_VALUE unless the key is both
  // non-sensitive and extractable.
  CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
  CK_KEY_TYPE type = CKK_GENERIC_SECRET;
  CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
  CK_ATTRIBUTE tmpl[] = {
      {CKA_CLASS, &cls, sizeof(cls)},    {CKA_KEY_TYPE, &type, sizeof(type)},
      {CKA_TOKEN, &no, sizeof(no)},      {CKA_PRIVATE, &yes, sizeof(yes)},
      {CKA_SENSITIVE, &no, sizeof(no)},  {CKA_EXTRACTABLE, &yes, sizeof(yes)},
      {CKA_MODIFIABLE, &no, sizeof(no)},
  };
  BKV_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE unwrapped,
                       session.UnwrapKey(wrap_key, wrapped, tmpl));
  absl::StatusOr<SecretBytes> scalar =
      session.GetSecretAttribute(unwrapped, CKA_VALUE);
  absl::Status destroyed = session.DestroyObject(unwrapped);
  if (!scalar.ok()) return scalar.status();
  BKV_RETURN_IF_ERROR(destroyed);

  BKV_ASSIGN_OR_RETURN(PublicKey pk, DeriveAkePublicKey(*scalar));
  if (stored_public.size() != kKeySize ||
      !std::equal(pk.begin(), pk.end(), stored_public.begin())) {
    return absl::DataLossError(
        hsm.Describe() +
        ": the unwrapped AKE private key does not match the stored public "
        "key; the token's AKE objects are damaged");
  }
  return AkeKeyPair(*std::move(scalar), pk);
}

std::string AkeKeyPair::FingerprintHex() const {
  return PublicKeyFingerprintHex(public_key_);
}

}  // namespace bkv::hsm
