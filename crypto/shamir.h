#ifndef BKV_CRYPTO_SHAMIR_H_
#define BKV_CRYPTO_SHAMIR_H_

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "crypto/random.h"
#include "crypto/ristretto255.h"
#include "crypto/secret_bytes.h"

// Shamir secret sharing over the ristretto255 scalar field (Z/L), and the
// Lagrange combination "in the exponent" that turns t partial OPRF
// evaluations k_i * B into k * B (docs/threshold.md, "Threshold OPRF").
// Indices (abscissae) are 1..255: a realm's 1-based position in its realm
// set. Stateless functions; thread-safe.
namespace bkv::shamir {

using ristretto255::Element;

struct Share {
  uint8_t index = 0;
  SecretBytes value;  // f(index), 32 bytes
};

// A public value at an index: a public share K_i = k_i * G, or a partial
// evaluation Z_i = k_i * B.
struct Point {
  uint8_t index = 0;
  Element value{};
};

// Deals `secret` (a canonical non-zero scalar) t-of-n: a random polynomial f
// of degree t - 1 with f(0) = secret, shares f(1) .. f(n). 1 <= t <= n <= 255.
absl::StatusOr<std::vector<Share>> Split(const SecretBytes& secret, int t,
                                         int n, const RandomSource& rng);

// Refuses an empty set, index 0 and duplicate indices, naming the index.
absl::Status CheckIndices(std::span<const uint8_t> indices);

// lambda_i = prod_{j != i} j / (j - i): the weight of share i when the
// shares at `indices` are combined at 0. `index` must be in `indices`.
absl::StatusOr<SecretBytes> LagrangeCoefficient(
    uint8_t index, std::span<const uint8_t> indices);

// f(0) from t shares (with fewer, the result is a random-looking wrong
// scalar: the count is the caller's to check).
absl::StatusOr<SecretBytes> Combine(std::span<const Share> shares);

// sum lambda_i * P_i: k * B from t partial evaluations k_i * B. Fails if the
// result is the identity.
absl::StatusOr<Element> CombineInExponent(std::span<const Point> points);

// Checks that the public shares lie on one polynomial of degree t - 1 whose
// value at 0 is `public_key` (needs at least t of them). A dealer or a
// descriptor that breaks this is refused with FAILED_PRECONDITION.
absl::Status CheckPublicShares(const Element& public_key,
                               std::span<const Point> public_shares, int t);

}  // namespace bkv::shamir

#endif  // BKV_CRYPTO_SHAMIR_H_
