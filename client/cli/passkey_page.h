#ifndef BKV_CLIENT_CLI_PASSKEY_PAGE_H_
#define BKV_CLIENT_CLI_PASSKEY_PAGE_H_

// The CLI's one-time passkey page, the way CLIs do browser sign-in: a page
// served on 127.0.0.1 (random port) under a single-use 128-bit secret path
// runs navigator.credentials.create/get with the WebAuthn `prf` extension
// and posts the credential id and the PRF output back. Requests whose Host
// is not `<rp id>:PORT`, or whose Origin is not `http://<rp id>:PORT`, are
// refused; the URL loads once (a second load aborts the ceremony) and sets
// an HttpOnly, SameSite=Strict cookie that a result must carry; one result
// ends it; so do a timeout and the page being closed.
// docs/threat-model.md, "Key slots and passkeys".

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "crypto/keyring.h"
#include "crypto/secret_bytes.h"

namespace bkv {

// Each way a ceremony fails, so that each gets its own exit code.
enum class PasskeyError {
  kOtherPasskey,  // the credential used has no slot in this set
  kWrongOutput,   // its PRF output does not open its slot (another salt)
  kNoPrf,         // the authenticator does not support `prf`
  kTimedOut,      // no result before the timeout
  kClosed,        // the page was closed, the prompt cancelled, or the
                  // one-time URL loaded twice
};
absl::Status PasskeyStatus(PasskeyError kind, absl::Status status);
std::optional<PasskeyError> PasskeyErrorOf(const absl::Status& status);

// The default relying party: a name of bkv's own under .localhost, so a
// page another program serves on plain `localhost` (any port shares that
// rp id) cannot ask the authenticator for a bkv slot's PRF (review #11).
inline constexpr char kDefaultRpId[] = "bkv.localhost";

struct PasskeyPageOptions {
  // Empty (no --rp-id): kDefaultRpId to enrol; to unlock, the rp id of the
  // set's passkey slots (kDefaultRpId when one has it), so slots enrolled
  // under another rp id (`localhost` before) keep opening.
  std::string rp_id;
  int timeout_s = 120;
  // Called once with the page's URL (print it; open a browser).
  std::function<void(const std::string& url)> on_url;
};

struct PasskeyPageResult {
  std::vector<uint8_t> credential_id;
  SecretBytes prf_output;  // 32 bytes
};

// The rp id a new passkey is enrolled under.
std::string RpIdToEnrol(const PasskeyPageOptions& options);

// Enrols a new passkey and evaluates its PRF on `salt`.
absl::StatusOr<PasskeyPageResult> CreatePasskeyOnPage(
    const std::array<uint8_t, PasskeyParams::kSaltSize>& salt,
    const PasskeyPageOptions& options);
// Asserts with one of `enrolled` (each evaluated on its own salt).
absl::StatusOr<PasskeyPageResult> GetPasskeyOnPage(
    const std::vector<PasskeyParams>& enrolled,
    const PasskeyPageOptions& options);

}  // namespace bkv

#endif  // BKV_CLIENT_CLI_PASSKEY_PAGE_H_
