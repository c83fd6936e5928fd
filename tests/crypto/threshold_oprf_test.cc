// The threshold OPRF (crypto/threshold_oprf.h): t realms' proved partial
// evaluations combine into exactly the single-key RFC 9497 evaluation, and
// every kind of bad answer is refused before it could be combined.
#include "crypto/threshold_oprf.h"

#include <gtest/gtest.h>

#include "crypto/hex.h"
#include "crypto/oprf.h"
#include "tests/crypto/threshold_test_support.h"
#include "tests/crypto/vector_file.h"

namespace bkv::threshold {
namespace {

using ristretto255::Element;
using testing::Deal;
using testing::ForEachSubset;
using testing::PublicOf;

const RegistrationVersion kVersion = {1, 2,  3,  4,  5,  6,  7,  8,
                                      9, 10, 11, 12, 13, 14, 15, 16};

std::vector<uint8_t> Binding(int index,
                             const RegistrationVersion& v = kVersion) {
  auto b = ProofBinding("realm-" + std::to_string(index), v);
  EXPECT_TRUE(b.ok());
  return b.ok() ? *b : std::vector<uint8_t>{};
}

// A dealt key with each realm's answer to one blinded element.
struct Dealt {
  std::vector<shamir::Share> shares;
  std::vector<Element> public_shares;
  std::vector<PartialEvaluation> answers;
};

Dealt DealAndEvaluate(const SecretBytes& k, int t, int n,
                      const Element& blinded) {
  Dealt d;
  d.shares = Deal(k, t, n);
  for (const auto& s : d.shares) {
    d.public_shares.push_back(PublicOf(s.value));
    auto a = EvaluateShare(s, d.public_shares.back(), blinded, Binding(s.index),
                           SystemRandom());
    EXPECT_TRUE(a.ok()) << a.status();
    d.answers.push_back(a.ok() ? *a : PartialEvaluation{});
  }
  return d;
}

std::vector<PartialEvaluation> Pick(const Dealt& d, const std::vector<int>& s) {
  std::vector<PartialEvaluation> out;
  for (int p : s) out.push_back(d.answers[p]);
  return out;
}

// The RFC 9497 A.1.1 OPRF-mode key dealt t-of-n: every t-subset of verified
// answers combines to the RFC's EvaluationElement, and Finalize gives its
// Output, byte for byte.
TEST(ThresholdOprfTest, CombineMatchesRfc9497) {
  auto file = testing::ReadVectorFile("rfc9497-ristretto255-sha512-oprf.txt");
  SecretBytes sk;
  int checked = 0;
  for (const auto& s : file) {
    if (s.title == "OPRF Mode key material")
      sk = SecretBytes::Copy(s.Bytes("skSm"));
    if (!s.Has("EvaluationElement")) continue;
    auto blinded =
        ristretto255::DeserializeElement(s.Bytes("BlindedElement"), "B");
    ASSERT_TRUE(blinded.ok());
    for (auto [t, n] : {std::pair{1, 1}, {2, 3}, {3, 5}}) {
      Dealt d = DealAndEvaluate(sk, t, n, *blinded);
      for (int i = 0; i < n; ++i) {
        EXPECT_TRUE(VerifyPartial(d.public_shares[i], *blinded, Binding(i + 1),
                                  d.answers[i])
                        .ok());
      }
      ForEachSubset(n, t, [&](const std::vector<int>& subset) {
        auto z = Combine(Pick(d, subset), t);
        ASSERT_TRUE(z.ok()) << z.status();
        EXPECT_EQ(HexEncode(*z), s.Hex("EvaluationElement"));
        auto out = oprf::Finalize(s.Bytes("Input"),
                                  SecretBytes::Copy(s.Bytes("Blind")), *z);
        ASSERT_TRUE(out.ok());
        EXPECT_EQ(HexEncode(out->Reveal()), s.Hex("Output"));
        ++checked;
      });
    }
  }
  EXPECT_EQ(checked, 2 * (1 + 3 + 10));  // two vectors, all subsets
}

class ThresholdAnswerTest : public ::testing::Test {
 protected:
  ThresholdAnswerTest()
      : k_(SystemRandom().Scalar()),
        blinded_(PublicOf(SystemRandom().Scalar())),
        d_(DealAndEvaluate(k_, 2, 3, blinded_)) {}

