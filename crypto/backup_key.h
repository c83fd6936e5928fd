#ifndef BKV_CRYPTO_BACKUP_KEY_H_
#define BKV_CRYPTO_BACKUP_KEY_H_

#include <string_view>

#include "absl/status/statusor.h"
#include "crypto/random.h"
#include "crypto/secret_bytes.h"

namespace bkv {

// The 256-bit backup key a user writes down: the design brief's "64-digit
// key" (docs/architecture.md).
//
// Text form: 64 lower-case hex digits in 16 groups of 4 separated by spaces,
//   "1a2b 3c4d 5e6f ... 9f0e"
// Parse() accepts that text with any spacing, dashes and case; anything else
// is rejected with the 1-based position of the first bad character, or the
// digit count when the length is wrong. Errors never echo the input.
//
// The key bytes live in locked memory and are reachable only through
// secret(). Move-only; const access is thread-safe.
class BackupKey {
 public:
  static constexpr size_t kSize = 32;
  static constexpr size_t kHexDigits = 2 * kSize;

  static BackupKey Generate(const RandomSource& random = SystemRandom());
  static absl::StatusOr<BackupKey> Parse(std::string_view text);
  static absl::StatusOr<BackupKey> FromBytes(const SecretBytes& bytes);

  BackupKey(BackupKey&&) noexcept = default;
  BackupKey& operator=(BackupKey&&) noexcept = default;

  // The grouped text form, itself a secret.
  SecretBytes Format() const;
  const SecretBytes& secret() const { return key_; }
  BackupKey Clone() const { return BackupKey(key_.Clone()); }

 private:
  explicit BackupKey(SecretBytes key) : key_(std::move(key)) {}
  SecretBytes key_;
};

}  // namespace bkv

#endif  // BKV_CRYPTO_BACKUP_KEY_H_
