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
