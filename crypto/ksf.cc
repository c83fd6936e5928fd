#include "crypto/ksf.h"

#include <argon2.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace bkv {

absl::Status Argon2idParams::Validate() const {
  if (iterations < 1 || iterations > 1000) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Argon2id iterations must be in [1, 1000], got ", iterations));
  }
  if (parallelism < 1 || parallelism > 255) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Argon2id parallelism must be in [1, 255], got ", parallelism));
  }
  if (memory_kib < 8 * parallelism || memory_kib > (4u << 20)) {
    return absl::InvalidArgumentError(
        absl::StrCat("Argon2id memory must be in [8*parallelism KiB, 4 GiB], "
                     "got ",
                     memory_kib, " KiB"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Argon2idKsf> Argon2idKsf::Create(Argon2idParams params) {
  if (auto s = params.Validate(); !s.ok()) return s;
  return Argon2idKsf(params);
}

absl::StatusOr<SecretBytes> Argon2idKsf::Stretch(const SecretBytes& msg) const {
  static constexpr uint8_t kSalt[16] = {};
  SecretBytes out(64);
  int rc = argon2id_hash_raw(params_.iterations, params_.memory_kib,
                             params_.parallelism, msg.Reveal().data(),
                             msg.size(), kSalt, sizeof kSalt,
                             out.RevealMutable().data(), out.size());
  if (rc != ARGON2_OK) {
    // Typically ARGON2_MEMORY_ALLOCATION_ERROR: say so plainly.
    return absl::ResourceExhaustedError(absl::StrCat(
        "Argon2id failed: ", argon2_error_message(rc),
        " (m=", params_.memory_kib, " KiB, p=", params_.parallelism, ")"));
  }
  return out;
}

}  // namespace bkv
