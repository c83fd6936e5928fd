#include "server/vault_service.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <chrono>
#include <limits>

#include "absl/random/random.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "crypto/status_macros.h"
#include "server/errors.h"
#include "server/log.h"

namespace bkv::server {
namespace {

using vault::v1::RecordStatus;

std::span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

std::string ToString(const std::vector<uint8_t>& v) {
  return {v.begin(), v.end()};
}

// Calls other than RecoverStart/RecoverFinish never touch the counter.
absl::Status NothingCounted(absl::Status s) {
  return WithAttempt(std::move(s), vault::v1::ErrorDetail::ATTEMPT_NOT_COUNTED);
}

// The v2 and v3 status calls answer the same record states.
RecordStatus ToRecordStatus(policy::Status status) {
  switch (status) {
    case policy::Status::kNone:
      return RecordStatus::RECORD_STATUS_NONE;
    case policy::Status::kActive:
      return RecordStatus::RECORD_STATUS_ACTIVE;
    case policy::Status::kLocked:
      return RecordStatus::RECORD_STATUS_LOCKED;
  }
  return RecordStatus::RECORD_STATUS_UNSPECIFIED;  // as the unset field
}

grpc::StatusCode ToGrpcCode(absl::StatusCode code) {
  // absl and gRPC share the canonical code numbering.
  return static_cast<grpc::StatusCode>(static_cast<int>(code));
}

}  // namespace

uint32_t AdvertisedWaitMs(absl::Duration wait, double uniform01) {
  const int64_t ms = absl::ToInt64Milliseconds(
      absl::Ceil(std::max(wait, absl::ZeroDuration()), absl::Milliseconds(1)));
  const int64_t spread = std::max<int64_t>(ms / 4, 50);
  const int64_t jitter = static_cast<int64_t>(uniform01 * spread);
  return static_cast<uint32_t>(
      std::min<int64_t>(ms + 1 + jitter, std::numeric_limits<uint32_t>::max()));
}

Budget BudgetOf(absl::string_view method) {
  if (method == "GetVaultInfo") return Budget::kRead;
  if (method == "GetStatus" || method == "ThresholdStatus") {
    return Budget::kRead;
  }
  if (method == "RecoverStart" || method == "ThresholdRecoverStart") {
    return Budget::kGuess;
  }
  return Budget::kCall;
}

namespace {

// A failure of the vault's own (storage, audit log, HSM) rather than an
// answer about the request: its message may name server paths, so the
// client gets UNAVAILABLE with a generic message (whatever the store's code
// was: a full disk's RESOURCE_EXHAUSTED must not read as a rate limit) and
// the operator the whole in the log. Answers meant for the client carry an
// ErrorDetail reason or a request-shaped code.
bool IsVaultSideFailure(const absl::Status& status,
                        const std::optional<vault::v1::ErrorDetail>& detail) {
  // A detail that only records the attempt's fate says nothing of the cause.
  if (detail.has_value() &&
      detail->reason() != vault::v1::ErrorDetail::REASON_UNSPECIFIED) {
    return detail->reason() == vault::v1::ErrorDetail::REASON_VAULT_UNAVAILABLE;
  }
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kDeadlineExceeded:
      return false;
    default:
      return true;
  }
}

}  // namespace

