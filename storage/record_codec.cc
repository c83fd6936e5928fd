#include "storage/record_codec.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "crypto/hex.h"
#include "crypto/status_macros.h"

namespace bkv::storage {
namespace {

constexpr std::string_view kAccountKeyLabel("bkv.storage.v1.account\0", 23);
constexpr std::string_view kRecordAdLabel = "bkv.storage.v1.record";

void PutU64(uint64_t v, uint8_t* out) {
  for (int i = 7; i >= 0; --i, v >>= 8) out[i] = static_cast<uint8_t>(v);
}

uint64_t GetU64(const uint8_t* in) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | in[i];
  return v;
}

std::string PrefixedKey(char prefix, const AccountKey& key) {
  std::string out(1, prefix);
  out.append(reinterpret_cast<const char*>(key.data()), key.size());
  return out;
}

}  // namespace

AccountKey DeriveAccountKey(std::string_view account_id) {
  AccountKey key;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  // SHA-256 over in-memory buffers fails only on allocation failure, where
  // there is nothing sensible left to do.
  if (ctx == nullptr || EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) != 1 ||
      EVP_DigestUpdate(ctx, kAccountKeyLabel.data(), kAccountKeyLabel.size()) !=
          1 ||
      EVP_DigestUpdate(ctx, account_id.data(), account_id.size()) != 1 ||
      EVP_DigestFinal_ex(ctx, key.data(), nullptr) != 1) {
    std::abort();
  }
  EVP_MD_CTX_free(ctx);
  return key;
}

std::string AccountKeyHex(const AccountKey& key) {
  return HexEncode(std::span(key).first(8));
}

std::string RecordDbKey(const AccountKey& key) { return PrefixedKey('r', key); }
std::string WatermarkDbKey(const AccountKey& key) {
  return PrefixedKey('w', key);
}

std::vector<uint8_t> RecordAssociatedData(const AccountKey& key,
                                          uint64_t version) {
  std::vector<uint8_t> ad(kRecordAdLabel.size() + key.size() + 8);
  std::memcpy(ad.data(), kRecordAdLabel.data(), kRecordAdLabel.size());
  std::memcpy(ad.data() + kRecordAdLabel.size(), key.data(), key.size());
  PutU64(version, ad.data() + kRecordAdLabel.size() + key.size());
  return ad;
}

absl::Status TamperError(const AccountKey& key, absl::string_view what) {
  return absl::DataLossError(absl::StrCat(
      "record for account key ", AccountKeyHex(key), " is tampered: ", what,
      ". Refusing to use it; do not reset it: investigate the data directory "
      "and restore it from a trusted copy (or check that the vault seals with "
      "the key it was written under)"));
}

absl::StatusOr<std::vector<uint8_t>> PadRecord(const v1::UserRecord& record) {
  const size_t n = record.ByteSizeLong();
  if (n > kMaxRecordSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("record serializes to ", n, " bytes, more than the ",
                     kMaxRecordSize, " that fit the fixed padded size"));
  }
  std::vector<uint8_t> padded(kPaddedRecordSize, 0);
  for (int i = 0; i < 4; ++i)
    padded[i] = static_cast<uint8_t>(n >> (24 - 8 * i));
  if (!record.SerializeToArray(padded.data() + 4, static_cast<int>(n))) {
    return absl::InternalError("UserRecord serialization failed");
  }
  return padded;
}

