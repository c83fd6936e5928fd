#include "crypto/hex.h"

#include <gtest/gtest.h>

namespace bkv {
namespace {

TEST(HexTest, RoundTrip) {
  std::vector<uint8_t> bytes = {0x00, 0x7f, 0x80, 0xff, 0x1a};
  EXPECT_EQ(HexEncode(bytes), "007f80ff1a");
  auto back = HexDecode("007F80ff1A");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, bytes);
}

TEST(HexTest, RejectsGarbage) {
  EXPECT_EQ(HexDecode("abc").status().code(),
            absl::StatusCode::kInvalidArgument);
  auto bad = HexDecode("00zz");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("position 2"), std::string::npos)
      << bad.status();
  EXPECT_FALSE(HexDecode("0 ").ok());
  EXPECT_TRUE(HexDecode("").ok());
}

}  // namespace
}  // namespace bkv
