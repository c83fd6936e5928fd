#ifndef BKV_SERVER_INVALID_REQUEST_INTERCEPTOR_H_
#define BKV_SERVER_INVALID_REQUEST_INTERCEPTOR_H_

#include <grpcpp/support/server_interceptor.h>

namespace bkv::server {

// A request body that does not parse as the method's message is the
// client's mistake: gRPC answers it INTERNAL (with an empty message) before
// any handler runs. This interceptor sees that the parse produced no
// message and answers INVALID_ARGUMENT instead, saying what was wrong.
// The handler never ran, so nothing was counted or logged for the call.
class InvalidRequestInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;
};

}  // namespace bkv::server

#endif  // BKV_SERVER_INVALID_REQUEST_INTERCEPTOR_H_
