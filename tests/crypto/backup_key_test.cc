#include "crypto/backup_key.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace bkv {
namespace {

using ::testing::HasSubstr;

std::string Text(const BackupKey& k) {
  return std::string(k.Format().RevealAsString());
}

TEST(BackupKeyTest, FormatIs16GroupsOf4LowerHex) {
  BackupKey k = BackupKey::Generate();
  std::string t = Text(k);
  ASSERT_EQ(t.size(), 79u);
  for (size_t i = 0; i < t.size(); ++i) {
    if (i % 5 == 4) {
      EXPECT_EQ(t[i], ' ') << i;
    } else {
      EXPECT_TRUE((t[i] >= '0' && t[i] <= '9') || (t[i] >= 'a' && t[i] <= 'f'))
          << i;
    }
  }
}

TEST(BackupKeyTest, GeneratedKeysDiffer) {
  EXPECT_FALSE(BackupKey::Generate().secret() ==
               BackupKey::Generate().secret());
}

TEST(BackupKeyTest, ParseRoundTripIgnoresSpacesDashesAndCase) {
  BackupKey k = BackupKey::Generate();
  std::string t = Text(k);
  std::string compact, dashed, upper;
  for (char c : t) {
    if (c == ' ') {
      dashed += '-';
      continue;
    }
    compact += c;
    dashed += c;
    upper += static_cast<char>(std::toupper(c));
  }
  for (const std::string& s : {t, compact, dashed, upper, " " + t + "  "}) {
    auto parsed = BackupKey::Parse(s);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_TRUE(parsed->secret() == k.secret());
  }
}

TEST(BackupKeyTest, ParseRejectsWrongLength) {
  std::string t = Text(BackupKey::Generate());
  auto short_key = BackupKey::Parse(t.substr(0, t.size() - 1));
  EXPECT_THAT(short_key.status().message(),
              HasSubstr("has 63 hex digits, expected 64"));
  auto long_key = BackupKey::Parse(t + "a");
  EXPECT_THAT(long_key.status().message(),
              HasSubstr("has 65 hex digits, expected 64"));
  EXPECT_THAT(BackupKey::Parse("").status().message(),
              HasSubstr("has 0 hex digits"));
}

TEST(BackupKeyTest, ParseRejectsBadCharacterWithPosition) {
  std::string t = Text(BackupKey::Generate());
  for (char bad : {'g', 'O', '\n', ':', '\0', '_'}) {
    std::string s = t;
    s[6] = bad;
    auto parsed = BackupKey::Parse(s);
    ASSERT_FALSE(parsed.ok());
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(parsed.status().message(),
                HasSubstr("invalid character at position 7"));
    // The message never quotes the input.
    EXPECT_THAT(parsed.status().message(),
                ::testing::Not(HasSubstr(t.substr(0, 4))));
  }
}

TEST(BackupKeyTest, FromBytesChecksLength) {
  EXPECT_FALSE(BackupKey::FromBytes(SecretBytes(31)).ok());
  EXPECT_TRUE(BackupKey::FromBytes(SecretBytes(32)).ok());
}

TEST(BackupKeyTest, GarbageNeverCrashes) {
  std::string s;
  for (int i = 0; i < 2000; ++i) {
    s.push_back(static_cast<char>((i * 131 + 7) & 0xff));
    (void)BackupKey::Parse(s);
  }
}

}  // namespace
}  // namespace bkv
