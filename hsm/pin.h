#ifndef BKV_HSM_PIN_H_
#define BKV_HSM_PIN_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "crypto/secret_bytes.h"

namespace bkv::hsm {

// Token PINs come from a file or an environment variable, never argv, and
// live only in SecretBytes. No function here puts a PIN in a message.

inline constexpr absl::string_view kPinEnvVar = "BKV_HSM_PIN";

// The file's contents without trailing newlines or spaces. Refuses a file
// that any group or other user may access at all ("chmod 600 FILE"), an
// empty one, or one over 256 bytes.
absl::StatusOr<SecretBytes> ReadPinFile(const std::string& path);

// The variable's value; NotFound if unset or empty.
absl::StatusOr<SecretBytes> ReadPinFromEnv(absl::string_view name = kPinEnvVar);

// Overwrites the variable's value in place, then removes it: unsetenv alone
// leaves the bytes in the process's initial environment block, which
// /proc/PID/environ keeps showing.
void ScrubEnv(absl::string_view name = kPinEnvVar);

// Whether a token PIN is configured: a PIN file, or $BKV_HSM_PIN. Without
// one a vault uses the development token under its data directory (--dev).
bool PinConfigured(const std::string& pin_file);

// Creates `path` (which must not exist) with mode 0600, holding the PIN and a
// newline.
absl::Status WritePinFile(const std::string& path, const SecretBytes& pin);

// 32 lower-case hex characters (128 random bits).
SecretBytes GeneratePin();

}  // namespace bkv::hsm

#endif  // BKV_HSM_PIN_H_
