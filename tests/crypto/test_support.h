#ifndef BKV_TESTS_CRYPTO_TEST_SUPPORT_H_
#define BKV_TESTS_CRYPTO_TEST_SUPPORT_H_

#include <gtest/gtest.h>

#include <deque>
#include <vector>

#include "crypto/ksf.h"
#include "crypto/random.h"

namespace bkv::testing {

// RFC 9807's vectors use the identity KSF; it exists only here.
class IdentityKsf final : public Ksf {
 public:
  absl::StatusOr<SecretBytes> Stretch(const SecretBytes& msg) const override {
    return msg.Clone();
  }
};

// Replays fixed values in the order the protocol draws them, and fails the
// test on any draw it was not scripted for.
class ScriptedRandom final : public RandomSource {
 public:
  explicit ScriptedRandom(std::vector<std::vector<uint8_t>> values)
      : values_(values.begin(), values.end()) {}
  void Bytes(std::span<uint8_t> out) const override {
    auto v = Next();
    ASSERT_EQ(v.size(), out.size()) << "scripted random draw size";
    std::copy(v.begin(), v.end(), out.begin());
  }
  SecretBytes Scalar() const override { return SecretBytes::Copy(Next()); }
  bool exhausted() const { return values_.empty(); }

 private:
  std::vector<uint8_t> Next() const {
    if (values_.empty()) {
      ADD_FAILURE() << "unexpected random draw";
      return std::vector<uint8_t>(32, 1);
    }
    auto v = values_.front();
    values_.pop_front();
    return v;
  }
  mutable std::deque<std::vector<uint8_t>> values_;
};

inline std::vector<uint8_t> ToVec(std::span<const uint8_t> s) {
  return {s.begin(), s.end()};
}

}  // namespace bkv::testing

#endif  // BKV_TESTS_CRYPTO_TEST_SUPPORT_H_
