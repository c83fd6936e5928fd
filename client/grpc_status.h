#ifndef BKV_CLIENT_GRPC_STATUS_H_
#define BKV_CLIENT_GRPC_STATUS_H_

// grpc::Status -> absl::Status on the client, the vault's ErrorDetail trailer
// kept as a payload: the one place gRPC errors are converted (VaultClient and
// the threshold realm channels both call it).

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace bkv::client {

absl::Status FromGrpc(const grpc::Status& s, const grpc::ClientContext& ctx,
                      absl::string_view address);

}  // namespace bkv::client

#endif  // BKV_CLIENT_GRPC_STATUS_H_
