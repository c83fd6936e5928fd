#include "crypto/backup_key.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "crypto/hex.h"

namespace bkv {

BackupKey BackupKey::Generate(const RandomSource& random) {
  SecretBytes key = SecretBytes::Locked(kSize);
  random.Bytes(key.RevealMutable());
  return BackupKey(std::move(key));
}

absl::StatusOr<BackupKey> BackupKey::FromBytes(const SecretBytes& bytes) {
  if (bytes.size() != kSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("backup key must be 32 bytes, got ", bytes.size()));
  }
  SecretBytes key = SecretBytes::Locked(kSize);
  std::copy(bytes.Reveal().begin(), bytes.Reveal().end(),
            key.RevealMutable().begin());
  return BackupKey(std::move(key));
}

absl::StatusOr<BackupKey> BackupKey::Parse(std::string_view text) {
  SecretBytes key = SecretBytes::Locked(kSize);
  auto out = key.RevealMutable();
  size_t digits = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == ' ' || c == '-') continue;
    const int v = HexDigitValue(c);
    if (v < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "backup key: invalid character at position ", i + 1,
          "; a key is 64 hex digits (0-9, a-f), optionally grouped with "
          "spaces or dashes"));
    }
    if (digits < kHexDigits) {
      out[digits / 2] = static_cast<uint8_t>(
          (digits % 2 == 0) ? (v << 4) : (out[digits / 2] | v));
    }
    ++digits;
  }
  if (digits != kHexDigits) {
    return absl::InvalidArgumentError(
        absl::StrCat("backup key has ", digits, " hex digits, expected 64"));
  }
  return BackupKey(std::move(key));
}

SecretBytes BackupKey::Format() const {
  static constexpr char kDigits[] = "0123456789abcdef";
  // 64 digits and 15 separators.
  SecretBytes text(kHexDigits + kHexDigits / 4 - 1);
  auto out = text.RevealMutable();
  size_t pos = 0;
  for (size_t i = 0; i < kSize; ++i) {
    if (i > 0 && i % 2 == 0) out[pos++] = ' ';
    const uint8_t b = key_.Reveal()[i];
    out[pos++] = kDigits[b >> 4];
    out[pos++] = kDigits[b & 0xf];
  }
  return text;
}

}  // namespace bkv
