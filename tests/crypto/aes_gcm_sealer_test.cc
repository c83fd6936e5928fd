#include "crypto/aes_gcm_sealer.h"

#include <gtest/gtest.h>

#include "crypto/hex.h"

namespace bkv {
namespace {

std::vector<uint8_t> Bytes(std::string_view s) { return {s.begin(), s.end()}; }

TEST(AesGcmTest, KnownAnswerNistCase14) {
  // McGrew & Viega GCM spec, test case 14: 256-bit zero key, zero IV, one
  // zero block.
  std::vector<uint8_t> key(32, 0), nonce(12, 0), pt(16, 0);
  auto ct = AesGcmEncrypt(key, nonce, pt, {});
  ASSERT_TRUE(ct.ok()) << ct.status();
  EXPECT_EQ(HexEncode(*ct),
            "cea7403d4d606b6e074ec5d3baf39d18"
            "d0d1c8a799996bf0265b98b5d48ab919");
}

// The buffer-reusing decryption (restore's hot path) opens exactly what the
// allocating one does, refuses a wrong-size buffer, and wipes it when the
// tag does not verify (no unauthenticated plaintext is left in it).
TEST(AesGcmTest, DecryptToMatchesDecryptAndWipesOnFailure) {
  std::vector<uint8_t> key(32, 7), nonce(12, 3);
  const auto pt = Bytes("a chunk of a chat history, restored in place");
  auto ct = AesGcmEncrypt(key, nonce, pt, Bytes("ad"));
  ASSERT_TRUE(ct.ok());
  std::vector<uint8_t> out(pt.size());
  ASSERT_TRUE(AesGcmDecryptTo(key, nonce, *ct, Bytes("ad"), out).ok());
  EXPECT_EQ(out, pt);
  EXPECT_EQ(*AesGcmDecrypt(key, nonce, *ct, Bytes("ad")), pt);
  std::vector<uint8_t> small(pt.size() - 1);
  EXPECT_EQ(AesGcmDecryptTo(key, nonce, *ct, Bytes("ad"), small).code(),
            absl::StatusCode::kInternal);
  auto bad = *ct;
  bad.back() ^= 1;  // the tag
  EXPECT_EQ(AesGcmDecryptTo(key, nonce, bad, Bytes("ad"), out).code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(out, std::vector<uint8_t>(pt.size(), 0));
}

TEST(AesGcmSealerTest, RoundTripAndRejectsModifiedBytes) {
  auto sealer = AesGcmSealer::Create(SecretBytes::Random(32));
  ASSERT_TRUE(sealer.ok());
  auto pt = Bytes("backup key material");
  auto ad = Bytes("account-1|v3");
  auto sealed = sealer->Seal(pt, ad);
  ASSERT_TRUE(sealed.ok());
  EXPECT_EQ(sealed->size(), pt.size() + 28);

  auto opened = sealer->Open(*sealed, ad);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(*opened, pt);

  for (size_t i = 0; i < sealed->size(); ++i) {
    auto bad = *sealed;
    bad[i] ^= 0x01;
    EXPECT_EQ(sealer->Open(bad, ad).status().code(),
              absl::StatusCode::kDataLoss)
        << "byte " << i;
  }
  EXPECT_EQ(sealer->Open(*sealed, Bytes("account-2|v3")).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(sealer->Open(std::span(*sealed).first(20), ad).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(AesGcmSealerTest, NoncesDiffer) {
  auto sealer = AesGcmSealer::Create(SecretBytes::Random(32));
  ASSERT_TRUE(sealer.ok());
  auto a = sealer->Seal(Bytes("x"), {});
  auto b = sealer->Seal(Bytes("x"), {});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
}

TEST(AesGcmSealerTest, RejectsWrongKeySize) {
  EXPECT_EQ(AesGcmSealer::Create(SecretBytes(16)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace bkv
