#include "crypto/secret_bytes.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>
#include <vector>

namespace bkv {
namespace {

// Records what the free hook saw: a copy of each buffer at the moment it was
// about to be released, taken after the wipe.
std::vector<std::vector<uint8_t>>* g_released = nullptr;

void RecordRelease(const uint8_t* data, size_t size) {
  if (g_released != nullptr) g_released->emplace_back(data, data + size);
}

class SecretBytesWipeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    g_released = &released_;
    internal::SetSecretFreeHookForTesting(&RecordRelease);
  }
  void TearDown() override {
    internal::SetSecretFreeHookForTesting(nullptr);
    g_released = nullptr;
  }
  static bool AllZero(const std::vector<uint8_t>& v) {
    return std::all_of(v.begin(), v.end(), [](uint8_t b) { return b == 0; });
  }
  std::vector<std::vector<uint8_t>> released_;
};

TEST_F(SecretBytesWipeTest, DestructorWipesBeforeFree) {
  {
    SecretBytes s =
        SecretBytes::Copy(std::string_view("correct horse battery"));
    ASSERT_EQ(s.RevealAsString(), "correct horse battery");
  }
  ASSERT_EQ(released_.size(), 1u);
  EXPECT_EQ(released_[0].size(), 21u);
  EXPECT_TRUE(AllZero(released_[0]));
}

TEST_F(SecretBytesWipeTest, MoveAssignWipesTheOverwrittenValue) {
  SecretBytes a = SecretBytes::Random(32);
  SecretBytes b = SecretBytes::Random(16);
  a = std::move(b);
  ASSERT_EQ(released_.size(), 1u);
  EXPECT_EQ(released_[0].size(), 32u);
  EXPECT_TRUE(AllZero(released_[0]));
  EXPECT_EQ(a.size(), 16u);
}

TEST_F(SecretBytesWipeTest, LockedBufferIsWipedToo) {
  {
    SecretBytes s = SecretBytes::Locked(64);
    std::fill(s.RevealMutable().begin(), s.RevealMutable().end(), 0xAB);
    EXPECT_TRUE(s.locked());
  }
  ASSERT_EQ(released_.size(), 1u);
  EXPECT_TRUE(AllZero(released_[0]));
}

TEST_F(SecretBytesWipeTest, MovedFromObjectReleasesNothing) {
  {
    SecretBytes a = SecretBytes::Random(8);
    SecretBytes b(std::move(a));
    EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): contract
  }
  EXPECT_EQ(released_.size(), 1u);
}

TEST(SecretBytesTest, EqualityComparesContentsAndLength) {
  SecretBytes a = SecretBytes::Copy(std::string_view("abcdef"));
  SecretBytes b = SecretBytes::Copy(std::string_view("abcdef"));
  SecretBytes c = SecretBytes::Copy(std::string_view("abcdeg"));
  SecretBytes d = SecretBytes::Copy(std::string_view("abcde"));
  EXPECT_TRUE(a == b);
  EXPECT_FALSE(a == c);
  EXPECT_FALSE(a == d);
  EXPECT_TRUE(SecretBytes() == SecretBytes());
}

TEST(SecretBytesTest, PrintsRedacted) {
  SecretBytes s = SecretBytes::Copy(std::string_view("hunter2"));
  std::ostringstream os;
  os << s;
  EXPECT_EQ(os.str(), "SecretBytes(REDACTED, 7 bytes)");
  EXPECT_EQ(os.str().find("hunter2"), std::string::npos);
  EXPECT_EQ(::testing::PrintToString(s).find("hunter2"), std::string::npos);
}

TEST(SecretBytesTest, CloneIsDeepAndKeepsLocking) {
  SecretBytes a = SecretBytes::Locked(4);
  a.RevealMutable()[0] = 7;
  SecretBytes b = a.Clone();
  EXPECT_TRUE(b.locked());
  EXPECT_TRUE(a == b);
  b.RevealMutable()[0] = 8;
  EXPECT_FALSE(a == b);
}

TEST(SecretBytesTest, RandomIsNotConstant) {
  SecretBytes a = SecretBytes::Random(32);
  SecretBytes b = SecretBytes::Random(32);
  EXPECT_FALSE(a == b);
  EXPECT_EQ(SecretBytes(5).Reveal().size(), 5u);
}

TEST(ConstantTimeEqualsTest, Basics) {
  std::vector<uint8_t> x = {1, 2, 3}, y = {1, 2, 3}, z = {1, 2, 4};
  EXPECT_TRUE(ConstantTimeEquals(x, y));
  EXPECT_FALSE(ConstantTimeEquals(x, z));
  EXPECT_FALSE(ConstantTimeEquals(x, std::span<const uint8_t>(y).first(2)));
}

}  // namespace
}  // namespace bkv
