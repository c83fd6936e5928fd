#include "hsm/pkcs11_status.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace bkv::hsm {
namespace {

using ::testing::HasSubstr;

TEST(CheckRvTest, OkIsOk) { EXPECT_TRUE(CheckRv(CKR_OK, "C_Encrypt").ok()); }

TEST(CheckRvTest, NamesFunctionAndCode) {
  absl::Status s = CheckRv(CKR_KEY_HANDLE_INVALID, "C_EncryptInit");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("C_EncryptInit"));
  EXPECT_THAT(s.message(), HasSubstr("CKR_KEY_HANDLE_INVALID"));
  EXPECT_EQ(RvFromStatus(s), CKR_KEY_HANDLE_INVALID);
}

TEST(CheckRvTest, OperatorMistakesReadAsAdvice) {
  absl::Status wrong = CheckRv(CKR_PIN_INCORRECT, "C_Login");
  EXPECT_EQ(wrong.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(wrong.message(), HasSubstr("wrong PIN"));

  absl::Status locked = CheckRv(CKR_PIN_LOCKED, "C_Login");
  EXPECT_EQ(locked.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(locked.message(), HasSubstr("CKR_PIN_LOCKED"));
  EXPECT_THAT(locked.message(), HasSubstr("locked"));
  EXPECT_THAT(locked.message(), HasSubstr("security officer"));

  absl::Status mech = CheckRv(CKR_MECHANISM_INVALID, "C_EncryptInit");
  EXPECT_EQ(mech.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(mech.message(), HasSubstr("mechanism unsupported"));
}

TEST(CheckRvTest, GcmTagFailureIsDataLossOnlyForDecrypt) {
  for (CK_RV rv : {CKR_GENERAL_ERROR, CKR_ENCRYPTED_DATA_INVALID}) {
    absl::Status s = CheckRv(rv, "C_Decrypt");
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << rv;
    EXPECT_THAT(s.message(), HasSubstr("authentication failed"));
  }
  absl::Status other = CheckRv(CKR_GENERAL_ERROR, "C_Encrypt");
  EXPECT_EQ(other.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(other.message(), ::testing::Not(HasSubstr("authentication")));
}

TEST(CheckRvTest, UnknownCodeIsHex) {
  absl::Status s = CheckRv(CKR_VENDOR_DEFINED | 0x42, "C_Sign");
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(s.message(), HasSubstr("CKR_0x80000042"));
  EXPECT_EQ(RvFromStatus(s), CKR_VENDOR_DEFINED | 0x42);
}

TEST(CheckRvTest, ForeignStatusHasNoRv) {
  EXPECT_EQ(RvFromStatus(absl::InternalError("x")), std::nullopt);
}

}  // namespace
}  // namespace bkv::hsm
