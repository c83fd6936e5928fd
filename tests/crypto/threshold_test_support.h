#ifndef BKV_TESTS_CRYPTO_THRESHOLD_TEST_SUPPORT_H_
#define BKV_TESTS_CRYPTO_THRESHOLD_TEST_SUPPORT_H_

#include <gtest/gtest.h>

#include <functional>
#include <vector>

#include "crypto/random.h"
#include "crypto/ristretto255.h"
#include "crypto/shamir.h"
#include "crypto/threshold_descriptor.h"

namespace bkv::testing {

inline ristretto255::Element PublicOf(const SecretBytes& scalar) {
  auto e = ristretto255::ScalarMultBase(scalar);
  EXPECT_TRUE(e.ok()) << e.status();
  return e.ok() ? *e : ristretto255::Element{};
}

inline std::vector<shamir::Share> Deal(const SecretBytes& secret, int t,
                                       int n) {
  auto shares = shamir::Split(secret, t, n, SystemRandom());
  EXPECT_TRUE(shares.ok()) << shares.status();
  return shares.ok() ? std::move(*shares) : std::vector<shamir::Share>{};
}

// Calls f with every subset of {0 .. n-1} of size k (positions, ascending).
inline void ForEachSubset(
    int n, int k, const std::function<void(const std::vector<int>&)>& f) {
  for (unsigned mask = 0; mask < (1u << n); ++mask) {
    if (__builtin_popcount(mask) != k) continue;
    std::vector<int> subset;
    for (int i = 0; i < n; ++i) {
      if (mask & (1u << i)) subset.push_back(i);
    }
    f(subset);
  }
}

// A registration as a correct dealer makes it: k and s dealt t-of-n, and
// the descriptor committing to both dealings.
struct Dealing {
  SecretBytes k;
  std::vector<shamir::Share> shares;         // k_i
  std::vector<shamir::Share> second_shares;  // s_i
  threshold::Descriptor descriptor;
};

// `identity_keys` (n of them) default to fresh random elements.
inline Dealing DealRegistration(
    SecretBytes k, int t, int n,
    std::vector<ristretto255::Element> identity_keys = {}) {
  Dealing out{std::move(k), {}, {}, {}};
  SecretBytes s = SystemRandom().Scalar();
  out.shares = Deal(out.k, t, n);
  out.second_shares = Deal(s, t, n);
  threshold::Descriptor& d = out.descriptor;
  d.version = {7, 7, 7};
  d.t = t;
  d.advertised_limit = 10;
  d.per_realm_limit = 10 / (n - t + 1);
  d.ksf = threshold::kMinKsf;
  d.public_key = PublicOf(out.k);
  d.second_public_key = PublicOf(s);
  for (int i = 0; i < n; ++i) {
    d.realms.push_back(
        {"realm-" + std::to_string(i + 1),
         identity_keys.empty() ? PublicOf(SystemRandom().Scalar())
                               : identity_keys[i],
         PublicOf(out.shares[i].value), PublicOf(out.second_shares[i].value)});
  }
  d.wrapped_hash.fill(0xaa);
  d.commit_hash.fill(0xbb);
  return out;
}

}  // namespace bkv::testing

#endif  // BKV_TESTS_CRYPTO_THRESHOLD_TEST_SUPPORT_H_
