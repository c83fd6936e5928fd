#include "client/grpc_status.h"

#include "bkv/vault/v1/error_detail.h"
#include "client/vault_errors.h"

namespace bkv::client {

absl::Status FromGrpc(const grpc::Status& s, const grpc::ClientContext& ctx,
                      absl::string_view address) {
  if (s.ok()) return absl::OkStatus();
  const auto code = static_cast<absl::StatusCode>(s.error_code());
  const auto& md = ctx.GetServerTrailingMetadata();
  if (auto it = md.find(vault::v1::kErrorDetailTrailer); it != md.end()) {
    if (auto d = vault::v1::ParseErrorDetail(
            std::string_view(it->second.data(), it->second.size()))) {
      return vault::v1::AttachErrorDetail(absl::Status(code, s.error_message()),
                                          *d);
    }
  }
  // No answer from the vault itself: say so in words, not gRPC's.
  if (code == absl::StatusCode::kUnavailable ||
      code == absl::StatusCode::kDeadlineExceeded) {
    return absl::Status(
        code, DescribeTransportFailure(code, s.error_message(), address));
  }
  return absl::Status(code, s.error_message());
}

}  // namespace bkv::client
