#include "server/account_token.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include "absl/strings/str_split.h"

namespace bkv::server {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

class AccountTokenTest : public ::testing::Test {
 protected:
  AccountTokenTest() : kp_(GenerateEd25519KeyPair()) {
    auto v = TokenVerifier::Create({{{"k1", kp_.public_key}}, "bkv-vault", ""});
    EXPECT_TRUE(v.ok());
    verifier_ = *std::move(v);
  }
  std::string Mint(absl::string_view sub = "acct-1",
                   absl::string_view aud = "bkv-vault", absl::Time iat = kNow,
                   absl::Duration life = absl::Minutes(10),
                   absl::string_view kid = "k1") {
    auto t = MintToken(kp_.secret_key, kid, sub, aud, "", iat, life);
    EXPECT_TRUE(t.ok());
    return *t;
  }
  absl::StatusCode Code(const std::string& token) {
    return verifier_->Verify(token, kNow).status().code();
  }

  Ed25519KeyPair kp_;
  std::unique_ptr<TokenVerifier> verifier_;
};

TEST_F(AccountTokenTest, ValidTokenYieldsTheAccount) {
  auto sub = verifier_->Verify(Mint(), kNow);
  ASSERT_TRUE(sub.ok()) << sub.status();
  EXPECT_EQ(*sub, "acct-1");
}

TEST_F(AccountTokenTest, RejectsEveryKindOfBadToken) {
  const auto kUnauth = absl::StatusCode::kUnauthenticated;
  EXPECT_EQ(Code(""), kUnauth);
  EXPECT_EQ(Code("a.b"), kUnauth);
  EXPECT_EQ(Code("!!!.???.***"), kUnauth);
  EXPECT_EQ(Code(std::string(5000, 'a')), kUnauth);
  EXPECT_EQ(Code(Mint("acct", "other")), kUnauth);                   // audience
  EXPECT_EQ(Code(Mint("acct", "bkv-vault", kNow - absl::Hours(2))),  // expired
            kUnauth);
  EXPECT_EQ(Code(Mint("acct", "bkv-vault", kNow + absl::Hours(1))),  // future
            kUnauth);
  EXPECT_EQ(Code(Mint("acct", "bkv-vault", kNow, absl::Hours(48))),  // too long
            kUnauth);
  EXPECT_EQ(Code(Mint("acct", "bkv-vault", kNow, absl::Minutes(10), "k2")),
            kUnauth);                  // kid
  EXPECT_EQ(Code(Mint("")), kUnauth);  // sub
  // Another key with the same kid: forged.
  Ed25519KeyPair other = GenerateEd25519KeyPair();
  auto forged = MintToken(other.secret_key, "k1", "acct", "bkv-vault", "", kNow,
                          absl::Minutes(10));
  EXPECT_EQ(Code(*forged), kUnauth);
  // A flipped payload byte breaks the signature.
  std::string t = Mint();
  std::vector<std::string> parts = absl::StrSplit(t, '.');
  parts[1][3] = parts[1][3] == 'A' ? 'B' : 'A';
  EXPECT_EQ(Code(parts[0] + "." + parts[1] + "." + parts[2]), kUnauth);
}

TEST_F(AccountTokenTest, AlgNoneIsRefused) {
  // {"alg":"none","kid":"k1"} . {"sub":"x","aud":"bkv-vault",...} . ""
  std::string t = Mint();
  std::vector<std::string> parts = absl::StrSplit(t, '.');
  const std::string none_header = "eyJhbGciOiJub25lIiwia2lkIjoiazEifQ";
  EXPECT_EQ(Code(none_header + "." + parts[1] + "."),
            absl::StatusCode::kUnauthenticated);
  auto s =
      verifier_->Verify(none_header + "." + parts[1] + "." + parts[2], kNow);
  EXPECT_NE(s.status().message().find("EdDSA"), std::string::npos);
}

TEST_F(AccountTokenTest, KeysRotateByKid) {
  Ed25519KeyPair next = GenerateEd25519KeyPair();
  auto v = TokenVerifier::Create(
      {{{"k1", kp_.public_key}, {"k2", next.public_key}}, "bkv-vault", ""});
  ASSERT_TRUE(v.ok());
  auto t2 = MintToken(next.secret_key, "k2", "a", "bkv-vault", "", kNow,
                      absl::Minutes(5));
  EXPECT_TRUE((*v)->Verify(Mint(), kNow).ok());
  EXPECT_TRUE((*v)->Verify(*t2, kNow).ok());
}

TEST_F(AccountTokenTest, RememberedTokensStillExpireAndForgeriesMiss) {
  const std::string t = Mint();
  ASSERT_TRUE(verifier_->Verify(t, kNow).ok());
  ASSERT_TRUE(verifier_->Verify(t, kNow).ok());  // from the cache
  // The cache never outlives exp (+ skew).
  EXPECT_EQ(verifier_->Verify(t, kNow + absl::Minutes(12)).status().code(),
            absl::StatusCode::kUnauthenticated);
  // A token differing from a remembered one only in its signature.
  const std::string t2 = Mint("acct-2");
  ASSERT_TRUE(verifier_->Verify(t2, kNow).ok());
  std::string forged = t2;
  forged.back() = forged.back() == 'A' ? 'B' : 'A';
  EXPECT_EQ(Code(forged), absl::StatusCode::kUnauthenticated);
}

TEST(TokenVerifierTest, NeedsKeysAndAudience) {
  EXPECT_FALSE(TokenVerifier::Create({{}, "aud", ""}).ok());
  Ed25519KeyPair kp = GenerateEd25519KeyPair();
  EXPECT_FALSE(TokenVerifier::Create({{{"k", kp.public_key}}, "", ""}).ok());
}

}  // namespace
}  // namespace bkv::server
