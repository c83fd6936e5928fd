#ifndef BKV_CRYPTO_REUSABLE_HMAC_H_
#define BKV_CRYPTO_REUSABLE_HMAC_H_

#include <openssl/types.h>

#include <cstddef>
#include <cstdint>
#include <span>

namespace bkv {

// HMAC keyed once and reused for many messages: the key's inner and outer
// pads are hashed at construction, not per message (OpenSSL's EVP_MAC). For
// one thread at a time; the key is cleansed when it is destroyed.
class ReusableHmac {
 public:
  enum class Digest { kSha256, kSha512 };
  // `key` must not be empty.
  ReusableHmac(Digest digest, std::span<const uint8_t> key);
  ~ReusableHmac();
  ReusableHmac(const ReusableHmac&) = delete;
  ReusableHmac& operator=(const ReusableHmac&) = delete;

  // The MAC's length: 32 or 64 bytes.
  size_t size() const { return size_; }
  // The full MAC of `message` into `out` (at least size() bytes).
  void Mac(std::span<const uint8_t> message, std::span<uint8_t> out);

 private:
  EVP_MAC_CTX* ctx_ = nullptr;
  size_t size_;
  bool fresh_ = true;  // keyed and not yet used: no re-init needed
};

}  // namespace bkv

#endif  // BKV_CRYPTO_REUSABLE_HMAC_H_
