#include "server/invalid_request_interceptor.h"

namespace bkv::server {
namespace {

using grpc::experimental::InterceptionHookPoints;

class InvalidRequestInterceptor final : public grpc::experimental::Interceptor {
 public:
  void Intercept(grpc::experimental::InterceptorBatchMethods* m) override {
    if (m->QueryInterceptionHookPoint(
            InterceptionHookPoints::POST_RECV_MESSAGE) &&
        m->GetRecvMessage() == nullptr) {
      unparsed_ = true;
    }
    if (unparsed_ && m->QueryInterceptionHookPoint(
                         InterceptionHookPoints::PRE_SEND_STATUS)) {
      m->ModifySendStatus(grpc::Status(
          grpc::StatusCode::INVALID_ARGUMENT,
          "the request body is not a valid protobuf message for this "
          "method (docs/protocol.md)"));
    }
    m->Proceed();
  }

 private:
  bool unparsed_ = false;
};

}  // namespace

grpc::experimental::Interceptor*
InvalidRequestInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo*) {
  return new InvalidRequestInterceptor();
}

}  // namespace bkv::server
