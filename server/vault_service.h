#ifndef BKV_SERVER_VAULT_SERVICE_H_
#define BKV_SERVER_VAULT_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include "absl/container/flat_hash_set.h"
#include "bkv/vault/v1/vault.grpc.pb.h"
#include "server/account_token.h"
#include "server/metrics.h"
#include "server/rate_limiter.h"
#include "server/vault.h"

namespace bkv::server {

// Which budget of the account a call spends (docs/operations.md, "Rate
// limits"): reads never spend the guess budget, and guesses (RecoverStart,
// the call that counts an attempt) have their own, strict one.
enum class Budget { kRead, kGuess, kCall };
Budget BudgetOf(absl::string_view method);

// The limiters VaultService checks, all owned by the caller.
struct ServiceLimits {
  RateLimiter& read;             // per account: GetStatus, GetVaultInfo
  RateLimiter& guess;            // per account: RecoverStart
  RateLimiter& call;             // per account: every other call
  RateLimiter& peer;             // per client address, valid tokens
  RateLimiter& unauthenticated;  // per client address, no valid token
  // Proxies whose x-forwarded-for names the client (rate_limiter.h).
  absl::flat_hash_set<std::string> trusted_proxies;
};

// The advertised wait of a refusal: the real wait rounded up, plus jitter
// (`uniform01` in [0, 1)) of up to a quarter of it (at least 50 ms), so
// clients refused together do not all come back at the same instant.
uint32_t AdvertisedWaitMs(absl::Duration wait, double uniform01);

// The gRPC face of the Vault: each method authenticates the account token,
// checks the rate limits (the account's budget for the call, then the
// client address) before any crypto or HSM work, calls one Vault function
// and maps its status (ToGrpcStatus, the one place failures are converted
// and logged). A call without a valid token is refused having spent only
// the address's separate "unauthenticated" budget, so a flood of bad tokens
// cannot starve a legitimate user at the same address. Thread-safe.
class VaultService final : public vault::v1::Vault::Service {
 public:
  VaultService(bkv::server::Vault& vault, const TokenVerifier& tokens,
               ServiceLimits limits, vault::v1::GetVaultInfoResponse info,
               Metrics& metrics)
      : vault_(vault),
        tokens_(tokens),
        limits_(std::move(limits)),
        info_(std::move(info)),
        metrics_(metrics) {}

  grpc::Status RegisterStart(grpc::ServerContext* ctx,
                             const vault::v1::RegisterStartRequest* req,
                             vault::v1::RegisterStartResponse* resp) override;
  grpc::Status RegisterFinish(grpc::ServerContext* ctx,
                              const vault::v1::RegisterFinishRequest* req,
                              vault::v1::RegisterFinishResponse* resp) override;
  grpc::Status RegisterCommit(grpc::ServerContext* ctx,
                              const vault::v1::RegisterCommitRequest* req,
                              vault::v1::RegisterCommitResponse* resp) override;
  grpc::Status RecoverStart(grpc::ServerContext* ctx,
                            const vault::v1::RecoverStartRequest* req,
                            vault::v1::RecoverStartResponse* resp) override;
  grpc::Status RecoverFinish(grpc::ServerContext* ctx,
                             const vault::v1::RecoverFinishRequest* req,
                             vault::v1::RecoverFinishResponse* resp) override;
  grpc::Status GetStatus(grpc::ServerContext* ctx,
                         const vault::v1::GetStatusRequest* req,
                         vault::v1::GetStatusResponse* resp) override;
  grpc::Status Delete(grpc::ServerContext* ctx,
                      const vault::v1::DeleteRequest* req,
                      vault::v1::DeleteResponse* resp) override;
  grpc::Status RequestReset(grpc::ServerContext* ctx,
                            const vault::v1::RequestResetRequest* req,
                            vault::v1::RequestResetResponse* resp) override;
  // Needs no token; charged to the account's read budget when a valid one
  // is sent, else to the address's unauthenticated budget.
  grpc::Status GetVaultInfo(grpc::ServerContext* ctx,
                            const vault::v1::GetVaultInfoRequest* req,
                            vault::v1::GetVaultInfoResponse* resp) override;

  // Protocol v3 (docs/threshold.md): thin, like the v2 handlers.
  grpc::Status ThresholdStatus(
      grpc::ServerContext* ctx, const vault::v1::ThresholdStatusRequest* req,
      vault::v1::ThresholdStatusResponse* resp) override;
  grpc::Status ThresholdRegisterStart(
      grpc::ServerContext* ctx,
      const vault::v1::ThresholdRegisterStartRequest* req,
      vault::v1::ThresholdRegisterStartResponse* resp) override;
  grpc::Status ThresholdRegisterPrepare(
      grpc::ServerContext* ctx,
      const vault::v1::ThresholdRegisterPrepareRequest* req,
      vault::v1::ThresholdRegisterPrepareResponse* resp) override;
  grpc::Status ThresholdRegisterCommit(
      grpc::ServerContext* ctx,
      const vault::v1::ThresholdRegisterCommitRequest* req,
      vault::v1::ThresholdRegisterCommitResponse* resp) override;
  grpc::Status ThresholdRecoverStart(
      grpc::ServerContext* ctx,
      const vault::v1::ThresholdRecoverStartRequest* req,
      vault::v1::ThresholdRecoverStartResponse* resp) override;
  grpc::Status ThresholdRecoverFinish(
      grpc::ServerContext* ctx,
      const vault::v1::ThresholdRecoverFinishRequest* req,
      vault::v1::ThresholdRecoverFinishResponse* resp) override;

 private:
  // Token and rate limits; the account id on success ("" for a call that
  // needs no token and came without a valid one).
  absl::StatusOr<std::string> Admit(grpc::ServerContext* ctx,
                                    absl::string_view method);
  absl::Status Refuse(absl::string_view scope, absl::Duration wait);
  template <typename Fn>
  grpc::Status Handle(absl::string_view method, grpc::ServerContext* ctx,
                      Fn&& fn);

  bkv::server::Vault& vault_;
  const TokenVerifier& tokens_;
  const ServiceLimits limits_;
  const vault::v1::GetVaultInfoResponse info_;
  Metrics& metrics_;
};

// absl::Status -> grpc::Status, with the ErrorDetail trailer (and gRPC's
// `grpc-retry-pushback-ms` when the detail says when to retry); logs
// failures, refusals sampled (log.h LogSampled) so a flood cannot fill a disk.
grpc::Status ToGrpcStatus(grpc::ServerContext* ctx, absl::string_view method,
                          const absl::Status& status);

}  // namespace bkv::server

#endif  // BKV_SERVER_VAULT_SERVICE_H_
