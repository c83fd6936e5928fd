#ifndef BKV_TESTS_CRYPTO_THRESHOLD_TEST_SUPPORT_H_
#define BKV_TESTS_CRYPTO_THRESHOLD_TEST_SUPPORT_H_

#include <gtest/gtest.h>

#include <functional>
#include <vector>

#include "crypto/random.h"
#include "crypto/ristretto255.h"
#include "crypto/shamir.h"

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

}  // namespace bkv::testing

#endif  // BKV_TESTS_CRYPTO_THRESHOLD_TEST_SUPPORT_H_
