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
constexpr std::string_view kRealmAdLabel = "bkv-realm-record/v1";

void PutU32(uint32_t v, uint8_t* out) {
  for (int i = 3; i >= 0; --i, v >>= 8) out[i] = static_cast<uint8_t>(v);
}

uint32_t GetU32(const uint8_t* in) {
  return (uint32_t{in[0]} << 24) | (uint32_t{in[1]} << 16) |
         (uint32_t{in[2]} << 8) | in[3];
}

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

bool IsRealmRecord(const v1::UserRecord& record) {
  return record.has_realm() || record.has_pending_realm() ||
         record.realm_epoch() != 0 || record.realm_tombstone();
}

absl::StatusOr<RealmFrame> RealmFrameOf(const v1::UserRecord& record) {
  RealmFrame frame;
  if (!record.has_realm()) return frame;
  const std::string& v = record.realm().registration_version();
  if (v.size() != frame.registration_version.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "realm registration version is ", v.size(), " bytes, expected 16"));
  }
  std::memcpy(frame.registration_version.data(), v.data(), v.size());
  frame.per_realm_limit = record.realm().per_realm_limit();
  return frame;
}

std::vector<uint8_t> RealmRecordAssociatedData(const AccountKey& key,
                                               uint64_t version,
                                               const RealmFrame& frame) {
  std::vector<uint8_t> ad = RecordAssociatedData(key, version);
  ad.insert(ad.end(), kRealmAdLabel.begin(), kRealmAdLabel.end());
  uint8_t g[4];
  PutU32(frame.per_realm_limit, g);
  ad.insert(ad.end(), g, g + 4);
  ad.insert(ad.end(), frame.registration_version.begin(),
            frame.registration_version.end());
  return ad;
}

absl::StatusOr<std::vector<uint8_t>> PadRecord(const v1::UserRecord& record,
                                               size_t padded_size) {
  const size_t n = record.ByteSizeLong();
  if (n > padded_size - 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("record serializes to ", n, " bytes, more than the ",
                     padded_size - 4, " that fit the fixed padded size"));
  }
  std::vector<uint8_t> padded(padded_size, 0);
  for (int i = 0; i < 4; ++i)
    padded[i] = static_cast<uint8_t>(n >> (24 - 8 * i));
  if (!record.SerializeToArray(padded.data() + 4, static_cast<int>(n))) {
    return absl::InternalError("UserRecord serialization failed");
  }
  return padded;
}

