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
  // Refusals by the rules and "recovering" are answers, not failures.
  if (!absl::IsAborted(s) && !absl::IsFailedPrecondition(s) &&
      !absl::IsUnavailable(s)) {
    Log("error", "endorse_failed",
        {{"method", std::string(method)}, {"error", std::string(s.message())}});
  }
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()),
                      std::string(s.message()));
}

}  // namespace

grpc::Status EndorserService::Answer(absl::string_view method,
                                     const absl::Status& s) {
  auto node = s.GetPayload(freshness::kNotCandidatePayload);
  if (!node.has_value()) return ToGrpc(method, s);
  ++not_candidate_refused_;
  // Someone proposes with an endorser-only member's token.
  LogSampled("warn", "quorum_request_not_candidate",
             "quorum_request_not_candidate",
             {{"method", std::string(method)},
              {"node_id", std::string(*node)},
              {"hint",
               "that member's token signed a request for an owner term; it "
               "is marked candidate=false: check who runs with it"}});
  return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                      std::string(s.message()));
}

grpc::Status EndorserService::Endorse(grpc::ServerContext* /*ctx*/,
                                      const fresh::v1::EndorseRequest* request,
                                      fresh::v1::EndorseResponse* response) {
  auto r = endorser_.Endorse(*request);
  if (r.ok()) *response = *std::move(r);
  return Answer("Endorse", r.status());
}

grpc::Status EndorserService::Prepare(grpc::ServerContext* /*ctx*/,
                                      const fresh::v1::PrepareRequest* request,
                                      fresh::v1::PrepareResponse* response) {
  auto r = endorser_.Prepare(*request);
  if (r.ok()) *response = *std::move(r);
  return Answer("Prepare", r.status());
}

grpc::Status EndorserService::Commit(grpc::ServerContext* /*ctx*/,
                                     const fresh::v1::CommitRequest* request,
                                     fresh::v1::CommitResponse* /*response*/) {
  return ToGrpc("Commit", endorser_.Commit(*request));
}

grpc::Status EndorserService::Recover(grpc::ServerContext* /*ctx*/,
                                      const fresh::v1::RecoverRequest* request,
                                      fresh::v1::RecoverResponse* response) {
  auto r = endorser_.AnswerRecovery(*request);
  if (r.ok()) *response = *std::move(r);
  if (absl::IsPermissionDenied(r.status()) ||
      absl::IsInvalidArgument(r.status())) {
    ++recover_refused_;
    return grpc::Status(static_cast<grpc::StatusCode>(r.status().code()),
                        std::string(r.status().message()));
  }
  return ToGrpc("Recover", r.status());
}

// A call in flight: its context, answer and what to do with it. The poller
// runs Finish once and deletes it.
struct GrpcEndorserPeer::Pending {
  virtual ~Pending() = default;
  virtual void Finish(const std::string& address) = 0;
  grpc::ClientContext ctx;
  grpc::Status status;
};

template <typename Resp>
struct GrpcEndorserPeer::CallOf final : Pending {
  Resp response;
  std::unique_ptr<grpc::ClientAsyncResponseReader<Resp>> reader;
  std::function<void(const absl::Status&, const Resp&)> done;
  void Finish(const std::string& address) override {
    done(FromGrpc(address, status), response);
  }
};

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
  poller_ = std::thread([this] { Poll(); });
}

GrpcEndorserPeer::~GrpcEndorserPeer() {
  cq_.Shutdown();
  poller_.join();
}

void GrpcEndorserPeer::Poll() {
  void* tag = nullptr;
  bool ok = false;
  while (cq_.Next(&tag, &ok)) {
    std::unique_ptr<Pending> call(static_cast<Pending*>(tag));
    call->Finish(address_);
  }
}

template <typename Resp, typename Req, typename Start>
void GrpcEndorserPeer::Call(const Req& request, Start start,
                            std::function<void(absl::StatusOr<Resp>)> done) {
  auto* call = new CallOf<Resp>;
  call->done = [done = std::move(done)](const absl::Status& s, const Resp& r) {
    if (!s.ok()) return done(s);
    done(r);
  };
  call->ctx.set_deadline(absl::ToChronoTime(absl::Now() + deadline_));
  call->reader = start(&call->ctx, request, &cq_);
  call->reader->Finish(&call->response, &call->status, call);
}

void GrpcEndorserPeer::Endorse(const fresh::v1::EndorseRequest& request,
                               EndorseDone done) {
  Call<fresh::v1::EndorseResponse>(
      request,
      [this](auto* ctx, const auto& r, auto* cq) {
        return stub_->AsyncEndorse(ctx, r, cq);
      },
      std::move(done));
}

void GrpcEndorserPeer::Prepare(const fresh::v1::PrepareRequest& request,
                               PrepareDone done) {
  Call<fresh::v1::PrepareResponse>(
      request,
      [this](auto* ctx, const auto& r, auto* cq) {
        return stub_->AsyncPrepare(ctx, r, cq);
      },
      std::move(done));
}

void GrpcEndorserPeer::Commit(const fresh::v1::CommitRequest& request,
                              CommitDone done) {
  Call<fresh::v1::CommitResponse>(
      request,
      [this](auto* ctx, const auto& r, auto* cq) {
        return stub_->AsyncCommit(ctx, r, cq);
      },
      std::move(done));
}

void GrpcEndorserPeer::Recover(const fresh::v1::RecoverRequest& request,
                               RecoverDone done) {
  Call<fresh::v1::RecoverResponse>(
      request,
      [this](auto* ctx, const auto& r, auto* cq) {
        return stub_->AsyncRecover(ctx, r, cq);
      },
      std::move(done));
}

}  // namespace bkv::server
