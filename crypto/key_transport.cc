#include "crypto/key_transport.h"

#include <openssl/rand.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "crypto/aes_gcm_sealer.h"
#include "crypto/hash.h"
#include "crypto/status_macros.h"

namespace bkv::key_transport {
namespace {

constexpr char kWrapLabel[] = "bkv/backup-key-wrap/v1";
constexpr char kWrapLabelV2[] = "bkv/backup-key-wrap/v2";
constexpr char kUnlockSalt[] = "bkv/threshold/unlock/v1";

std::span<const uint8_t> Bytes(absl::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

SecretBytes TransportKey(const SecretBytes& session_key, Direction d) {
  std::string info =
      absl::StrCat("bkv/key-transport/v1/",
                   d == Direction::kRegister ? "register" : "recover");
  return HkdfExpand(session_key.Reveal(), Bytes(info), 32);
}

SecretBytes ThresholdWrapKey(const SecretBytes& export_key,
                             const SecretBytes& second_secret,
                             std::span<const uint8_t> version) {
  SecretBytes ikm(export_key.size() + second_secret.size());
  std::copy(export_key.Reveal().begin(), export_key.Reveal().end(),
            ikm.RevealMutable().begin());
  std::copy(second_secret.Reveal().begin(), second_secret.Reveal().end(),
            ikm.RevealMutable().begin() + export_key.size());
  SecretBytes unlock = HkdfExtract(Bytes(kUnlockSalt), ikm.Reveal());
  std::vector<uint8_t> info(kWrapLabelV2,
                            kWrapLabelV2 + sizeof(kWrapLabelV2) - 1);
  info.insert(info.end(), version.begin(), version.end());
  return HkdfExpand(unlock.Reveal(), info, 32);
}

absl::StatusOr<std::vector<uint8_t>> WrapUnder(const SecretBytes& key,
                                               absl::string_view label,
                                               absl::string_view account_id,
                                               const SecretBytes& backup_key) {
  if (backup_key.size() != kBackupKeySize) {
    return absl::InvalidArgumentError("a backup key is 32 bytes");
  }
  std::vector<uint8_t> out(12);
  if (RAND_bytes(out.data(), 12) != 1) {
    return absl::InternalError("OpenSSL RAND_bytes failed");
  }
  std::string aad = absl::StrCat(label, account_id);
  BKV_ASSIGN_OR_RETURN(
      std::vector<uint8_t> ct,
      AesGcmEncrypt(key.Reveal(), out, backup_key.Reveal(), Bytes(aad)));
  out.insert(out.end(), ct.begin(), ct.end());
  return out;
}

absl::StatusOr<SecretBytes> UnwrapUnder(const SecretBytes& key,
                                        absl::string_view label,
                                        absl::string_view account_id,
                                        std::span<const uint8_t> wrapped) {
  if (wrapped.size() != kWrappedKeySize) {
    return absl::DataLossError(absl::StrCat("wrapped backup key must be ",
                                            kWrappedKeySize, " bytes, got ",
                                            wrapped.size()));
  }
  std::string aad = absl::StrCat(label, account_id);
  BKV_ASSIGN_OR_RETURN(std::vector<uint8_t> pt,
                       AesGcmDecrypt(key.Reveal(), wrapped.first(12),
                                     wrapped.subspan(12), Bytes(aad)));
  SecretBytes out = SecretBytes::Copy(pt);
  OPENSSL_cleanse(pt.data(), pt.size());
  return out;
}

}  // namespace

absl::StatusOr<std::vector<uint8_t>> WrapBackupKeyThreshold(
    const SecretBytes& export_key, const SecretBytes& second_secret,
    std::span<const uint8_t> version, absl::string_view account_id,
    const SecretBytes& backup_key) {
  return WrapUnder(ThresholdWrapKey(export_key, second_secret, version),
                   kWrapLabelV2, account_id, backup_key);
}

absl::StatusOr<SecretBytes> UnwrapBackupKeyThreshold(
    const SecretBytes& export_key, const SecretBytes& second_secret,
    std::span<const uint8_t> version, absl::string_view account_id,
    std::span<const uint8_t> wrapped) {
  return UnwrapUnder(ThresholdWrapKey(export_key, second_secret, version),
                     kWrapLabelV2, account_id, wrapped);
}

absl::StatusOr<std::vector<uint8_t>> WrapBackupKey(
    const SecretBytes& export_key, absl::string_view account_id,
    const SecretBytes& backup_key) {
  return WrapUnder(HkdfExpand(export_key.Reveal(), Bytes(kWrapLabel), 32),
                   kWrapLabel, account_id, backup_key);
}

absl::StatusOr<SecretBytes> UnwrapBackupKey(const SecretBytes& export_key,
                                            absl::string_view account_id,
                                            std::span<const uint8_t> wrapped) {
  return UnwrapUnder(HkdfExpand(export_key.Reveal(), Bytes(kWrapLabel), 32),
                     kWrapLabel, account_id, wrapped);
}

absl::StatusOr<std::vector<uint8_t>> Seal(const SecretBytes& session_key,
                                          Direction direction,
                                          absl::string_view account_id,
                                          std::span<const uint8_t> wrapped) {
  if (wrapped.size() != kWrappedKeySize &&
      wrapped.size() != kRealmReleaseSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("wrapped backup key must be ", kWrappedKeySize,
                     " bytes (a realm's release ", kRealmReleaseSize, ")"));
  }
  static constexpr uint8_t kZeroNonce[12] = {};
  return AesGcmEncrypt(TransportKey(session_key, direction).Reveal(),
                       kZeroNonce, wrapped, Bytes(account_id));
}

absl::StatusOr<std::vector<uint8_t>> Open(const SecretBytes& session_key,
                                          Direction direction,
                                          absl::string_view account_id,
                                          std::span<const uint8_t> sealed,
                                          size_t plaintext_size) {
  if (plaintext_size != kWrappedKeySize &&
      plaintext_size != kRealmReleaseSize) {
    return absl::InvalidArgumentError("key transport: unknown plaintext size");
  }
  if (sealed.size() != plaintext_size + 16) {
    return absl::InvalidArgumentError(
        absl::StrCat("sealed_key must be ", plaintext_size + 16, " bytes, got ",
                     sealed.size()));
  }
  static constexpr uint8_t kZeroNonce[12] = {};
  return AesGcmDecrypt(TransportKey(session_key, direction).Reveal(),
                       kZeroNonce, sealed, Bytes(account_id));
}

}  // namespace bkv::key_transport
