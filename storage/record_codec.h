#ifndef BKV_STORAGE_RECORD_CODEC_H_
#define BKV_STORAGE_RECORD_CODEC_H_

// The on-disk format of bkv records, shared by every RecordStore back end.
// Pure functions: no I/O, so they are tested and fuzzed on their own.
//
// Keys. The account id is never stored; records are keyed by
//   account key = SHA-256("bkv.storage.v1.account" || 0x00 || account id)
// which keeps raw ids out of the files and out of log lines (it does not
// stop a dictionary attack on guessable ids: that needs a keyed index).
//
//   'r' | account key (32)  ->  record value      (33-byte key)
//   'w' | account key (32)  ->  watermark value   (33-byte key)
//
// Record value:
//   +--------+-----------------+-------------------------------------------+
//   | format | version         | Sealer output over the padded plaintext,  |
//   | 0x01   | u64 big-endian  | AD = RecordAssociatedData(key, version)   |
//   +--------+-----------------+-------------------------------------------+
//     1 byte   8 bytes           AesGcmSealer: 12 + 1024 + 16 = 1052 bytes
//
// Padded plaintext (always kPaddedRecordSize bytes, so every sealed record
// of one Sealer has the same size whatever it holds):
//   +--------------+------------------------------+-----------------------+
//   | n (u32 BE)   | UserRecord, proto3, n bytes  | 1020 - n zero bytes   |
//   +--------------+------------------------------+-----------------------+
//   |<------------------------- 1024 bytes -------------------------------->|
//
// Associated data (binds a sealed record to one account and one version, so
// it can't be moved to another account or replayed under another version):
//   +--------------------------+-------------------+-----------------+
//   | "bkv.storage.v1.record"  | account key (32)  | version u64 BE  |
//   +--------------------------+-------------------+-----------------+
//
// Realm record value (format 2: a record with threshold fields, see
// docs/threshold.md "The realm record"): G and the active registration
// version are framed in the clear and bound into the associated data, so a
// storage edit of the limit makes the record unopenable (fail closed).
//   +--------+-----------+--------+---------------+------------------------+
//   | 0x02   | version   | G      | reg. version  | Sealer output over the |
//   |        | u64 BE    | u32 BE | 16 bytes      | 8192-byte padded text  |
//   +--------+-----------+--------+---------------+------------------------+
//   AD = RecordAssociatedData(key, version) || "bkv-realm-record/v1" ||
//        G u32 BE || registration version[16]
// The padded plaintext is framed as above, at kPaddedRealmRecordSize.
//
// Watermark value (the account's version high-water mark, written in the
// same atomic batch as the record; survives Delete as a tombstone):
//   +--------+-------------------------------+-----------------+
//   | format | state: 0x01 live, 0x02 deleted| version u64 BE  |
//   | 0x01   |                               |                 |
//   +--------+-------------------------------+-----------------+

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "bkv/storage/v1/record.pb.h"
#include "crypto/sealer.h"

namespace bkv::storage {

inline constexpr uint32_t kSchemaVersion = 1;
inline constexpr uint8_t kFormatV1 = 0x01;
inline constexpr size_t kPaddedRecordSize = 1024;
// The largest serialized UserRecord that fits the padding.
inline constexpr size_t kMaxRecordSize = kPaddedRecordSize - 4;
inline constexpr size_t kRecordFrameHeaderSize = 1 + 8;
inline constexpr uint8_t kFormatRealm = 0x02;
inline constexpr size_t kPaddedRealmRecordSize = 8192;
inline constexpr size_t kRealmFrameHeaderSize = 1 + 8 + 4 + 16;
inline constexpr size_t kWatermarkSize = 1 + 1 + 8;

using AccountKey = std::array<uint8_t, 32>;

AccountKey DeriveAccountKey(std::string_view account_id);
// The first 8 bytes of the account key in hex: how errors and logs name an
// account without revealing its id.
std::string AccountKeyHex(const AccountKey& key);

std::string RecordDbKey(const AccountKey& key);
std::string WatermarkDbKey(const AccountKey& key);

std::vector<uint8_t> RecordAssociatedData(const AccountKey& key,
                                          uint64_t version);

// Whether `record` is a realm record (format 2): it has threshold fields.
bool IsRealmRecord(const v1::UserRecord& record);

// The framing of a realm record: the active version's G and registration
// version (zeros when none is active). Also what its AD binds.
struct RealmFrame {
  uint32_t per_realm_limit = 0;
  std::array<uint8_t, 16> registration_version{};
};
absl::StatusOr<RealmFrame> RealmFrameOf(const v1::UserRecord& record);
std::vector<uint8_t> RealmRecordAssociatedData(const AccountKey& key,
                                               uint64_t version,
                                               const RealmFrame& frame);

// kInvalidArgument if `record` serializes to more than `padded_size` - 4
// bytes.
absl::StatusOr<std::vector<uint8_t>> PadRecord(
    const v1::UserRecord& record, size_t padded_size = kPaddedRecordSize);
// Strict inverse of PadRecord: exact size, n in range, zero padding, a
// parseable UserRecord. kDataLoss otherwise.
absl::StatusOr<v1::UserRecord> UnpadRecord(
    std::span<const uint8_t> padded, size_t padded_size = kPaddedRecordSize);

// Seals `record` (whose version() must already be set) into a record value:
// format 2 for a realm record, format 1 otherwise.
absl::StatusOr<std::string> SealRecord(const Sealer& sealer,
                                       const AccountKey& key,
                                       const v1::UserRecord& record);

// The version from a record value's framing, without unsealing it.
absl::StatusOr<uint64_t> PeekRecordVersion(std::span<const uint8_t> value);

// Parses and unseals a record value stored under `key`. kDataLoss naming the
// account key if the framing, the seal or the contents don't check out;
// other Sealer failures (an HSM that is unavailable) pass through unchanged,
// because they say nothing about the record.
absl::StatusOr<v1::UserRecord> OpenRecord(const Sealer& sealer,
                                          const AccountKey& key,
                                          std::span<const uint8_t> value);

struct Watermark {
  enum class State : uint8_t { kLive = 1, kDeleted = 2 };
  State state;
  uint64_t version;
};
std::string EncodeWatermark(const Watermark& watermark);
absl::StatusOr<Watermark> ParseWatermark(std::span<const uint8_t> value);

// The one shape of a tamper report: kDataLoss naming the account key.
absl::Status TamperError(const AccountKey& key, absl::string_view what);

inline std::span<const uint8_t> AsSpan(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

}  // namespace bkv::storage

#endif  // BKV_STORAGE_RECORD_CODEC_H_
