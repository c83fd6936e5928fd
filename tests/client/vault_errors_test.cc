// The client's one vault error classifier, over statuses shaped like the
// ones the SDK builds from gRPC (code + ErrorDetail payload + call kind).
#include "client/vault_errors.h"

#include <gtest/gtest.h>

#include "absl/strings/cord.h"
#include "bkv/vault/v1/error_detail.h"
#include "bkv/vault/v1/vault.pb.h"

namespace bkv::client {
namespace {

using vault::v1::ErrorDetail;

absl::Status WithDetail(absl::Status s, ErrorDetail::Reason reason,
                        ErrorDetail::Attempt attempt,
                        uint32_t attempts_remaining = 0,
                        uint32_t retry_after_ms = 0) {
  ErrorDetail d;
  d.set_reason(reason);
  d.set_attempt(attempt);
  d.set_attempts_remaining(attempts_remaining);
  d.set_retry_after_ms(retry_after_ms);
  return vault::v1::AttachErrorDetail(std::move(s), d);
}

TEST(VaultErrors, RateLimitOnACountedCallIsRetrySafeOnlyIfMarkedNotCounted) {
  const absl::Status base = absl::ResourceExhaustedError("slow down");
  VaultError marked = VaultError::From(
      MarkVaultCall(WithDetail(base, ErrorDetail::REASON_RATE_LIMITED,
                               ErrorDetail::ATTEMPT_NOT_COUNTED, 0, 1500),
                    VaultCall::kCounted));
  EXPECT_EQ(marked.kind, VaultErrorKind::kRateLimited);
  EXPECT_EQ(marked.attempt_spent, AttemptSpent::kNo);
  EXPECT_TRUE(marked.retry_safe);
  EXPECT_EQ(marked.retry_after_ms, 1500u);

  VaultError unmarked = VaultError::From(
      MarkVaultCall(WithDetail(base, ErrorDetail::REASON_RATE_LIMITED,
                               ErrorDetail::ATTEMPT_UNSPECIFIED, 0, 1500),
                    VaultCall::kCounted));
  EXPECT_EQ(unmarked.attempt_spent, AttemptSpent::kUnknown);
  EXPECT_FALSE(unmarked.retry_safe);

  // The same refusal of a call that never counts is safe.
  VaultError read = VaultError::From(
      MarkVaultCall(WithDetail(base, ErrorDetail::REASON_RATE_LIMITED,
                               ErrorDetail::ATTEMPT_UNSPECIFIED, 0, 1500),
                    VaultCall::kFree));
  EXPECT_TRUE(read.retry_safe);
}

TEST(VaultErrors, LostAnswerOfACountedCallMayHaveSpentAnAttempt) {
  VaultError e = VaultError::From(MarkVaultCall(
      absl::DeadlineExceededError("Deadline Exceeded"), VaultCall::kCounted));
  EXPECT_EQ(e.kind, VaultErrorKind::kTransient);
  EXPECT_EQ(e.attempt_spent, AttemptSpent::kUnknown);
  EXPECT_FALSE(e.retry_safe);
  EXPECT_FALSE(e.vault_answered);
  EXPECT_NE(DescribeVaultError(e).find("may have been spent"),
            std::string::npos);
}

TEST(VaultErrors, ExpiredLoginSaysARetrySpendsAnotherAttempt) {
  absl::Status expired = WithDetail(absl::DeadlineExceededError("expired"),
                                    ErrorDetail::REASON_STATE_EXPIRED,
                                    ErrorDetail::ATTEMPT_UNSPECIFIED);
  VaultError e = VaultError::From(
      SpentAttemptError(MarkVaultCall(expired, VaultCall::kAfterCount), 4));
  EXPECT_EQ(e.kind, VaultErrorKind::kExpired);
  EXPECT_EQ(e.attempt_spent, AttemptSpent::kYes);
  EXPECT_EQ(e.attempts_remaining, 4u);
  const std::string msg = DescribeVaultError(e);
  EXPECT_NE(msg.find("spends another attempt"), std::string::npos) << msg;
  EXPECT_NE(msg.find("4 remain"), std::string::npos) << msg;
}

TEST(VaultErrors, ClientMadeErrorsAreTyped) {
  EXPECT_EQ(VaultError::From(ConfigError("context differs")).kind,
            VaultErrorKind::kConfig);
  EXPECT_EQ(VaultError::From(LockedError()).kind, VaultErrorKind::kLocked);
  EXPECT_EQ(VaultError::From(NotRegisteredError()).attempt_spent,
            AttemptSpent::kNo);
  // A local failure is described as itself, with no claim about attempts.
  VaultError local = VaultError::From(absl::PermissionDeniedError("tampered"));
  EXPECT_EQ(DescribeVaultError(local), "tampered");
  VaultError internal = VaultError::From(absl::InternalError("bug"));
  EXPECT_EQ(DescribeVaultError(internal), "bug");
}

TEST(VaultErrors, ProofRequiredAndVaultUnavailable) {
  VaultError proof = VaultError::From(
      MarkVaultCall(WithDetail(absl::FailedPreconditionError("proof"),
                               ErrorDetail::REASON_PROOF_REQUIRED,
                               ErrorDetail::ATTEMPT_NOT_COUNTED),
                    VaultCall::kFree));
  EXPECT_EQ(proof.kind, VaultErrorKind::kProofRequired);
  EXPECT_FALSE(proof.retry_safe);
  VaultError down = VaultError::From(
      MarkVaultCall(WithDetail(absl::UnavailableError("hsm"),
                               ErrorDetail::REASON_VAULT_UNAVAILABLE,
                               ErrorDetail::ATTEMPT_NOT_COUNTED),
                    VaultCall::kCounted));
  EXPECT_EQ(down.kind, VaultErrorKind::kTransient);
  EXPECT_TRUE(down.retry_safe);
  EXPECT_TRUE(down.vault_answered);
  // A refused RecoverFinish: its attempt is spent, but repeating the same
  // finish spends nothing more.
  VaultError finish = VaultError::From(
      MarkVaultCall(WithDetail(absl::UnavailableError("audit log"),
                               ErrorDetail::REASON_VAULT_UNAVAILABLE,
                               ErrorDetail::ATTEMPT_SPENT),
                    VaultCall::kAfterCount));
  EXPECT_EQ(finish.attempt_spent, AttemptSpent::kYes);
  EXPECT_TRUE(finish.retry_safe);
  // Its lost answer is not repeated by the SDK (the vault did not answer).
  VaultError lost = VaultError::From(MarkVaultCall(
      absl::UnavailableError("Socket closed"), VaultCall::kAfterCount));
  EXPECT_FALSE(lost.vault_answered);
}

// Transport failures read as a sentence with the next step, whatever gRPC
// said (messages as Debian's gRPC 1.51 words them).
TEST(VaultErrors, TransportFailuresAreWordedForPeople) {
  const struct {
    absl::StatusCode code;
    const char* grpc;
    const char* says;
  } cases[] = {
      {absl::StatusCode::kUnavailable,
       "failed to connect to all addresses; last error: UNKNOWN: "
       "ipv4:127.0.0.1:1: Failed to connect to remote host: Connection refused",
       "refused the connection"},
      {absl::StatusCode::kUnavailable,
       "DNS resolution failed for nosuch.invalid:443: C-ares status is not "
       "ARES_SUCCESS",
       "does not resolve (DNS)"},
      {absl::StatusCode::kUnavailable,
       "failed to connect to all addresses; last error: UNKNOWN: "
       "Ssl handshake failed: SSL_ERROR_SSL: error:1000007d:SSL "
       "routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED",
       "--vault-ca"},
      {absl::StatusCode::kDeadlineExceeded, "Deadline Exceeded",
       "did not answer in time"},
      {absl::StatusCode::kUnavailable, "Socket closed", "cannot be reached"},
  };
  for (const auto& c : cases) {
    const std::string text =
        DescribeTransportFailure(c.code, c.grpc, "vault.example:443");
    EXPECT_NE(text.find(c.says), std::string::npos) << text;
    EXPECT_EQ(text.find("UNKNOWN"), std::string::npos) << text;
  }
}

}  // namespace
}  // namespace bkv::client