  bool Verifies(int realm, const PartialEvaluation& a) const {
    return VerifyPartial(d_.public_shares[realm], blinded_, Binding(realm + 1),
                         a)
        .ok();
  }

  SecretBytes k_;
  Element blinded_;
  Dealt d_;
};

TEST_F(ThresholdAnswerTest, HonestAnswersVerify) {
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(Verifies(i, d_.answers[i]));
}

TEST_F(ThresholdAnswerTest, KnownKeyAnswerIsRefused) {
  // Realm 1 evaluates with a key it chose and proves that key honestly.
  SecretBytes known = SystemRandom().Scalar();
  auto forged = EvaluateShare({1, known.Clone()}, PublicOf(known), blinded_,
                              Binding(1), SystemRandom());
  ASSERT_TRUE(forged.ok());
  EXPECT_FALSE(Verifies(0, *forged));
}

TEST_F(ThresholdAnswerTest, TamperedEvaluationOrProofIsRefused) {
  PartialEvaluation a = d_.answers[0];
  a.evaluated = PublicOf(SystemRandom().Scalar());
  EXPECT_FALSE(Verifies(0, a));
  a = d_.answers[0];
  a.proof[5] ^= 0x20;
  EXPECT_FALSE(Verifies(0, a));
}

TEST_F(ThresholdAnswerTest, CrossRealmAnswerIsRefused) {
  // Realm 2's genuine answer presented as realm 1's.
  EXPECT_FALSE(Verifies(0, d_.answers[1]));
}

TEST_F(ThresholdAnswerTest, ReplayedAnswerIsRefused) {
  // An answer to an earlier recovery's blinded element.
  Element old_blinded = PublicOf(SystemRandom().Scalar());
  auto old = EvaluateShare(d_.shares[0], d_.public_shares[0], old_blinded,
                           Binding(1), SystemRandom());
  ASSERT_TRUE(old.ok());
  EXPECT_FALSE(Verifies(0, *old));
}

TEST_F(ThresholdAnswerTest, AnswerForAnotherVersionIsRefused) {
  RegistrationVersion other = kVersion;
  other[15] ^= 1;
  auto a = EvaluateShare(d_.shares[0], d_.public_shares[0], blinded_,
                         Binding(1, other), SystemRandom());
  ASSERT_TRUE(a.ok());
  EXPECT_FALSE(Verifies(0, *a));
}

TEST_F(ThresholdAnswerTest, CombineNeedsExactlyTDistinctAnswers) {
  auto one = Pick(d_, {0});
  EXPECT_EQ(Combine(one, 2).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(Combine(Pick(d_, {0, 1, 2}), 2).ok());
  EXPECT_FALSE(Combine(Pick(d_, {1, 1}), 2).ok());
  auto z = Combine(Pick(d_, {0, 2}), 2);
  ASSERT_TRUE(z.ok());
  auto direct = ristretto255::ScalarMult(k_, blinded_);
  ASSERT_TRUE(direct.ok());
  EXPECT_EQ(*z, *direct);
}

TEST_F(ThresholdAnswerTest, TMinusOneAnswersInterpolateToAWrongElement) {
  // What t - 1 realms could compute alone is not k * B.
  std::vector<shamir::Point> lone = {{1, d_.answers[0].evaluated}};
  auto z = shamir::CombineInExponent(lone);
  ASSERT_TRUE(z.ok());
  EXPECT_NE(*z, *ristretto255::ScalarMult(k_, blinded_));
}

TEST(ProofBindingTest, RefusesBadRealmIds) {
  EXPECT_FALSE(ProofBinding("", kVersion).ok());
  EXPECT_FALSE(ProofBinding(std::string(65, 'a'), kVersion).ok());
  auto a = ProofBinding("ab", kVersion), b = ProofBinding("a", kVersion);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);  // the length prefix keeps ids from running together
}

}  // namespace
}  // namespace bkv::threshold
