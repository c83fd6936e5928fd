#include "crypto/aes_gcm_sealer.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace bkv {
namespace {

using CipherCtx =
    std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

CipherCtx NewCtx() {
  return CipherCtx(EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free);
}

absl::Status CheckParams(std::span<const uint8_t> key,
                         std::span<const uint8_t> nonce) {
  if (key.size() != AesGcmSealer::kKeySize) {
    return absl::InvalidArgumentError(
        absl::StrCat("AES-256-GCM key must be 32 bytes, got ", key.size()));
  }
  if (nonce.size() != AesGcmSealer::kNonceSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("AES-GCM nonce must be 12 bytes, got ", nonce.size()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<uint8_t>> AesGcmEncrypt(
    std::span<const uint8_t> key, std::span<const uint8_t> nonce,
    std::span<const uint8_t> plaintext, std::span<const uint8_t> aad) {
  std::vector<uint8_t> out(plaintext.size() + AesGcmSealer::kTagSize);
  if (auto s = AesGcmEncryptTo(key, nonce, plaintext, aad, out); !s.ok()) {
    return s;
  }
  return out;
}

absl::Status AesGcmEncryptTo(std::span<const uint8_t> key,
                             std::span<const uint8_t> nonce,
                             std::span<const uint8_t> plaintext,
                             std::span<const uint8_t> aad,
                             std::span<uint8_t> out) {
  if (auto s = CheckParams(key, nonce); !s.ok()) return s;
  if (out.size() != plaintext.size() + AesGcmSealer::kTagSize) {
    return absl::InvalidArgumentError("AES-GCM output of the wrong size");
  }
  CipherCtx ctx = NewCtx();
  int len = 0;
  if (!ctx ||
      EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(),
                         nonce.data()) != 1 ||
      (!aad.empty() && EVP_EncryptUpdate(ctx.get(), nullptr, &len, aad.data(),
                                         static_cast<int>(aad.size())) != 1) ||
      EVP_EncryptUpdate(ctx.get(), out.data(), &len, plaintext.data(),
                        static_cast<int>(plaintext.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), out.data() + len, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG,
                          AesGcmSealer::kTagSize,
                          out.data() + plaintext.size()) != 1) {
    return absl::InternalError("OpenSSL AES-256-GCM encryption failed");
  }
  return absl::OkStatus();
}

absl::Status AesGcmDecryptTo(std::span<const uint8_t> key,
                             std::span<const uint8_t> nonce,
                             std::span<const uint8_t> ciphertext_and_tag,
                             std::span<const uint8_t> aad,
                             std::span<uint8_t> out) {
  if (auto s = CheckParams(key, nonce); !s.ok()) return s;
  if (ciphertext_and_tag.size() < AesGcmSealer::kTagSize) {
    return absl::DataLossError(
        "authentication failed: ciphertext shorter than the GCM tag");
  }
  const size_t ct_len = ciphertext_and_tag.size() - AesGcmSealer::kTagSize;
  if (out.size() != ct_len) {
    return absl::InternalError("AES-256-GCM output buffer of the wrong size");
  }
  CipherCtx ctx = NewCtx();
  int len = 0;
  // The tag is copied because OpenSSL's ctrl takes a non-const pointer.
  uint8_t tag[AesGcmSealer::kTagSize];
  std::copy_n(ciphertext_and_tag.data() + ct_len, AesGcmSealer::kTagSize, tag);
  if (!ctx ||
      EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(),
                         nonce.data()) != 1 ||
      (!aad.empty() && EVP_DecryptUpdate(ctx.get(), nullptr, &len, aad.data(),
                                         static_cast<int>(aad.size())) != 1) ||
      EVP_DecryptUpdate(ctx.get(), out.data(), &len, ciphertext_and_tag.data(),
                        static_cast<int>(ct_len)) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG,
                          AesGcmSealer::kTagSize, tag) != 1) {
    return absl::InternalError("OpenSSL AES-256-GCM decryption failed");
  }
  if (EVP_DecryptFinal_ex(ctx.get(), out.data() + len, &len) != 1) {
    OPENSSL_cleanse(out.data(), out.size());
    return absl::DataLossError(
        "authentication failed: ciphertext or associated data was modified");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<uint8_t>> AesGcmDecrypt(
    std::span<const uint8_t> key, std::span<const uint8_t> nonce,
    std::span<const uint8_t> ciphertext_and_tag, std::span<const uint8_t> aad) {
  std::vector<uint8_t> out(
      ciphertext_and_tag.size() -
      std::min(ciphertext_and_tag.size(), AesGcmSealer::kTagSize));
  if (auto s = AesGcmDecryptTo(key, nonce, ciphertext_and_tag, aad, out);
      !s.ok()) {
    return s;
  }
  return out;
}

absl::StatusOr<AesGcmSealer> AesGcmSealer::Create(SecretBytes key) {
  if (key.size() != kKeySize) {
    return absl::InvalidArgumentError(
        absl::StrCat("AesGcmSealer key must be 32 bytes, got ", key.size()));
  }
  return AesGcmSealer(std::move(key));
}

absl::StatusOr<std::vector<uint8_t>> AesGcmSealer::Seal(
    std::span<const uint8_t> plaintext,
    std::span<const uint8_t> associated_data) const {
  std::vector<uint8_t> sealed(kNonceSize);
  if (RAND_bytes(sealed.data(), kNonceSize) != 1) {
    return absl::InternalError("OpenSSL RAND_bytes failed");
  }
  auto ct = AesGcmEncrypt(key_.Reveal(), sealed, plaintext, associated_data);
  if (!ct.ok()) return ct.status();
  sealed.insert(sealed.end(), ct->begin(), ct->end());
  return sealed;
}

absl::StatusOr<std::vector<uint8_t>> AesGcmSealer::Open(
    std::span<const uint8_t> sealed,
    std::span<const uint8_t> associated_data) const {
  if (sealed.size() < kNonceSize + kTagSize) {
    return absl::DataLossError(
        absl::StrCat("authentication failed: sealed data is ", sealed.size(),
                     " bytes, shorter than nonce and tag (28)"));
  }
  return AesGcmDecrypt(key_.Reveal(), sealed.first(kNonceSize),
                       sealed.subspan(kNonceSize), associated_data);
}

}  // namespace bkv
