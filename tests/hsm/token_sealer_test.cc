#include "hsm/token_sealer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "hsm/key_ceremony.h"
#include "hsm/self_test.h"
#include "tests/hsm/test_token.h"

namespace bkv::hsm {
namespace {

using ::testing::HasSubstr;
using testing::TestToken;

std::vector<uint8_t> Bytes(absl::string_view s) { return {s.begin(), s.end()}; }

TEST(ParseSealedRecordTest, GarbageIsDataLoss) {
  for (size_t n = 0; n < TokenSealer::kOverhead; ++n) {
    std::vector<uint8_t> garbage(n, TokenSealer::kFormatV1);
    EXPECT_EQ(ParseSealedRecord(garbage).status().code(),
              absl::StatusCode::kDataLoss)
        << n;
  }
  std::vector<uint8_t> v2(TokenSealer::kOverhead + 5, 0x02);
  EXPECT_THAT(ParseSealedRecord(v2).status().message(),
              HasSubstr("unknown sealed format 0x02"));
  std::vector<uint8_t> ok(TokenSealer::kOverhead + 5, 0);
  ok[0] = TokenSealer::kFormatV1;
  auto view = ParseSealedRecord(ok);
  ASSERT_TRUE(view.ok());
  EXPECT_EQ(view->iv.size(), 12u);
  EXPECT_EQ(view->ciphertext_and_tag.size(), 5u + 16u);
}

class TokenSealerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto token = TestToken::Create(/*with_keys=*/true);
    ASSERT_TRUE(token.ok()) << token.status();
    token_ = *std::move(token);
    auto sealer = TokenSealer::Create(token_->hsm());
    ASSERT_TRUE(sealer.ok()) << sealer.status();
    sealer_.emplace(*std::move(sealer));
  }

  std::unique_ptr<TestToken> token_;
  std::optional<TokenSealer> sealer_;
};

TEST_F(TokenSealerTest, RoundTripAndLayout) {
  const auto pt = Bytes("backup key material");
  const auto ad = Bytes("account-1|v3");
  auto sealed = sealer_->Seal(pt, ad);
  ASSERT_TRUE(sealed.ok()) << sealed.status();
  ASSERT_EQ(sealed->size(), pt.size() + TokenSealer::kOverhead);
  EXPECT_EQ((*sealed)[0], TokenSealer::kFormatV1);
  auto opened = sealer_->Open(*sealed, ad);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(*opened, pt);
}

TEST_F(TokenSealerTest, EmptyPlaintextAndAd) {
  auto sealed = sealer_->Seal({}, {});
  ASSERT_TRUE(sealed.ok()) << sealed.status();
  EXPECT_EQ(sealed->size(), TokenSealer::kOverhead);
  auto opened = sealer_->Open(*sealed, {});
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_TRUE(opened->empty());
}

TEST_F(TokenSealerTest, FreshIvEachSeal) {
  auto a = sealer_->Seal(Bytes("x"), {});
  auto b = sealer_->Seal(Bytes("x"), {});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(std::vector<uint8_t>(a->begin() + 1, a->begin() + 13),
            std::vector<uint8_t>(b->begin() + 1, b->begin() + 13));
}

TEST_F(TokenSealerTest, TamperedCiphertextRejected) {
  const auto ad = Bytes("ad");
  auto sealed = sealer_->Seal(Bytes("sixteen byte msg"), ad);
  ASSERT_TRUE(sealed.ok());
  for (size_t i = 0; i < sealed->size(); ++i) {
    auto bad = *sealed;
    bad[i] ^= 0x01;
    absl::Status s = sealer_->Open(bad, ad).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << "byte " << i << s;
    EXPECT_THAT(s.message(), HasSubstr("authentication failed"));
  }
  EXPECT_EQ(sealer_->Open(std::span(*sealed).first(28), ad).status().code(),
            absl::StatusCode::kDataLoss);
  auto longer = *sealed;
  longer.push_back(0);
  EXPECT_EQ(sealer_->Open(longer, ad).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST_F(TokenSealerTest, WrongAssociatedDataRejected) {
  auto sealed = sealer_->Seal(Bytes("secret"), Bytes("account-1"));
  ASSERT_TRUE(sealed.ok());
  for (const auto& ad : {Bytes("account-2"), Bytes(""), Bytes("account-1 ")}) {
    absl::Status s = sealer_->Open(*sealed, ad).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
    EXPECT_THAT(s.message(), HasSubstr("authentication failed"));
  }
  // The session that saw the failure is still usable afterwards.
  EXPECT_TRUE(sealer_->Open(*sealed, Bytes("account-1")).ok());
}

TEST_F(TokenSealerTest, EightThreadsSealAtOnce) {
  constexpr int kThreads = 8, kPerThread = 40;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::vector<uint8_t> pt = {static_cast<uint8_t>(t),
                                         static_cast<uint8_t>(i)};
        const std::vector<uint8_t> ad = {static_cast<uint8_t>(i)};
        auto sealed = sealer_->Seal(pt, ad);
        if (!sealed.ok()) continue;
        auto opened = sealer_->Open(*sealed, ad);
        if (opened.ok() && *opened == pt) ++ok;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), kThreads * kPerThread);
}

TEST_F(TokenSealerTest, OprfSeedHmacIsStableAndKeyed) {
  auto seed = TokenKeyedHash::Create(token_->hsm());
  ASSERT_TRUE(seed.ok()) << seed.status();
  auto a = seed->HmacSha512(Bytes("user-1"));
  auto b = seed->HmacSha512(Bytes("user-1"));
  auto c = seed->HmacSha512(Bytes("user-2"));
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->size(), 64u);
  EXPECT_TRUE(*a == *b);
  EXPECT_FALSE(*a == *c);
  auto empty = seed->HmacSha512({});
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(empty->size(), 64u);
}

TEST_F(TokenSealerTest, SelfTestsPass) {
  auto keys = VaultKeys::Load(token_->hsm());
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_TRUE(RunTokenSelfTests(*token_->hsm(), *keys).ok());
}

TEST_F(TokenSealerTest, SelfTestsStopAtFirstFailureAndNameIt) {
  auto keys = VaultKeys::Load(token_->hsm());
  ASSERT_TRUE(keys.ok()) << keys.status();
  std::vector<SelfTest> tests = TokenSelfTests(*token_->hsm(), *keys);
  bool later_ran = false;
  tests.push_back({"opaque-vector", [] {
                     return absl::InternalError("KE2 differs from RFC 9807");
                   }});
  tests.push_back({"never", [&] {
                     later_ran = true;
                     return absl::OkStatus();
                   }});
  absl::Status s = RunSelfTests(tests);
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(s.message(),
              HasSubstr("self-test 'opaque-vector' failed: KE2 differs"));
  EXPECT_FALSE(later_ran);
}

}  // namespace
}  // namespace bkv::hsm
