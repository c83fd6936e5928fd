#ifndef BKV_SERVER_VAULT_SERVICE_H_
#define BKV_SERVER_VAULT_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include "bkv/vault/v1/vault.grpc.pb.h"
#include "server/account_token.h"
#include "server/metrics.h"
#include "server/rate_limiter.h"
#include "server/vault.h"

namespace bkv::server {

// The gRPC face of the Vault: each method authenticates the account token,
// checks the rate limits (peer, then account) before any crypto or HSM work,
// calls one Vault function and maps its status (ToGrpcStatus, the one place
// failures are converted and logged). Thread-safe.
class VaultService final : public vault::v1::Vault::Service {
 public:
  VaultService(bkv::server::Vault& vault, const TokenVerifier& tokens,
               RateLimiter& account_limits, RateLimiter& peer_limits,
               Metrics& metrics)
      : vault_(vault),
        tokens_(tokens),
        account_limits_(account_limits),
        peer_limits_(peer_limits),
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

 private:
  // Token and rate limits; the account id on success.
  absl::StatusOr<std::string> Admit(grpc::ServerContext* ctx);
  template <typename Fn>
  grpc::Status Handle(absl::string_view method, grpc::ServerContext* ctx,
                      Fn&& fn);

  bkv::server::Vault& vault_;
  const TokenVerifier& tokens_;
  RateLimiter& account_limits_;
  RateLimiter& peer_limits_;
  Metrics& metrics_;
};

// absl::Status -> grpc::Status, with the ErrorDetail trailer; logs failures.
grpc::Status ToGrpcStatus(grpc::ServerContext* ctx, absl::string_view method,
                          const absl::Status& status);

}  // namespace bkv::server

#endif  // BKV_SERVER_VAULT_SERVICE_H_
