#ifndef BKV_CRYPTO_KEY_TRANSPORT_H_
#define BKV_CRYPTO_KEY_TRANSPORT_H_

// How a backup key travels between client and vault (docs/protocol.md, "Key
// transport"). Two layers, both AES-256-GCM:
//
//  1. Wrap (client only): the backup key is encrypted under a key derived
//     from the OPAQUE export key, which only the password holder can
//     compute. The vault stores this and can never read the backup key.
//       wrap_key = HKDF-Expand(export_key, "bkv/backup-key-wrap/v1", 32)
//       wrapped  = nonce[12] || AES-256-GCM(wrap_key, nonce, key,
//                                  aad = "bkv/backup-key-wrap/v1" || account)
//                = 12 + 32 + 16 = 60 bytes
//  2. Transport: the wrapped key crosses the wire sealed under the OPAQUE
//     session key, so it is released only to the party that just proved
//     the password, and bound to the direction and the account.
//       k      = HKDF-Expand(session_key, "bkv/key-transport/v1/" || dir, 32)
//       sealed = AES-256-GCM(k, nonce = 0^12, wrapped, aad = account)
//     with dir "register" (client -> vault) or "recover" (vault -> client).
//     Each session key is used once per direction, so a fixed nonce is safe.
//     A threshold realm (docs/threshold.md) releases its second-secret share
//     with the wrapped key the same way: s_i[32] || wrapped[60], 92 bytes.

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "crypto/secret_bytes.h"

namespace bkv::key_transport {

inline constexpr size_t kBackupKeySize = 32;
inline constexpr size_t kWrappedKeySize = 12 + kBackupKeySize + 16;
inline constexpr size_t kSealedSize = kWrappedKeySize + 16;
inline constexpr size_t kRealmReleaseSize = 32 + kWrappedKeySize;
inline constexpr size_t kSealedRealmReleaseSize = kRealmReleaseSize + 16;

enum class Direction { kRegister, kRecover };

absl::StatusOr<std::vector<uint8_t>> WrapBackupKey(
    const SecretBytes& export_key, absl::string_view account_id,
    const SecretBytes& backup_key);
// DataLoss if the export key (i.e. the password) or account differ.
absl::StatusOr<SecretBytes> UnwrapBackupKey(const SecretBytes& export_key,
                                            absl::string_view account_id,
                                            std::span<const uint8_t> wrapped);

// The threshold wrap (docs/threshold.md, "The second secret"): the key
// needs the export key and the second secret s combined from t realms.
//   unlock = HKDF-Extract("bkv/threshold/unlock/v1", export_key || s)
//   wrap   = HKDF-Expand(unlock, "bkv/backup-key-wrap/v2" || version, 32)
//   wrapped = nonce[12] || AES-256-GCM(wrap, nonce, key,
//                              aad = "bkv/backup-key-wrap/v2" || account)
absl::StatusOr<std::vector<uint8_t>> WrapBackupKeyThreshold(
    const SecretBytes& export_key, const SecretBytes& second_secret,
    std::span<const uint8_t> version, absl::string_view account_id,
    const SecretBytes& backup_key);
// DataLoss if the password, s, version or account differ.
absl::StatusOr<SecretBytes> UnwrapBackupKeyThreshold(
    const SecretBytes& export_key, const SecretBytes& second_secret,
    std::span<const uint8_t> version, absl::string_view account_id,
    std::span<const uint8_t> wrapped);

absl::StatusOr<std::vector<uint8_t>> Seal(const SecretBytes& session_key,
                                          Direction direction,
                                          absl::string_view account_id,
                                          std::span<const uint8_t> wrapped);
// `plaintext_size`: what the caller's protocol expects (kWrappedKeySize for
// v2, kRealmReleaseSize for a realm's release); any other shape is
// InvalidArgument, so one protocol's answer is never taken for the other's.
absl::StatusOr<std::vector<uint8_t>> Open(
    const SecretBytes& session_key, Direction direction,
    absl::string_view account_id, std::span<const uint8_t> sealed,
    size_t plaintext_size = kWrappedKeySize);

}  // namespace bkv::key_transport

#endif  // BKV_CRYPTO_KEY_TRANSPORT_H_
