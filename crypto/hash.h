#ifndef BKV_CRYPTO_HASH_H_
#define BKV_CRYPTO_HASH_H_

#include <algorithm>
#include <array>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "crypto/keyed_hash.h"
#include "crypto/secret_bytes.h"

namespace bkv {

// SHA-512, HMAC-SHA512 and HKDF-SHA512 (RFC 5869) on libsodium's primitives.
// libsodium 1.0.18 has no HKDF, and OpenSSL's provider-fetched HKDF costs
// several microseconds per call, which shows in OPAQUE's ~20 KDF calls per
// login; HKDF is a few lines over HMAC.

inline constexpr size_t kSha512Size = 64;
using Sha512Digest = std::array<uint8_t, kSha512Size>;

// Hash of the concatenation of `parts`.
Sha512Digest Sha512(std::initializer_list<std::span<const uint8_t>> parts);

// HMAC-SHA512(key, concatenation of `parts`).
SecretBytes HmacSha512(std::span<const uint8_t> key,
                       std::initializer_list<std::span<const uint8_t>> parts);

// HKDF-Extract(salt, ikm). An empty salt means HashLen zero bytes (RFC 5869).
SecretBytes HkdfExtract(std::span<const uint8_t> salt,
                        std::span<const uint8_t> ikm);

// HKDF-Expand(prk, info, length); length <= 255 * 64.
SecretBytes HkdfExpand(std::span<const uint8_t> prk,
                       std::span<const uint8_t> info, size_t length);

// HKDF-Expand whose PRK is held behind a KeyedHash (e.g. inside the HSM).
absl::StatusOr<SecretBytes> HkdfExpand(const KeyedHash& prk,
                                       std::span<const uint8_t> info,
                                       size_t length);

// A software KeyedHash for tests and for clients; the vault uses the HSM.
class HmacSha512KeyedHash final : public KeyedHash {
 public:
  explicit HmacSha512KeyedHash(SecretBytes key) : key_(std::move(key)) {}
  absl::StatusOr<SecretBytes> HmacSha512(
      std::span<const uint8_t> message) const override;

 private:
  SecretBytes key_;
};

// Bytes of a string literal or string_view, for labels.
inline std::span<const uint8_t> AsBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// out || bytes. (resize + copy: GCC 12 misreads vector::insert from short
// fixed arrays as an overflow under -Werror.)
inline void AppendBytes(std::vector<uint8_t>& out,
                        std::span<const uint8_t> bytes) {
  const size_t at = out.size();
  out.resize(at + bytes.size());
  std::copy(bytes.begin(), bytes.end(), out.begin() + at);
}

}  // namespace bkv

#endif  // BKV_CRYPTO_HASH_H_