absl::StatusOr<v1::UserRecord> UnpadRecord(std::span<const uint8_t> padded,
                                           size_t padded_size) {
  if (padded.size() != padded_size) {
    return absl::DataLossError(absl::StrCat("padded record is ", padded.size(),
                                            " bytes, expected ", padded_size));
  }
  const size_t n = (size_t{padded[0]} << 24) | (size_t{padded[1]} << 16) |
                   (size_t{padded[2]} << 8) | padded[3];
  if (n > padded_size - 4) {
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

namespace {

// The framing and associated data a record is sealed under (format 1 or 2).
struct Frame {
  uint8_t format = kFormatV1;
  uint64_t version = 0;
  RealmFrame realm;

  size_t header_size() const {
    return format == kFormatRealm ? kRealmFrameHeaderSize
                                  : kRecordFrameHeaderSize;
  }
  size_t padded_size() const {
    return format == kFormatRealm ? kPaddedRealmRecordSize : kPaddedRecordSize;
  }
  std::vector<uint8_t> Ad(const AccountKey& key) const {
    return format == kFormatRealm
               ? RealmRecordAssociatedData(key, version, realm)
               : RecordAssociatedData(key, version);
  }
  std::string Header() const {
    std::string out(header_size(), '\0');
    auto* p = reinterpret_cast<uint8_t*>(out.data());
    p[0] = format;
    PutU64(version, p + 1);
    if (format == kFormatRealm) {
      PutU32(realm.per_realm_limit, p + 9);
      std::memcpy(p + 13, realm.registration_version.data(), 16);
    }
    return out;
  }
};

absl::StatusOr<Frame> ParseFrame(std::span<const uint8_t> value) {
  Frame f;
  if (value.empty() || (value[0] != kFormatV1 && value[0] != kFormatRealm)) {
    return absl::DataLossError("record framing is malformed");
  }
  f.format = value[0];
  if (value.size() < f.header_size()) {
    return absl::DataLossError("record framing is malformed");
  }
  f.version = GetU64(value.data() + 1);
  if (f.format == kFormatRealm) {
    f.realm.per_realm_limit = GetU32(value.data() + 9);
    std::memcpy(f.realm.registration_version.data(), value.data() + 13, 16);
  }
  return f;
}

}  // namespace

absl::StatusOr<std::string> SealRecord(const Sealer& sealer,
                                       const AccountKey& key,
                                       const v1::UserRecord& record) {
  Frame frame;
  frame.version = record.version();
  if (IsRealmRecord(record)) {
    frame.format = kFormatRealm;
    BKV_ASSIGN_OR_RETURN(frame.realm, RealmFrameOf(record));
  }
  BKV_ASSIGN_OR_RETURN(std::vector<uint8_t> padded,
                       PadRecord(record, frame.padded_size()));
  auto sealed = sealer.Seal(padded, frame.Ad(key));
  OPENSSL_cleanse(padded.data(), padded.size());
  if (!sealed.ok()) return sealed.status();
  std::string value = frame.Header();
  value.append(sealed->begin(), sealed->end());
  return value;
}

absl::StatusOr<uint64_t> PeekRecordVersion(std::span<const uint8_t> value) {
  BKV_ASSIGN_OR_RETURN(Frame frame, ParseFrame(value));
  return frame.version;
}

namespace {

// An authentic record must agree with the framing it was opened under.
absl::Status CheckAgainstFrame(const AccountKey& key, const Frame& frame,
                               const v1::UserRecord& record) {
  if (record.version() != frame.version) {
    return TamperError(
        key, absl::StrCat("sealed version ", record.version(),
                          " differs from framing version ", frame.version));
  }
  if ((frame.format == kFormatRealm) != IsRealmRecord(record)) {
    return TamperError(key, "record format does not match its contents");
  }
  if (frame.format != kFormatRealm) return absl::OkStatus();
  auto realm = RealmFrameOf(record);
  if (!realm.ok() || realm->per_realm_limit != frame.realm.per_realm_limit ||
      realm->registration_version != frame.realm.registration_version) {
    return TamperError(key, "realm limit or version differs from its framing");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::UserRecord> OpenRecord(const Sealer& sealer,
                                          const AccountKey& key,
                                          std::span<const uint8_t> value) {
  auto frame = ParseFrame(value);
  if (!frame.ok()) return TamperError(key, frame.status().message());
  auto padded =
      sealer.Open(value.subspan(frame->header_size()), frame->Ad(key));
  if (!padded.ok()) {
    if (padded.status().code() != absl::StatusCode::kDataLoss) {
      return padded.status();
    }
    return TamperError(
        key, absl::StrCat("sealed record (version ", frame->version,
                          ") failed authentication: modified (for a realm "
                          "record: its limit G included), or moved from "
                          "another account or version"));
  }
  auto record = UnpadRecord(*padded, frame->padded_size());
  OPENSSL_cleanse(padded->data(), padded->size());
  if (!record.ok()) return TamperError(key, record.status().message());
  if (record->schema_version() != kSchemaVersion) {
    // Authentic, so written by another bkv release, not by an attacker.
    return absl::FailedPreconditionError(absl::StrCat(
        "record for account key ", AccountKeyHex(key), " has schema version ",
        record->schema_version(), "; this build reads ", kSchemaVersion,
        ": run the bkv release that wrote it"));
  }
  BKV_RETURN_IF_ERROR(CheckAgainstFrame(key, *frame, *record));
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
