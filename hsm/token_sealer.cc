#include "hsm/token_sealer.h"

#include <openssl/rand.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "crypto/status_macros.h"

namespace bkv::hsm {
namespace {

std::vector<uint8_t> GcmAad(uint8_t format, std::span<const uint8_t> ad) {
  std::vector<uint8_t> aad;
  aad.reserve(1 + ad.size());
  aad.push_back(format);
  aad.insert(aad.end(), ad.begin(), ad.end());
  return aad;
}

}  // namespace

absl::StatusOr<TokenSealer> TokenSealer::Create(std::shared_ptr<Pkcs11Hsm> hsm,
                                                absl::string_view key_label) {
  BKV_ASSIGN_OR_RETURN(Pkcs11Hsm::Session session, hsm->AcquireSession());
  BKV_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE key,
                       session.FindObject(CKO_SECRET_KEY, key_label));
  return TokenSealer(std::move(hsm), key);
}

absl::StatusOr<std::vector<uint8_t>> TokenSealer::Seal(
    std::span<const uint8_t> plaintext,
    std::span<const uint8_t> associated_data) const {
  std::vector<uint8_t> sealed(1 + kIvSize);
  sealed[0] = kFormatV1;
  std::span<uint8_t> iv(sealed.data() + 1, kIvSize);
  if (RAND_bytes(iv.data(), kIvSize) != 1) {
    return absl::InternalError("OpenSSL RAND_bytes failed");
  }
  BKV_ASSIGN_OR_RETURN(Pkcs11Hsm::Session session, hsm_->AcquireSession());
  BKV_ASSIGN_OR_RETURN(
      std::vector<uint8_t> ct,
      session.EncryptAesGcm(key_, iv, GcmAad(kFormatV1, associated_data),
                            plaintext));
  sealed.insert(sealed.end(), ct.begin(), ct.end());
  return sealed;
}

absl::StatusOr<SealedRecordView> ParseSealedRecord(
    std::span<const uint8_t> sealed) {
  constexpr size_t kOverhead = TokenSealer::kOverhead;
  if (sealed.size() < kOverhead) {
    return absl::DataLossError(
        absl::StrCat("authentication failed: sealed data is ", sealed.size(),
                     " bytes, shorter than the ", kOverhead, "-byte minimum"));
  }
  if (sealed[0] != TokenSealer::kFormatV1) {
    return absl::DataLossError(absl::StrFormat(
        "authentication failed: unknown sealed format 0x%02x", sealed[0]));
  }
  return SealedRecordView{sealed[0], sealed.subspan(1, TokenSealer::kIvSize),
                          sealed.subspan(1 + TokenSealer::kIvSize)};
}

absl::StatusOr<std::vector<uint8_t>> TokenSealer::Open(
    std::span<const uint8_t> sealed,
    std::span<const uint8_t> associated_data) const {
  BKV_ASSIGN_OR_RETURN(SealedRecordView view, ParseSealedRecord(sealed));
  BKV_ASSIGN_OR_RETURN(Pkcs11Hsm::Session session, hsm_->AcquireSession());
  return session.DecryptAesGcm(key_, view.iv,
                               GcmAad(view.format, associated_data),
                               view.ciphertext_and_tag);
}

absl::StatusOr<TokenKeyedHash> TokenKeyedHash::Create(
    std::shared_ptr<Pkcs11Hsm> hsm, absl::string_view key_label) {
  BKV_ASSIGN_OR_RETURN(Pkcs11Hsm::Session session, hsm->AcquireSession());
  BKV_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE key,
                       session.FindObject(CKO_SECRET_KEY, key_label));
  return TokenKeyedHash(std::move(hsm), key);
}

absl::StatusOr<SecretBytes> TokenKeyedHash::HmacSha512(
    std::span<const uint8_t> message) const {
  BKV_ASSIGN_OR_RETURN(Pkcs11Hsm::Session session, hsm_->AcquireSession());
  return session.HmacSha512(key_, message);
}

}  // namespace bkv::hsm
