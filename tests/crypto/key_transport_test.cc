#include "crypto/key_transport.h"

#include <gtest/gtest.h>

namespace bkv::key_transport {
namespace {

TEST(KeyTransportTest, WrapThenTransportRoundTrip) {
  SecretBytes export_key = SecretBytes::Random(64);
  SecretBytes session_key = SecretBytes::Random(64);
  SecretBytes backup_key = SecretBytes::Random(32);

  auto wrapped = WrapBackupKey(export_key, "acct", backup_key);
  ASSERT_TRUE(wrapped.ok()) << wrapped.status();
  EXPECT_EQ(wrapped->size(), kWrappedKeySize);
  auto sealed = Seal(session_key, Direction::kRegister, "acct", *wrapped);
  ASSERT_TRUE(sealed.ok());
  EXPECT_EQ(sealed->size(), kSealedSize);

  auto opened = Open(session_key, Direction::kRegister, "acct", *sealed);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(*opened, *wrapped);
  auto unwrapped = UnwrapBackupKey(export_key, "acct", *opened);
  ASSERT_TRUE(unwrapped.ok()) << unwrapped.status();
  EXPECT_TRUE(*unwrapped == backup_key);
}

TEST(KeyTransportTest, BindingsAreChecked) {
  SecretBytes export_key = SecretBytes::Random(64);
  SecretBytes session_key = SecretBytes::Random(64);
  auto wrapped = WrapBackupKey(export_key, "acct", SecretBytes::Random(32));
  ASSERT_TRUE(wrapped.ok());
  auto sealed = Seal(session_key, Direction::kRecover, "acct", *wrapped);
  ASSERT_TRUE(sealed.ok());

  // Other direction, other account, other session, tampered: all refused.
  EXPECT_FALSE(Open(session_key, Direction::kRegister, "acct", *sealed).ok());
  EXPECT_FALSE(Open(session_key, Direction::kRecover, "acct2", *sealed).ok());
  EXPECT_FALSE(
      Open(SecretBytes::Random(64), Direction::kRecover, "acct", *sealed).ok());
  for (size_t i = 0; i < sealed->size(); ++i) {
    auto bad = *sealed;
    bad[i] ^= 1;
    ASSERT_FALSE(Open(session_key, Direction::kRecover, "acct", bad).ok()) << i;
  }
  EXPECT_EQ(Open(session_key, Direction::kRecover, "acct",
                 std::span(*sealed).first(10))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);

  // The wrap needs the export key (the password) and the same account.
  EXPECT_FALSE(UnwrapBackupKey(SecretBytes::Random(64), "acct", *wrapped).ok());
  EXPECT_FALSE(UnwrapBackupKey(export_key, "other", *wrapped).ok());
  EXPECT_FALSE(WrapBackupKey(export_key, "acct", SecretBytes::Random(31)).ok());
}

// Review of the realm side, finding 6: each protocol opens only its own
// shape, so a v2 answer is not taken for a realm's release or back.
TEST(KeyTransportTest, OpenTakesOnlyTheExpectedSize) {
  SecretBytes session_key = SecretBytes::Random(64);
  std::vector<uint8_t> v2(kWrappedKeySize, 7), v3(kRealmReleaseSize, 9);
  auto sealed_v2 = Seal(session_key, Direction::kRecover, "acct", v2);
  auto sealed_v3 = Seal(session_key, Direction::kRecover, "acct", v3);
  ASSERT_TRUE(sealed_v2.ok() && sealed_v3.ok());
  EXPECT_EQ(sealed_v2->size(), kSealedSize);
  EXPECT_EQ(Open(session_key, Direction::kRecover, "acct", *sealed_v2,
                 kRealmReleaseSize)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Open(session_key, Direction::kRecover, "acct", *sealed_v3)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  auto opened = Open(session_key, Direction::kRecover, "acct", *sealed_v3,
                     kRealmReleaseSize);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(*opened, v3);
}

}  // namespace
}  // namespace bkv::key_transport