grpc::Status ToGrpcStatus(grpc::ServerContext* ctx, absl::string_view method,
                          const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  const std::optional<vault::v1::ErrorDetail> detail = GetDetail(status);
  const std::string code(absl::StatusCodeToString(status.code()));
  std::string message(status.message());
  const bool internal = status.code() == absl::StatusCode::kDataLoss ||
                        status.code() == absl::StatusCode::kInternal;
  absl::StatusCode out = internal ? absl::StatusCode::kInternal : status.code();
  if (internal) {
    // A tampered record, HSM or disk trouble: every one is worth a line.
    Log("error", "request_failed",
        {{"method", std::string(method)}, {"code", code}, {"error", message}});
    message = "the vault hit an internal error; it has been logged";
  } else if (IsVaultSideFailure(status, detail)) {
    // Repeats while the trouble lasts: one line per interval and kind.
    LogSampled(
        "error", "request_failed", absl::StrCat(method, "/", code),
        {{"method", std::string(method)}, {"code", code}, {"error", message}});
    message =
        "the vault cannot finish this call now; it has been logged. Retry "
        "later";
    out = absl::StatusCode::kUnavailable;
  } else if (status.code() == absl::StatusCode::kResourceExhausted ||
             status.code() == absl::StatusCode::kUnauthenticated) {
    // Refusals a flood repeats: counted, one line per interval and kind.
    LogSampled(
        "warn", "requests_refused", absl::StrCat(method, "/", code),
        {{"method", std::string(method)}, {"code", code}, {"error", message}});
  }
  if (detail.has_value()) {
    ctx->AddTrailingMetadata(kErrorDetailTrailer, detail->SerializeAsString());
    if (detail->retry_after_ms() > 0) {
      // gRPC's retry design (A6): clients with a retry policy honour it.
      ctx->AddTrailingMetadata("grpc-retry-pushback-ms",
                               absl::StrCat(detail->retry_after_ms()));
    }
  }
  return grpc::Status(ToGrpcCode(out), message);
}

absl::Status VaultService::Refuse(absl::string_view scope,
                                  absl::Duration wait) {
  metrics_.CountRateLimited(scope);
  thread_local absl::BitGen bitgen;
  absl::Status s =
      RateLimited(AdvertisedWaitMs(wait, absl::Uniform(bitgen, 0.0, 1.0)));
  // Refused before anything was counted: a retry is always safe.
  auto detail = GetDetail(s);
  detail->set_attempt(vault::v1::ErrorDetail::ATTEMPT_NOT_COUNTED);
  return vault::v1::AttachErrorDetail(std::move(s), *detail);
}

absl::StatusOr<std::string> VaultService::Admit(grpc::ServerContext* ctx,
                                                absl::string_view method) {
  const absl::Time mono = MonotonicNow();
  const auto& md = ctx->client_metadata();
  absl::string_view forwarded;
  auto xff = md.find("x-forwarded-for");
  if (xff != md.end()) forwarded = {xff->second.data(), xff->second.size()};
  const std::string client =
      ClientAddress(ctx->peer(), xff == md.end() ? nullptr : &forwarded,
                    limits_.trusted_proxies);
  const bool token_optional = method == "GetVaultInfo";

  // The token first: it is cheap (verified tokens are cached), and it
  // decides which bucket a call spends.
  absl::StatusOr<std::string> account = absl::UnauthenticatedError(
      "account token missing: send \"authorization: Bearer <token>\"");
  if (auto it = md.find("authorization"); it != md.end()) {
    absl::string_view value(it->second.data(), it->second.size());
    account = absl::ConsumePrefix(&value, "Bearer ")
                  ? tokens_.Verify(value, absl::Now())
                  : absl::UnauthenticatedError(
                        "authorization metadata must be \"Bearer <token>\"");
  }
  if (!account.ok()) {
    if (auto wait = limits_.unauthenticated.Acquire(client, mono);
        wait > absl::ZeroDuration()) {
      return Refuse("unauthenticated", wait);
    }
    if (token_optional) return std::string();
    return account.status();
  }
  struct {
    RateLimiter* limiter;
    const char* scope;
  } budget = {&limits_.call, "account"};
  if (BudgetOf(method) == Budget::kRead) budget = {&limits_.read, "read"};
  if (BudgetOf(method) == Budget::kGuess) budget = {&limits_.guess, "guess"};
  // The account's own budget first: one account's flood is refused there
  // and spends nothing its neighbours at the same address share.
  if (auto wait = budget.limiter->Acquire(*account, mono);
      wait > absl::ZeroDuration()) {
    return Refuse(budget.scope, wait);
  }
  if (auto wait = limits_.peer.Acquire(client, mono);
      wait > absl::ZeroDuration()) {
    return Refuse("peer", wait);
  }
  return account;
}

