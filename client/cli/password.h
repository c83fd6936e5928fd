#ifndef BKV_CLIENT_CLI_PASSWORD_H_
#define BKV_CLIENT_CLI_PASSWORD_H_

// How the CLI gets a vault password: one line of stdin with --password-stdin
// (scripts), else a prompt on the terminal with echo off (people), never
// argv. A password that is being set is asked twice on a terminal and must
// clear the strength floor wherever it comes from (docs/protocol.md
// "Passwords").

#include <string_view>

#include "absl/status/statusor.h"
#include "crypto/secret_bytes.h"

namespace bkv::cli {

// zxcvbn's estimate a new password must reach, and the shortest accepted.
inline constexpr double kMinPasswordBits = 30;
inline constexpr size_t kMinPasswordLength = 8;

// `what` names it in prompts and errors ("password", "new password").
// InvalidArgument when there is no way to ask (no --password-stdin, no
// terminal) or stdin holds no line.
absl::StatusOr<SecretBytes> ReadPassword(bool from_stdin, const char* what);

// On a terminal, asks for `first` again and compares; from stdin, accepts it
// as given. Then the strength floor. InvalidArgument says what to change.
absl::Status ConfirmNewPassword(bool from_stdin, const SecretBytes& first,
                                std::string_view account);

// ReadPassword, then ConfirmNewPassword.
absl::StatusOr<SecretBytes> ReadNewPassword(bool from_stdin, const char* what,
                                            std::string_view account);

// OK if `password` reaches kMinPasswordBits by zxcvbn (with the account name
// and "bkv" as known words) and kMinPasswordLength bytes.
absl::Status CheckPasswordStrength(const SecretBytes& password,
                                   std::string_view account);

}  // namespace bkv::cli

#endif  // BKV_CLIENT_CLI_PASSWORD_H_
