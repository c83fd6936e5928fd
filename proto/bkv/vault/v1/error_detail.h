#ifndef BKV_PROTO_BKV_VAULT_V1_ERROR_DETAIL_H_
#define BKV_PROTO_BKV_VAULT_V1_ERROR_DETAIL_H_

// The one codec of the vault's error contract (vault.proto ErrorDetail):
// how it rides on an absl::Status inside either side, and on the wire as a
// trailer. The server attaches it (server/errors.h), the client classifies
// it (client/vault_errors.h); neither spells these names again.

#include <optional>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "bkv/vault/v1/vault.pb.h"

namespace bkv::vault::v1 {

// Payload type URL on an absl::Status.
inline constexpr absl::string_view kErrorDetailUrl =
    "type.googleapis.com/bkv.vault.v1.ErrorDetail";
// Binary trailer of a failed gRPC call ("-bin": gRPC base64s it).
inline constexpr char kErrorDetailTrailer[] = "bkv-error-detail-bin";

// `status` carrying `detail` (no-op for OK).
absl::Status AttachErrorDetail(absl::Status status, const ErrorDetail& detail);

// The detail `status` carries, if any and if it parses.
std::optional<ErrorDetail> ErrorDetailOf(const absl::Status& status);

// Parses a trailer value; nullopt if it isn't an ErrorDetail.
std::optional<ErrorDetail> ParseErrorDetail(std::string_view bytes);

}  // namespace bkv::vault::v1

#endif  // BKV_PROTO_BKV_VAULT_V1_ERROR_DETAIL_H_
