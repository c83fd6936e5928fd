#include "server/endorser_service.h"

#include <grpcpp/grpcpp.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "server/log.h"

namespace bkv::server {
namespace {

// The peer channel's one grpc::Status -> absl::Status conversion.
absl::Status FromGrpc(const std::string& address, const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(
      static_cast<absl::StatusCode>(s.error_code()),
      absl::StrCat("endorser ", address, ": ", s.error_message()));
}

// The peer channel's absl::Status -> grpc::Status: the owner reads the
// endorser's reason (fenced, what it holds); nothing in it is secret.
grpc::Status ToGrpc(absl::string_view method, const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  if (!absl::IsAborted(s) && !absl::IsFailedPrecondition(s)) {
    Log("error", "endorse_failed",
        {{"method", std::string(method)}, {"error", std::string(s.message())}});
  }
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()),
                      std::string(s.message()));
}

// One call's state, kept alive until gRPC runs its callback.
template <typename Req, typename Resp>
struct Call {
  grpc::ClientContext ctx;
  Req request;
  Resp response;
};

}  // namespace

grpc::Status EndorserService::Endorse(grpc::ServerContext* /*ctx*/,
                                      const fresh::v1::EndorseRequest* request,
                                      fresh::v1::EndorseResponse* response) {
  auto e = endorser_.Endorse(*request);
  if (e.ok()) *response->mutable_endorsement() = *std::move(e);
  return ToGrpc("Endorse", e.status());
}

grpc::Status EndorserService::Prepare(grpc::ServerContext* /*ctx*/,
                                      const fresh::v1::PrepareRequest* request,
                                      fresh::v1::PrepareResponse* response) {
  auto r = endorser_.Prepare(request->term());
  if (r.ok()) {
    response->set_granted(r->granted);
    *response->mutable_state() = std::move(r->state);
  }
  return ToGrpc("Prepare", r.status());
}

GrpcEndorserPeer::GrpcEndorserPeer(
    const std::string& address,
    std::shared_ptr<grpc::ChannelCredentials> credentials,
    absl::Duration deadline)
    : address_(address), deadline_(deadline) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  stub_ = fresh::v1::Endorser::NewStub(
      grpc::CreateCustomChannel(address, std::move(credentials), args));
}

void GrpcEndorserPeer::Endorse(const fresh::v1::EndorseRequest& request,
                               EndorseDone done) {
  auto call = std::make_shared<
      Call<fresh::v1::EndorseRequest, fresh::v1::EndorseResponse>>();
  call->request = request;
  call->ctx.set_deadline(absl::ToChronoTime(absl::Now() + deadline_));
  stub_->async()->Endorse(
      &call->ctx, &call->request, &call->response,
      [call, done = std::move(done), address = address_](grpc::Status s) {
        absl::Status status = FromGrpc(address, s);
        if (!status.ok()) return done(status);
        done(call->response.endorsement());
      });
}

void GrpcEndorserPeer::Prepare(uint64_t term, PrepareDone done) {
  auto call = std::make_shared<
      Call<fresh::v1::PrepareRequest, fresh::v1::PrepareResponse>>();
  call->request.set_term(term);
  call->ctx.set_deadline(absl::ToChronoTime(absl::Now() + deadline_));
  stub_->async()->Prepare(
      &call->ctx, &call->request, &call->response,
      [call, done = std::move(done), address = address_](grpc::Status s) {
        absl::Status status = FromGrpc(address, s);
        if (!status.ok()) return done(status);
        done(freshness::PrepareResult{call->response.granted(),
                                      call->response.state()});
      });
}

}  // namespace bkv::server
