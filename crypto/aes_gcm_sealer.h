#ifndef BKV_CRYPTO_AES_GCM_SEALER_H_
#define BKV_CRYPTO_AES_GCM_SEALER_H_

#include "absl/status/statusor.h"
#include "crypto/sealer.h"
#include "crypto/secret_bytes.h"

namespace bkv {

// Software AES-256-GCM Sealer (OpenSSL EVP) with a random 96-bit nonce per
// call. Serves tests and tools that need no token; the vault seals with the
// HSM. Thread-safe.
//
// Sealed layout:
//   +------------+----------------------+-----------+
//   | nonce (12) | ciphertext (len(pt)) | tag (16)  |
//   +------------+----------------------+-----------+
class AesGcmSealer final : public Sealer {
 public:
  static constexpr size_t kKeySize = 32;
  static constexpr size_t kNonceSize = 12;
  static constexpr size_t kTagSize = 16;

  static absl::StatusOr<AesGcmSealer> Create(SecretBytes key);

  absl::StatusOr<std::vector<uint8_t>> Seal(
      std::span<const uint8_t> plaintext,
      std::span<const uint8_t> associated_data) const override;
  absl::StatusOr<std::vector<uint8_t>> Open(
      std::span<const uint8_t> sealed,
      std::span<const uint8_t> associated_data) const override;

 private:
  explicit AesGcmSealer(SecretBytes key) : key_(std::move(key)) {}
  SecretBytes key_;
};

// One-shot AES-256-GCM with an explicit nonce; the shared primitive under
// AesGcmSealer and other protocol-level AEAD uses. Output: ciphertext || tag.
absl::StatusOr<std::vector<uint8_t>> AesGcmEncrypt(
    std::span<const uint8_t> key, std::span<const uint8_t> nonce,
    std::span<const uint8_t> plaintext, std::span<const uint8_t> aad);
// The same into `out` (plaintext.size() + 16 bytes), for callers that reuse
// their buffers.
absl::Status AesGcmEncryptTo(std::span<const uint8_t> key,
                             std::span<const uint8_t> nonce,
                             std::span<const uint8_t> plaintext,
                             std::span<const uint8_t> aad,
                             std::span<uint8_t> out);
// Input: ciphertext || tag. DataLoss on authentication failure.
// The same into `out` (ciphertext size bytes; wiped on failure), for callers
// that reuse their buffers.
absl::Status AesGcmDecryptTo(std::span<const uint8_t> key,
                             std::span<const uint8_t> nonce,
                             std::span<const uint8_t> ciphertext_and_tag,
                             std::span<const uint8_t> aad,
                             std::span<uint8_t> out);
absl::StatusOr<std::vector<uint8_t>> AesGcmDecrypt(
    std::span<const uint8_t> key, std::span<const uint8_t> nonce,
    std::span<const uint8_t> ciphertext_and_tag, std::span<const uint8_t> aad);

}  // namespace bkv

#endif  // BKV_CRYPTO_AES_GCM_SEALER_H_
