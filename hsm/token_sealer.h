#ifndef BKV_HSM_TOKEN_SEALER_H_
#define BKV_HSM_TOKEN_SEALER_H_

#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "crypto/keyed_hash.h"
#include "crypto/sealer.h"
#include "hsm/key_labels.h"
#include "hsm/pkcs11_hsm.h"

namespace bkv::hsm {

// Sealer over a non-extractable AES-256 token key through CKM_AES_GCM: the key
// never leaves the token, only plaintext and ciphertext cross the boundary.
//
// Sealed layout (format 0x01):
//   +-----------+---------+----------------------+----------+
//   | fmt (1)   | iv (12) | ciphertext (len(pt)) | tag (16) |
//   +-----------+---------+----------------------+----------+
//   GCM associated data = fmt || associated_data
//
// fmt 0x01 means "AES-256-GCM under bkv-record-seal-v1"; a rotated key gets a
// new byte so old records stay readable. The IV is 96 random bits from
// OpenSSL's RAND_bytes per Seal (NIST SP 800-38D §8.2.2): stay well under 2^32
// seals per key, the random-IV bound.
// Thread-safe: each call leases its own session.
class TokenSealer final : public Sealer {
 public:
  static constexpr uint8_t kFormatV1 = 0x01;
  static constexpr size_t kIvSize = 12;
  static constexpr size_t kTagSize = 16;
  static constexpr size_t kOverhead = 1 + kIvSize + kTagSize;

  // Finds the key by label; NotFound tells the operator to run `hsm init`.
  static absl::StatusOr<TokenSealer> Create(
      std::shared_ptr<Pkcs11Hsm> hsm,
      absl::string_view key_label = kRecordSealKeyLabel);

  absl::StatusOr<std::vector<uint8_t>> Seal(
      std::span<const uint8_t> plaintext,
      std::span<const uint8_t> associated_data) const override;
  absl::StatusOr<std::vector<uint8_t>> Open(
      std::span<const uint8_t> sealed,
      std::span<const uint8_t> associated_data) const override;

 private:
  TokenSealer(std::shared_ptr<Pkcs11Hsm> hsm, CK_OBJECT_HANDLE key)
      : hsm_(std::move(hsm)), key_(key) {}

  std::shared_ptr<Pkcs11Hsm> hsm_;
  CK_OBJECT_HANDLE key_;
};

// The parts of a sealed record (layout above), pointing into the input.
struct SealedRecordView {
  uint8_t format;
  std::span<const uint8_t> iv;
  std::span<const uint8_t> ciphertext_and_tag;
};
// Splits a sealed record without touching the token; DataLoss
// ("authentication failed: ...") if it is too short or of an unknown format.
absl::StatusOr<SealedRecordView> ParseSealedRecord(
    std::span<const uint8_t> sealed);

// KeyedHash over the 64-byte OPRF seed, a generic-secret token key usable only
// through CKM_SHA512_HMAC (RFC 9807 §6.3.2.2 derives per-user OPRF keys from
// it). Thread-safe.
class TokenKeyedHash final : public KeyedHash {
 public:
  static absl::StatusOr<TokenKeyedHash> Create(
      std::shared_ptr<Pkcs11Hsm> hsm,
      absl::string_view key_label = kOprfSeedLabel);

  absl::StatusOr<SecretBytes> HmacSha512(
      std::span<const uint8_t> message) const override;

 private:
  TokenKeyedHash(std::shared_ptr<Pkcs11Hsm> hsm, CK_OBJECT_HANDLE key)
      : hsm_(std::move(hsm)), key_(key) {}

  std::shared_ptr<Pkcs11Hsm> hsm_;
  CK_OBJECT_HANDLE key_;
};

}  // namespace bkv::hsm

#endif  // BKV_HSM_TOKEN_SEALER_H_
