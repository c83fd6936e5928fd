#include "crypto/shamir.h"

#include <sodium.h>

#include <algorithm>
#include <bitset>

#include "absl/strings/str_cat.h"
#include "crypto/status_macros.h"

namespace bkv::shamir {
namespace {

using ristretto255::ScalarMul;
using ristretto255::SmallScalar;

// prod_{x_j in xs, x_j != x_i} (x - x_j) / (x_i - x_j); the x's may include 0
// (CheckPublicShares interpolates through the public key at 0).
absl::StatusOr<SecretBytes> LagrangeAt(uint8_t x, uint8_t x_i,
                                       std::span<const uint8_t> xs) {
  SecretBytes num = SmallScalar(1), den = SmallScalar(1);
  for (uint8_t x_j : xs) {
    if (x_j == x_i) continue;
    BKV_ASSIGN_OR_RETURN(SecretBytes dn, ristretto255::ScalarSub(
                                             SmallScalar(x), SmallScalar(x_j)));
    BKV_ASSIGN_OR_RETURN(
        SecretBytes dd,
        ristretto255::ScalarSub(SmallScalar(x_i), SmallScalar(x_j)));
    BKV_ASSIGN_OR_RETURN(num, ScalarMul(num, dn));
    BKV_ASSIGN_OR_RETURN(den, ScalarMul(den, dd));
  }
  BKV_ASSIGN_OR_RETURN(SecretBytes inv, ristretto255::ScalarInvert(den));
  return ScalarMul(num, inv);
}

// sum over points of LagrangeAt(x, ...) * value, indices already checked.
absl::StatusOr<Element> InterpolateAt(uint8_t x,
                                      std::span<const Point> points) {
  std::vector<uint8_t> xs;
  for (const Point& p : points) xs.push_back(p.index);
  Element sum{};  // the identity
  for (const Point& p : points) {
    BKV_ASSIGN_OR_RETURN(SecretBytes lambda, LagrangeAt(x, p.index, xs));
    if (sodium_is_zero(lambda.Reveal().data(), lambda.size())) continue;
    BKV_ASSIGN_OR_RETURN(Element term,
                         ristretto255::ScalarMult(lambda, p.value));
    BKV_ASSIGN_OR_RETURN(sum, ristretto255::ElementAdd(sum, term));
  }
  return sum;
}

bool IsIdentity(const Element& e) { return sodium_is_zero(e.data(), e.size()); }

}  // namespace

absl::Status CheckIndices(std::span<const uint8_t> indices) {
  if (indices.empty()) return absl::InvalidArgumentError("no shares given");
  std::bitset<256> seen;
  for (uint8_t i : indices) {
    if (i == 0) {
      return absl::InvalidArgumentError(
          "share index 0 is the secret itself; indices start at 1");
    }
    if (seen.test(i)) {
      return absl::InvalidArgumentError(
          absl::StrCat("share index ", i, " given twice"));
    }
    seen.set(i);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Share>> Split(const SecretBytes& secret, int t,
                                         int n, const RandomSource& rng) {
  if (t < 1 || t > n || n > 255) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot share ", t, "-of-", n, ": need 1 <= t <= n <= 255"));
  }
  if (!ristretto255::IsCanonicalNonZeroScalar(secret.Reveal())) {
    return absl::InvalidArgumentError(
        "the shared secret must be a non-zero scalar below the group order");
  }
  std::vector<SecretBytes> coefficients;
  coefficients.push_back(secret.Clone());
  for (int j = 1; j < t; ++j) coefficients.push_back(rng.Scalar());
  std::vector<Share> shares;
  for (int i = 1; i <= n; ++i) {
    // Horner: f(i) = a_0 + i (a_1 + i (a_2 + ...)).
    SecretBytes acc = coefficients.back().Clone();
    for (int j = t - 2; j >= 0; --j) {
      BKV_ASSIGN_OR_RETURN(acc, ScalarMul(acc, SmallScalar(i)));
      BKV_ASSIGN_OR_RETURN(acc, ristretto255::ScalarAdd(acc, coefficients[j]));
    }
    if (!ristretto255::IsCanonicalNonZeroScalar(acc.Reveal())) {
      return absl::InternalError("a share came out zero; deal again");
    }
    shares.push_back({static_cast<uint8_t>(i), std::move(acc)});
  }
  return shares;
}

absl::StatusOr<SecretBytes> LagrangeCoefficient(
    uint8_t index, std::span<const uint8_t> indices) {
  BKV_RETURN_IF_ERROR(CheckIndices(indices));
  if (std::find(indices.begin(), indices.end(), index) == indices.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("share index ", index, " is not among the combined ones"));
  }
  return LagrangeAt(0, index, indices);
}

absl::StatusOr<SecretBytes> Combine(std::span<const Share> shares) {
  std::vector<uint8_t> xs;
  for (const Share& s : shares) xs.push_back(s.index);
  BKV_RETURN_IF_ERROR(CheckIndices(xs));
  SecretBytes sum(ristretto255::kScalarSize);
  for (const Share& s : shares) {
    BKV_ASSIGN_OR_RETURN(SecretBytes lambda, LagrangeAt(0, s.index, xs));
    BKV_ASSIGN_OR_RETURN(SecretBytes term, ScalarMul(lambda, s.value));
    BKV_ASSIGN_OR_RETURN(sum, ristretto255::ScalarAdd(sum, term));
  }
  return sum;
}

absl::StatusOr<Element> CombineInExponent(std::span<const Point> points) {
  std::vector<uint8_t> xs;
  for (const Point& p : points) xs.push_back(p.index);
  BKV_RETURN_IF_ERROR(CheckIndices(xs));
  BKV_ASSIGN_OR_RETURN(Element sum, InterpolateAt(0, points));
  if (IsIdentity(sum)) {
    return absl::InvalidArgumentError(
        "the combined evaluation is the identity element");
  }
  return sum;
}

absl::Status CheckPublicShares(const Element& public_key,
                               std::span<const Point> public_shares, int t) {
  std::vector<uint8_t> xs;
  for (const Point& p : public_shares) xs.push_back(p.index);
  BKV_RETURN_IF_ERROR(CheckIndices(xs));
  if (t < 1 || public_shares.size() < static_cast<size_t>(t)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "need at least t = ", t, " public shares, got ", public_shares.size()));
  }
  // The public key at 0 and the first t - 1 shares fix the polynomial; every
  // other share must lie on it.
  std::vector<Point> basis = {{0, public_key}};
  basis.insert(basis.end(), public_shares.begin(),
               public_shares.begin() + (t - 1));
  for (size_t i = t - 1; i < public_shares.size(); ++i) {
    BKV_ASSIGN_OR_RETURN(Element expected,
                         InterpolateAt(public_shares[i].index, basis));
    if (expected != public_shares[i].value) {
      return absl::FailedPreconditionError(absl::StrCat(
          "public share ", public_shares[i].index,
          " does not lie on the dealt polynomial: the registration is "
          "inconsistent"));
    }
  }
  return absl::OkStatus();
}

}  // namespace bkv::shamir