template <typename Fn>
grpc::Status VaultService::Handle(absl::string_view method,
                                  grpc::ServerContext* ctx, Fn&& fn) {
  const auto start = std::chrono::steady_clock::now();
  absl::Status status;
  auto account = Admit(ctx, method);
  if (!account.ok()) {
    status = account.status();
  } else {
    status = fn(*account);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  metrics_.ObserveRequest(method, absl::StatusCodeToString(status.code()),
                          seconds);
  return ToGrpcStatus(ctx, method, status);
}

grpc::Status VaultService::GetVaultInfo(grpc::ServerContext* ctx,
                                        const vault::v1::GetVaultInfoRequest*,
                                        vault::v1::GetVaultInfoResponse* resp) {
  return Handle("GetVaultInfo", ctx, [&](const std::string&) {
    *resp = info_;
    return absl::OkStatus();
  });
}

grpc::Status VaultService::RegisterStart(
    grpc::ServerContext* ctx, const vault::v1::RegisterStartRequest* req,
    vault::v1::RegisterStartResponse* resp) {
  return Handle("RegisterStart", ctx, [&](const std::string& account) {
    BKV_RETURN_IF_ERROR(CheckNamedAccount(req->account(), account));
    auto out =
        vault_.RegisterStart(account, Bytes(req->registration_request()));
    if (!out.ok()) return NothingCounted(out.status());
    resp->set_registration_response(ToString(out->response));
    resp->set_registration_state(ToString(out->registration_state));
    resp->set_registration_id(out->registration_id);
    return absl::OkStatus();
  });
}

grpc::Status VaultService::RegisterFinish(
    grpc::ServerContext* ctx, const vault::v1::RegisterFinishRequest* req,
    vault::v1::RegisterFinishResponse* resp) {
  return Handle("RegisterFinish", ctx, [&](const std::string& account) {
    Argon2idParams ksf{req->ksf().iterations(), req->ksf().memory_kib(),
                       req->ksf().parallelism()};
    auto out = vault_.RegisterFinish(
        account, Bytes(req->registration_record()), ksf, Bytes(req->ke1()),
        Bytes(req->registration_state()), Bytes(req->proof()));
    if (!out.ok()) return NothingCounted(out.status());
    resp->set_ke2(ToString(out->ke2));
    resp->set_login_state(ToString(out->login_state));
    return absl::OkStatus();
  });
}

grpc::Status VaultService::RegisterCommit(
    grpc::ServerContext* ctx, const vault::v1::RegisterCommitRequest* req,
    vault::v1::RegisterCommitResponse* resp) {
  return Handle("RegisterCommit", ctx, [&](const std::string& account) {
    auto out = vault_.RegisterCommit(account, Bytes(req->ke3()),
                                     Bytes(req->login_state()),
                                     Bytes(req->sealed_key()));
    if (!out.ok()) return NothingCounted(out.status());
    resp->set_attempt_limit(*out);
    return absl::OkStatus();
  });
}

grpc::Status VaultService::RecoverStart(
    grpc::ServerContext* ctx, const vault::v1::RecoverStartRequest* req,
    vault::v1::RecoverStartResponse* resp) {
  return Handle("RecoverStart", ctx, [&](const std::string& account) {
    BKV_RETURN_IF_ERROR(CheckNamedAccount(req->account(), account));
    auto out = vault_.RecoverStart(account, Bytes(req->ke1()));
    if (!out.ok()) return out.status();
    resp->set_ke2(ToString(out->login.ke2));
    resp->set_login_state(ToString(out->login.login_state));
    resp->mutable_ksf()->set_iterations(out->ksf.iterations);
    resp->mutable_ksf()->set_memory_kib(out->ksf.memory_kib);
    resp->mutable_ksf()->set_parallelism(out->ksf.parallelism);
    resp->set_attempts_remaining(out->attempts_remaining);
    return absl::OkStatus();
  });
}

grpc::Status VaultService::RecoverFinish(
    grpc::ServerContext* ctx, const vault::v1::RecoverFinishRequest* req,
    vault::v1::RecoverFinishResponse* resp) {
  return Handle("RecoverFinish", ctx, [&](const std::string& account) {
    auto out = vault_.RecoverFinish(account, Bytes(req->ke3()),
                                    Bytes(req->login_state()));
    if (!out.ok()) return out.status();
    resp->set_sealed_key(ToString(out->sealed_key));
    resp->set_proof(ToString(out->proof));
    return absl::OkStatus();
  });
}

grpc::Status VaultService::GetStatus(grpc::ServerContext* ctx,
                                     const vault::v1::GetStatusRequest*,
                                     vault::v1::GetStatusResponse* resp) {
  return Handle("GetStatus", ctx, [&](const std::string& account) {
    auto out = vault_.GetStatus(account);
    if (!out.ok()) return NothingCounted(out.status());
    resp->set_status(ToRecordStatus(out->status));
    resp->set_attempts_remaining(out->attempts_remaining);
    resp->set_attempt_limit(out->attempt_limit);
    resp->set_registration_id(out->registration_id);
    resp->set_reset_due_unix_ms(static_cast<uint64_t>(out->reset_due_unix_ms));
    return absl::OkStatus();
  });
}

grpc::Status VaultService::Delete(grpc::ServerContext* ctx,
                                  const vault::v1::DeleteRequest* req,
                                  vault::v1::DeleteResponse*) {
  return Handle("Delete", ctx, [&](const std::string& account) {
    BKV_RETURN_IF_ERROR(CheckNamedAccount(req->account(), account));
    return NothingCounted(vault_.Delete(account, Bytes(req->proof())));
  });
}

grpc::Status VaultService::RequestReset(
    grpc::ServerContext* ctx, const vault::v1::RequestResetRequest* req,
    vault::v1::RequestResetResponse* resp) {
  return Handle("RequestReset", ctx, [&](const std::string& account) {
    BKV_RETURN_IF_ERROR(CheckNamedAccount(req->account(), account));
    auto due = vault_.RequestReset(account);
    if (!due.ok()) return NothingCounted(due.status());
    resp->set_reset_due_unix_ms(static_cast<uint64_t>(*due));
    return absl::OkStatus();
  });
}

// ---------------------------------------------------------------- v3

grpc::Status VaultService::ThresholdStatus(
    grpc::ServerContext* ctx, const vault::v1::ThresholdStatusRequest* req,
    vault::v1::ThresholdStatusResponse* resp) {
  return Handle("ThresholdStatus", ctx, [&](const std::string& account) {
    BKV_RETURN_IF_ERROR(CheckNamedAccount(req->account(), account));
    auto out = vault_.ThresholdStatus(account);
    if (!out.ok()) return NothingCounted(out.status());
    resp->set_status(ToRecordStatus(out->status.status));
    resp->set_commitment(ToString(out->commitment));
    resp->set_registration_descriptor(ToString(out->descriptor));
    resp->set_committed_limit(out->committed_limit);
    resp->set_effective_limit(out->status.attempt_limit);
    resp->set_attempts_remaining(out->status.attempts_remaining);
    resp->set_epoch(out->epoch);
    resp->set_pending_commitment(ToString(out->pending_commitment));
    resp->set_pending_busy_ms(static_cast<uint64_t>(out->pending_busy_ms));
    resp->set_pending_expired(out->pending_expired);
    return absl::OkStatus();
  });
}

grpc::Status VaultService::ThresholdRegisterStart(
    grpc::ServerContext* ctx,
    const vault::v1::ThresholdRegisterStartRequest* req,
    vault::v1::ThresholdRegisterStartResponse* resp) {
  return Handle("ThresholdRegisterStart", ctx, [&](const std::string& account) {
    BKV_RETURN_IF_ERROR(CheckNamedAccount(req->account(), account));
    auto out = vault_.ThresholdRegisterStart(account);
    if (!out.ok()) return NothingCounted(out.status());
    resp->set_ticket(ToString(out->ticket));
    resp->set_realm_nonce(
        std::string(out->realm_nonce.begin(), out->realm_nonce.end()));
    resp->set_epoch(out->epoch);
    return absl::OkStatus();
  });
}

grpc::Status VaultService::ThresholdRegisterPrepare(
    grpc::ServerContext* ctx,
    const vault::v1::ThresholdRegisterPrepareRequest* req,
    vault::v1::ThresholdRegisterPrepareResponse*) {
  return Handle(
      "ThresholdRegisterPrepare", ctx, [&](const std::string& account) {
        BKV_RETURN_IF_ERROR(CheckNamedAccount(req->account(), account));
        return NothingCounted(vault_.ThresholdRegisterPrepare(
            account, Bytes(req->ticket()),
            Bytes(req->registration_descriptor()), Bytes(req->record()),
            Bytes(req->payload()), Bytes(req->proof())));
      });
}

grpc::Status VaultService::ThresholdRegisterCommit(
    grpc::ServerContext* ctx,
    const vault::v1::ThresholdRegisterCommitRequest* req,
    vault::v1::ThresholdRegisterCommitResponse* resp) {
  return Handle(
      "ThresholdRegisterCommit", ctx, [&](const std::string& account) {
        const absl::Status named = CheckNamedAccount(req->account(), account);
        absl::StatusOr<uint32_t> out =
            named.ok() ? vault_.ThresholdRegisterCommit(
                             account, Bytes(req->version()),
                             SecretBytes::Copy(req->commit_secret()))
                       : absl::StatusOr<uint32_t>(named);
        // Our copy of the request's secret goes (gRPC's receive
        // buffers are out of reach); the request is ours, not
        // const-defined.
        std::string* secret =
            const_cast<vault::v1::ThresholdRegisterCommitRequest*>(req)
                ->mutable_commit_secret();
        OPENSSL_cleanse(secret->data(), secret->size());
        if (!out.ok()) return NothingCounted(out.status());
        resp->set_per_realm_limit(*out);
        return absl::OkStatus();
      });
}

grpc::Status VaultService::ThresholdRecoverStart(
    grpc::ServerContext* ctx,
    const vault::v1::ThresholdRecoverStartRequest* req,
    vault::v1::ThresholdRecoverStartResponse* resp) {
  return Handle("ThresholdRecoverStart", ctx, [&](const std::string& account) {
    BKV_RETURN_IF_ERROR(CheckNamedAccount(req->account(), account));
    auto out = vault_.ThresholdRecoverStart(account, Bytes(req->commitment()),
                                            req->realm_id(), Bytes(req->ke1()));
    if (!out.ok()) return out.status();
    resp->set_ke2(ToString(out->login.ke2));
    resp->set_proof(std::string(out->proof.begin(), out->proof.end()));
    resp->set_login_state(ToString(out->login.login_state));
    resp->set_attempts_remaining(out->attempts_remaining);
    return absl::OkStatus();
  });
}

grpc::Status VaultService::ThresholdRecoverFinish(
    grpc::ServerContext* ctx,
    const vault::v1::ThresholdRecoverFinishRequest* req,
    vault::v1::ThresholdRecoverFinishResponse* resp) {
  return Handle("ThresholdRecoverFinish", ctx, [&](const std::string& account) {
    if (!CheckNamedAccount(req->account(), account).ok()) {
      // The token's account counted this attempt at RecoverStart; refusing
      // here leaves that login open (it expires counted): spent, not "not
      // counted" (realm3 review finding 10).
      return WithAttempt(
          WithDetail(absl::InvalidArgumentError(
                         "the request is for another account than its "
                         "token's; the attempt counted at "
                         "ThresholdRecoverStart stays spent"),
                     vault::v1::ErrorDetail::REASON_ACCOUNT_MISMATCH),
          vault::v1::ErrorDetail::ATTEMPT_SPENT);
    }
    auto out = vault_.RecoverFinish(account, Bytes(req->ke3()),
                                    Bytes(req->login_state()));
    if (!out.ok()) return out.status();
    resp->set_sealed_share(ToString(out->sealed_key));
    resp->set_proof(ToString(out->proof));
    return absl::OkStatus();
  });
}

}  // namespace bkv::server
