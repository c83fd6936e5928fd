#include "crypto/reusable_hmac.h"

#include <openssl/evp.h>
#include <openssl/params.h>

#include <cstdlib>

namespace bkv {

ReusableHmac::ReusableHmac(Digest digest, std::span<const uint8_t> key)
    : size_(digest == Digest::kSha256 ? 32 : 64) {
  static EVP_MAC* const kHmac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  char sha256[] = "SHA256", sha512[] = "SHA512";
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(
          "digest", digest == Digest::kSha256 ? sha256 : sha512, 0),
      OSSL_PARAM_construct_end()};
  ctx_ = kHmac ? EVP_MAC_CTX_new(kHmac) : nullptr;
  // Out of memory is the only way here (callers never pass an empty key).
  if (key.empty() || !ctx_ ||
      EVP_MAC_init(ctx_, key.data(), key.size(), params) != 1) {
    std::abort();
  }
}

ReusableHmac::~ReusableHmac() {
  EVP_MAC_CTX_free(ctx_);  // cleanses the key and the pads
}

void ReusableHmac::Mac(std::span<const uint8_t> message,
                       std::span<uint8_t> out) {
  // A null key re-initialises with the key already set: OpenSSL copies the
  // inner pad's precomputed state instead of hashing the key again.
  bool ok = out.size() >= size_ &&
            (fresh_ || EVP_MAC_init(ctx_, nullptr, 0, nullptr) == 1);
  fresh_ = false;
  ok = ok && (message.empty() ||
              EVP_MAC_update(ctx_, message.data(), message.size()) == 1);
  size_t n = 0;
  ok = ok && EVP_MAC_final(ctx_, out.data(), &n, out.size()) == 1;
  // A wrong MAC must never be used.
  if (!ok || n != size_) std::abort();
}

}  // namespace bkv
