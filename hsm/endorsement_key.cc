#include "hsm/endorsement_key.h"

#include <sodium.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "crypto/status_macros.h"
#include "hsm/key_labels.h"

namespace bkv::hsm {
namespace {

// DER OID 1.3.101.112 (id-Ed25519, RFC 8410).
constexpr uint8_t kEd25519Oid[] = {0x06, 0x03, 0x2b, 0x65, 0x70};

// CKA_EC_POINT is a DER OCTET STRING (04 20 || key) in SoftHSM; some
// modules return the 32 raw bytes.
absl::StatusOr<EndorsementKey::PublicKey> ParsePoint(
    const std::vector<uint8_t>& point) {
  EndorsementKey::PublicKey key;
  if (point.size() == 34 && point[0] == 0x04 && point[1] == 0x20) {
    std::copy_n(point.begin() + 2, key.size(), key.begin());
  } else if (point.size() == key.size()) {
    std::copy_n(point.begin(), key.size(), key.begin());
  } else {
    return absl::DataLossError(
        absl::StrCat(kEndorseKeyLabel, ": the public key's CKA_EC_POINT has ",
                     point.size(), " bytes, not an Ed25519 point"));
  }
  return key;
}

}  // namespace

absl::StatusOr<std::unique_ptr<EndorsementKey>> EndorsementKey::Load(
    std::shared_ptr<Pkcs11Hsm> hsm, Pkcs11Hsm::Session& session) {
  BKV_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE priv,
                       session.FindObject(CKO_PRIVATE_KEY, kEndorseKeyLabel));
  BKV_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE pub,
                       session.FindObject(CKO_PUBLIC_KEY, kEndorseKeyLabel));
  BKV_ASSIGN_OR_RETURN(std::vector<uint8_t> point,
                       session.GetAttribute(pub, CKA_EC_POINT));
  BKV_ASSIGN_OR_RETURN(PublicKey key, ParsePoint(point));
  return std::unique_ptr<EndorsementKey>(
      new EndorsementKey(std::move(hsm), priv, key));
}

absl::StatusOr<std::unique_ptr<EndorsementKey>> EndorsementKey::Open(
    std::shared_ptr<Pkcs11Hsm> hsm) {
  BKV_ASSIGN_OR_RETURN(Pkcs11Hsm::Session session, hsm->AcquireSession());
  BKV_ASSIGN_OR_RETURN(auto found,
                       session.FindObjects(CKO_PRIVATE_KEY, kEndorseKeyLabel));
  if (found.empty()) {
    return absl::NotFoundError(absl::StrCat(
        hsm->Describe(), " has no endorsement key (", kEndorseKeyLabel,
        "): run `bkv-vault cluster keygen` on this node"));
  }
  return Load(std::move(hsm), session);
}

absl::StatusOr<std::unique_ptr<EndorsementKey>> EndorsementKey::Generate(
    std::shared_ptr<Pkcs11Hsm> hsm) {
  BKV_ASSIGN_OR_RETURN(Pkcs11Hsm::Session session, hsm->AcquireSession());
  BKV_ASSIGN_OR_RETURN(auto found,
                       session.FindObjects(CKO_PRIVATE_KEY, kEndorseKeyLabel));
  if (!found.empty()) {
    return absl::AlreadyExistsError(
        absl::StrCat(hsm->Describe(), " already has an endorsement key (",
                     kEndorseKeyLabel, "); a node keeps its key"));
  }
  CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
  CK_ATTRIBUTE pub[] = {
      {CKA_TOKEN, &yes, sizeof(yes)},
      {CKA_PRIVATE, &no, sizeof(no)},
      {CKA_VERIFY, &yes, sizeof(yes)},
      {CKA_LABEL, const_cast<char*>(kEndorseKeyLabel.data()),
       kEndorseKeyLabel.size()},
      {CKA_EC_PARAMS, const_cast<uint8_t*>(kEd25519Oid), sizeof(kEd25519Oid)},
  };
  CK_ATTRIBUTE priv[] = {
      {CKA_TOKEN, &yes, sizeof(yes)},
      {CKA_PRIVATE, &yes, sizeof(yes)},
      {CKA_SENSITIVE, &yes, sizeof(yes)},
      {CKA_EXTRACTABLE, &no, sizeof(no)},
      {CKA_SIGN, &yes, sizeof(yes)},
      {CKA_DECRYPT, &no, sizeof(no)},
      {CKA_UNWRAP, &no, sizeof(no)},
      {CKA_DERIVE, &no, sizeof(no)},
      {CKA_LABEL, const_cast<char*>(kEndorseKeyLabel.data()),
       kEndorseKeyLabel.size()},
  };
  BKV_RETURN_IF_ERROR(
      session.GenerateKeyPair(CKM_EC_EDWARDS_KEY_PAIR_GEN, pub, priv).status());
  return Load(std::move(hsm), session);
}

absl::StatusOr<EndorsementKey::Signature> EndorsementKey::Sign(
    std::span<const uint8_t> message) const {
  BKV_ASSIGN_OR_RETURN(Pkcs11Hsm::Session session, hsm_->AcquireSession());
  BKV_ASSIGN_OR_RETURN(std::vector<uint8_t> sig,
                       session.SignEddsa(private_key_, message));
  Signature out;
  std::copy_n(sig.begin(), out.size(), out.begin());
  return out;
}

bool VerifyEndorsement(const EndorsementKey::PublicKey& key,
                       std::span<const uint8_t> message,
                       const EndorsementKey::Signature& signature) {
  return crypto_sign_verify_detached(signature.data(), message.data(),
                                     message.size(), key.data()) == 0;
}

}  // namespace bkv::hsm
