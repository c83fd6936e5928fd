#ifndef BKV_CRYPTO_RISTRETTO255_H_
#define BKV_CRYPTO_RISTRETTO255_H_

#include <array>
#include <cstdint>
#include <span>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "crypto/secret_bytes.h"

namespace bkv::ristretto255 {

// The prime-order group of RFC 9496 through libsodium, plus the
// hash-to-group and hash-to-scalar of RFC 9380 / RFC 9497 §4.1 that libsodium
// 1.0.18 lacks. Scalars that are secret live in SecretBytes (32 bytes, little
// endian, canonical mod L); elements are public.

inline constexpr size_t kElementSize = 32;
inline constexpr size_t kScalarSize = 32;
using Element = std::array<uint8_t, kElementSize>;

// RFC 9380 §5.3.1 expand_message_xmd with SHA-512. len_in_bytes <= 255*64,
// dst at most 255 bytes.
absl::StatusOr<SecretBytes> ExpandMessageXmdSha512(std::span<const uint8_t> msg,
                                                   std::span<const uint8_t> dst,
                                                   size_t len_in_bytes);

// hash_to_ristretto255 (RFC 9380 App. B): 64 uniform bytes -> one-way map.
absl::StatusOr<Element> HashToGroup(std::span<const uint8_t> msg,
                                    std::span<const uint8_t> dst);

// RFC 9497 §4.1 HashToScalar: 64 uniform bytes reduced mod L.
absl::StatusOr<SecretBytes> HashToScalar(std::span<const uint8_t> msg,
                                         std::span<const uint8_t> dst);

// DeserializeElement: exactly 32 bytes, canonical encoding, not the identity.
// `what` names the field in the error.
absl::StatusOr<Element> DeserializeElement(std::span<const uint8_t> bytes,
                                           absl::string_view what);

// A secret scalar from bytes: exactly 32 bytes, < L and non-zero.
absl::StatusOr<SecretBytes> DeserializeScalar(std::span<const uint8_t> bytes,
                                              absl::string_view what);

bool IsCanonicalNonZeroScalar(std::span<const uint8_t> s);

// scalar * element; fails if the result is the identity.
absl::StatusOr<Element> ScalarMult(const SecretBytes& scalar,
                                   const Element& element);
// scalar * generator.
absl::StatusOr<Element> ScalarMultBase(const SecretBytes& scalar);

absl::StatusOr<SecretBytes> ScalarInvert(const SecretBytes& scalar);

// Field arithmetic mod L on 32-byte scalars (inputs of any other size are
// refused). Results may be zero; callers that need non-zero check it.
absl::StatusOr<SecretBytes> ScalarAdd(const SecretBytes& x,
                                      const SecretBytes& y);
absl::StatusOr<SecretBytes> ScalarSub(const SecretBytes& x,
                                      const SecretBytes& y);
absl::StatusOr<SecretBytes> ScalarMul(const SecretBytes& x,
                                      const SecretBytes& y);

// The scalar v (a small public integer), 32 bytes little endian.
SecretBytes SmallScalar(uint32_t v);

// p + q. Either may be the identity (all zeros), and so may the sum: sums
// of attacker-chosen elements are checked by the caller at the end.
absl::StatusOr<Element> ElementAdd(const Element& p, const Element& q);

}  // namespace bkv::ristretto255

#endif  // BKV_CRYPTO_RISTRETTO255_H_
