#ifndef BKV_CLIENT_REPO_SETTLED_READ_H_
#define BKV_CLIENT_REPO_SETTLED_READ_H_

// Whole-object reads of repository objects that another client may be
// writing at that moment.
//
// Our stores' Put is atomic, and so is S3's, but not every S3-compatible
// server's: s3rver (and servers like it) truncates the object file in place
// and streams the new bytes into it, so a concurrent GET returns an empty or
// short body with a 200 and a matching Content-Length, and a LIST shows an
// object whose first PUT is still running. A short or unauthenticated read is
// therefore read again a bounded number of times before it is called damage
// (docs/backup-format.md, "Concurrent writers").

#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "client/blob_store.h"
#include "crypto/repo_crypto.h"

namespace bkv {

// How often and how patiently: 6 reads over about 0.6 s.
struct SettleParams {
  int reads = 6;
  int first_delay_ms = 20;  // doubles per read
};

// Reads `name` whole and passes it to `check`; while `check` says DataLoss,
// reads it again, up to params.reads times. Returns the bytes check accepted,
// the last DataLoss (saying how often it was read), or any other error as is
// (NotFound: the object is gone).
absl::StatusOr<std::vector<uint8_t>> GetSettled(
    BlobStore& store, std::string_view name, size_t max_size,
    const std::function<absl::Status(std::span<const uint8_t>)>& check,
    const SettleParams& params = {});

// GetSettled for a sealed object: returns its plaintext.
absl::StatusOr<std::vector<uint8_t>> GetOpened(
    BlobStore& store, const RepoKeys& keys, RepoObjectKind kind,
    std::span<const uint8_t> id, std::string_view name, size_t max_size,
    const SettleParams& params = {});

}  // namespace bkv

#endif  // BKV_CLIENT_REPO_SETTLED_READ_H_
