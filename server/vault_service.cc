#include "server/vault_service.h"

#include <chrono>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
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

grpc::StatusCode ToGrpcCode(absl::StatusCode code) {
  // absl and gRPC share the canonical code numbering.
  return static_cast<grpc::StatusCode>(static_cast<int>(code));
}

// "ipv4:127.0.0.1:5555" -> "ipv4:127.0.0.1": limit by address, not port.
std::string PeerAddress(const std::string& peer) {
  size_t colon = peer.rfind(':');
  return colon == std::string::npos ? peer : peer.substr(0, colon);
}

}  // namespace

grpc::Status ToGrpcStatus(grpc::ServerContext* ctx, absl::string_view method,
                          const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  absl::Status out = status;
  switch (status.code()) {
    // Internals (a tampered record, HSM or disk trouble) are logged here in
    // full but reach the client only as a generic message.
    case absl::StatusCode::kDataLoss:
    case absl::StatusCode::kInternal:
      Log("error", "request_failed",
          {{"method", std::string(method)},
           {"code", absl::StatusCodeToString(status.code())},
           {"error", std::string(status.message())}});
      out = absl::InternalError(
          "the vault hit an internal error; it has been logged");
      break;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kResourceExhausted:
      Log("warn", "request_failed",
          {{"method", std::string(method)},
           {"code", absl::StatusCodeToString(status.code())},
           {"error", std::string(status.message())}});
      break;
    default:
      break;
  }
  if (auto detail = GetDetail(status)) {
    ctx->AddTrailingMetadata(kErrorDetailTrailer, detail->SerializeAsString());
  }
  return grpc::Status(ToGrpcCode(out.code()), std::string(out.message()));
}

absl::StatusOr<std::string> VaultService::Admit(grpc::ServerContext* ctx) {
  const absl::Time now = absl::Now();
  if (auto wait = peer_limits_.Acquire(PeerAddress(ctx->peer()), now);
      wait > absl::ZeroDuration()) {
    metrics_.CountRateLimited("peer");
    return RateLimited(
        static_cast<uint32_t>(absl::ToInt64Milliseconds(wait) + 1));
  }
  const auto& md = ctx->client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) {
    return absl::UnauthenticatedError(
        "account token missing: send \"authorization: Bearer <token>\"");
  }
  absl::string_view value(it->second.data(), it->second.size());
  if (!absl::ConsumePrefix(&value, "Bearer ")) {
    return absl::UnauthenticatedError(
        "authorization metadata must be \"Bearer <token>\"");
  }
  auto account = tokens_.Verify(value, now);
  if (!account.ok()) return account.status();
  if (auto wait = account_limits_.Acquire(*account, now);
      wait > absl::ZeroDuration()) {
    metrics_.CountRateLimited("account");
    return RateLimited(
        static_cast<uint32_t>(absl::ToInt64Milliseconds(wait) + 1));
  }
  return account;
}

template <typename Fn>
grpc::Status VaultService::Handle(absl::string_view method,
                                  grpc::ServerContext* ctx, Fn&& fn) {
  const auto start = std::chrono::steady_clock::now();
  absl::Status status;
  auto account = Admit(ctx);
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

grpc::Status VaultService::RegisterStart(
    grpc::ServerContext* ctx, const vault::v1::RegisterStartRequest* req,
    vault::v1::RegisterStartResponse* resp) {
  return Handle("RegisterStart", ctx, [&](const std::string& account) {
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
    switch (out->status) {
      case policy::Status::kNone:
        resp->set_status(RecordStatus::RECORD_STATUS_NONE);
        break;
      case policy::Status::kActive:
        resp->set_status(RecordStatus::RECORD_STATUS_ACTIVE);
        break;
      case policy::Status::kLocked:
        resp->set_status(RecordStatus::RECORD_STATUS_LOCKED);
        break;
    }
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
    return NothingCounted(vault_.Delete(account, Bytes(req->proof())));
  });
}

grpc::Status VaultService::RequestReset(grpc::ServerContext* ctx,
                                        const vault::v1::RequestResetRequest*,
                                        vault::v1::RequestResetResponse* resp) {
  return Handle("RequestReset", ctx, [&](const std::string& account) {
    auto due = vault_.RequestReset(account);
    if (!due.ok()) return NothingCounted(due.status());
    resp->set_reset_due_unix_ms(static_cast<uint64_t>(*due));
    return absl::OkStatus();
  });
}

}  // namespace bkv::server
