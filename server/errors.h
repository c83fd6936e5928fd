#ifndef BKV_SERVER_ERRORS_H_
#define BKV_SERVER_ERRORS_H_

#include <cstdint>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "bkv/vault/v1/error_detail.h"
#include "bkv/vault/v1/vault.pb.h"

namespace bkv::server {

// Vault failures carry a machine-readable reason (vault.proto ErrorDetail)
// as an absl::Status payload; the gRPC layer sends it to the client in the
// `bkv-error-detail-bin` trailer.
using vault::v1::kErrorDetailTrailer;

absl::Status WithDetail(absl::Status status,
                        vault::v1::ErrorDetail::Reason reason,
                        uint32_t attempts_remaining = 0,
                        uint32_t retry_after_ms = 0);

std::optional<vault::v1::ErrorDetail> GetDetail(const absl::Status& status);

// Says what a failure did to the attempt counter (ErrorDetail.attempt),
// keeping any reason already attached; an effect already set stands.
// Faults of the vault itself (storage, audit log, HSM: kUnavailable,
// kResourceExhausted, kFailedPrecondition without a reason) become
// UNAVAILABLE with REASON_VAULT_UNAVAILABLE.
absl::Status WithAttempt(absl::Status status,
                         vault::v1::ErrorDetail::Attempt attempt);

absl::Status InvalidLogin(uint32_t attempts_remaining);  // attempt spent
absl::Status Locked();
absl::Status NotRegistered();
absl::Status RateLimited(uint32_t retry_after_ms);  // nothing counted
// Replacing or deleting an ACTIVE record without proof or a due reset.
absl::Status ProofRequired(absl::string_view action);
// OK unless the request names an account (`named`, empty: none) other than
// the token's subject; then a configuration error that counted nothing.
absl::Status CheckNamedAccount(absl::string_view named,
                               absl::string_view subject);

}  // namespace bkv::server

#endif  // BKV_SERVER_ERRORS_H_
