#include "crypto/reusable_hmac.h"

#include <openssl/evp.h>
#include <openssl/params.h>

#include <cstdlib>

namespace bkv {

ReusableHmac::ReusableHmac(Digest digest, std::span<const uint8_t> key)
    : key_(SecretBytes::Copy(key)), size_(digest == Digest::kSha256 ? 32 : 64) {
  static EVP_MAC* const kHmac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  char sha256[] = "SHA256", sha512[] = "SHA512";
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(
          "digest", digest == Digest::kSha256 ? sha256 : sha512, 0),
      OSSL_PARAM_construct_end()};
  ctx_ = kHmac ? EVP_MAC_CTX_new(kHmac) : nullptr;
  // Out of memory is the only way here (callers never pass an empty key).
  if (key.empty() || !ctx_ || EVP_MAC_CTX_set_params(ctx_, params) != 1) {
    std::abort();
  }
}

ReusableHmac::~ReusableHmac() {
  EVP_MAC_CTX_free(ctx_);  // cleanses the pads of the last message
}

void ReusableHmac::Mac(std::span<const uint8_t> message,
                       std::span<uint8_t> out) {
  // With the key every time: a keyed init resets the context on every
  // OpenSSL 3 (a keyless one does not on 3.0.0-3.0.2).
  const auto key = key_.Reveal();
  bool ok = out.size() >= size_ &&
            EVP_MAC_init(ctx_, key.data(), key.size(), nullptr) == 1;
  ok = ok && (message.empty() ||
              EVP_MAC_update(ctx_, message.data(), message.size()) == 1);
  size_t n = 0;
  ok = ok && EVP_MAC_final(ctx_, out.data(), &n, out.size()) == 1;
  // A wrong MAC must never be used.
  if (!ok || n != size_) std::abort();
}

}  // namespace bkv