absl::StatusOr<v1::UserRecord> UnpadRecord(std::span<const uint8_t> padded) {
  if (padded.size() != kPaddedRecordSize) {
    return absl::DataLossError(absl::StrCat("padded record is ", padded.size(),
                                            " bytes, expected ",
                                            kPaddedRecordSize));
  }
  const size_t n = (size_t{padded[0]} << 24) | (size_t{padded[1]} << 16) |
                   (size_t{padded[2]} << 8) | padded[3];
  if (n > kMaxRecordSize) {
    return absl::DataLossError(
        absl::StrCat("padded record claims ", n, " bytes, over the maximum"));
  }
  auto tail = padded.subspan(4 + n);
  if (!std::all_of(tail.begin(), tail.end(),
                   [](uint8_t b) { return b == 0; })) {
    return absl::DataLossError("record padding is not all zero");
  }
  v1::UserRecord record;
  if (!record.ParseFromArray(padded.data() + 4, static_cast<int>(n))) {
    return absl::DataLossError("record contents are not a UserRecord");
  }
  return record;
}

absl::StatusOr<std::string> SealRecord(const Sealer& sealer,
                                       const AccountKey& key,
                                       const v1::UserRecord& record) {
  BKV_ASSIGN_OR_RETURN(std::vector<uint8_t> padded, PadRecord(record));
  auto sealed =
      sealer.Seal(padded, RecordAssociatedData(key, record.version()));
  OPENSSL_cleanse(padded.data(), padded.size());
  if (!sealed.ok()) return sealed.status();
  std::string value(kRecordFrameHeaderSize, '\0');
  value[0] = static_cast<char>(kFormatV1);
  PutU64(record.version(), reinterpret_cast<uint8_t*>(value.data()) + 1);
  value.append(sealed->begin(), sealed->end());
  return value;
}

absl::StatusOr<uint64_t> PeekRecordVersion(std::span<const uint8_t> value) {
  if (value.size() < kRecordFrameHeaderSize || value[0] != kFormatV1) {
    return absl::DataLossError("record framing is malformed");
  }
  return GetU64(value.data() + 1);
}

absl::StatusOr<v1::UserRecord> OpenRecord(const Sealer& sealer,
                                          const AccountKey& key,
                                          std::span<const uint8_t> value) {
  auto version = PeekRecordVersion(value);
  if (!version.ok()) return TamperError(key, version.status().message());
  auto padded = sealer.Open(value.subspan(kRecordFrameHeaderSize),
                            RecordAssociatedData(key, *version));
  if (!padded.ok()) {
    if (padded.status().code() != absl::StatusCode::kDataLoss) {
      return padded.status();
    }
    return TamperError(
        key, absl::StrCat("sealed record (version ", *version,
                          ") failed authentication: modified, or moved from "
                          "another account or version"));
  }
  auto record = UnpadRecord(*padded);
  OPENSSL_cleanse(padded->data(), padded->size());
  if (!record.ok()) return TamperError(key, record.status().message());
  if (record->schema_version() != kSchemaVersion) {
    // Authentic, so written by another bkv release, not by an attacker.
    return absl::FailedPreconditionError(absl::StrCat(
        "record for account key ", AccountKeyHex(key), " has schema version ",
        record->schema_version(), "; this build reads ", kSchemaVersion,
        ": run the bkv release that wrote it"));
  }
  if (record->version() != *version) {
    return TamperError(
        key, absl::StrCat("sealed version ", record->version(),
                          " differs from framing version ", *version));
  }
  return record;
}

std::string EncodeWatermark(const Watermark& watermark) {
  std::string out(kWatermarkSize, '\0');
  out[0] = static_cast<char>(kFormatV1);
  out[1] = static_cast<char>(watermark.state);
  PutU64(watermark.version, reinterpret_cast<uint8_t*>(out.data()) + 2);
  return out;
}

absl::StatusOr<Watermark> ParseWatermark(std::span<const uint8_t> value) {
  if (value.size() != kWatermarkSize || value[0] != kFormatV1 ||
      (value[1] != static_cast<uint8_t>(Watermark::State::kLive) &&
       value[1] != static_cast<uint8_t>(Watermark::State::kDeleted))) {
    return absl::DataLossError("version watermark is malformed");
  }
  return Watermark{static_cast<Watermark::State>(value[1]),
                   GetU64(value.data() + 2)};
}

}  // namespace bkv::storage
