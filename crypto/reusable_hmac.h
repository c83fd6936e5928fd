#ifndef BKV_CRYPTO_REUSABLE_HMAC_H_
#define BKV_CRYPTO_REUSABLE_HMAC_H_

#include <openssl/types.h>

#include <cstddef>
#include <cstdint>
#include <span>

#include "crypto/secret_bytes.h"

namespace bkv {

// HMAC over many messages with one key and one OpenSSL context (EVP_MAC):
// no context allocation per message. Each message re-keys the context from
// the key it holds in SecretBytes, never OpenSSL's keyless re-init, which
// is a silent no-op on OpenSSL 3.0.0-3.0.2 (openssl#17811) and libbkv runs
// on the device's libcrypto; the key schedule is two compression calls, a
// few microseconds against a chunk's hashing (docs/backup-format.md, "The
// chunk-id function"). For one thread at a time.
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
  SecretBytes key_;
  size_t size_;
};

}  // namespace bkv

#endif  // BKV_CRYPTO_REUSABLE_HMAC_H_
