#include "bkv/vault/v1/error_detail.h"

#include <string>

#include "absl/strings/cord.h"

namespace bkv::vault::v1 {

absl::Status AttachErrorDetail(absl::Status status, const ErrorDetail& detail) {
  if (status.ok()) return status;
  status.SetPayload(kErrorDetailUrl, absl::Cord(detail.SerializeAsString()));
  return status;
}

std::optional<ErrorDetail> ParseErrorDetail(std::string_view bytes) {
  ErrorDetail d;
  if (!d.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return std::nullopt;
  }
  return d;
}

std::optional<ErrorDetail> ErrorDetailOf(const absl::Status& status) {
  auto payload = status.GetPayload(kErrorDetailUrl);
  if (!payload) return std::nullopt;
  return ParseErrorDetail(std::string(*payload));
}

}  // namespace bkv::vault::v1
