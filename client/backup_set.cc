#include "client/backup_set.h"

#include <ctime>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "crypto/aes_gcm_sealer.h"
#include "crypto/hash.h"
#include "crypto/status_macros.h"

namespace bkv {
namespace {

constexpr std::string_view kManifestAd = "bkv manifest v1";

absl::StatusOr<AesGcmSealer> ManifestSealer(const BackupKey& key) {
  SecretBytes prk = HkdfExtract(AsBytes("bkv manifest"), key.secret().Reveal());
  return AesGcmSealer::Create(
      HkdfExpand(prk.Reveal(), AsBytes("bkv manifest v1 key"), 32));
}

std::string ObjectName(int64_t now, const std::string& id) {
  std::time_t t = static_cast<std::time_t>(now);
  std::tm tm;
  gmtime_r(&t, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
  return absl::StrCat("backup-", stamp, "-", id.substr(0, 16), ".bkv");
}

}  // namespace

std::string EncodeManifest(const std::vector<BackupRecord>& records) {
  std::string out = "bkv-manifest 1\n";
  for (const BackupRecord& r : records) {
    absl::StrAppend(&out, r.id, " ", r.object, " ", r.created_unix, " ",
                    static_cast<int>(r.content), " ", r.input_bytes, " ",
                    r.stored_bytes, "\n");
  }
  return out;
}

absl::StatusOr<std::vector<BackupRecord>> DecodeManifest(
    std::string_view text) {
  std::vector<std::string> lines =
      absl::StrSplit(absl::string_view(text.data(), text.size()), '\n');
  if (lines.empty() || lines[0] != "bkv-manifest 1" || !lines.back().empty()) {
    return absl::DataLossError("manifest: bad header or missing final newline");
  }
  std::vector<BackupRecord> out;
  for (size_t i = 1; i + 1 < lines.size(); ++i) {
    std::vector<std::string> f = absl::StrSplit(lines[i], ' ');
    BackupRecord r;
    int content = -1;
    if (f.size() != 6 || f[0].size() != 32 || !ValidateBlobName(f[1]).ok() ||
        !absl::SimpleAtoi(f[2], &r.created_unix) ||
        !absl::SimpleAtoi(f[3], &content) || content < 0 || content > 1 ||
        !absl::SimpleAtoi(f[4], &r.input_bytes) ||
        !absl::SimpleAtoi(f[5], &r.stored_bytes)) {
      return absl::DataLossError(absl::StrCat("manifest: bad record ", i));
    }
    r.id = f[0];
    r.object = f[1];
    r.content = static_cast<BackupContent>(content);
    out.push_back(std::move(r));
  }
  return out;
}

BackupSet::BackupSet(BlobStore& store, const BackupKey& key)
    : store_(store), key_(key.Clone()) {}

absl::StatusOr<std::vector<BackupRecord>> BackupSet::List() {
  auto sealed = GetBytes(store_, kManifestName);
  if (absl::IsNotFound(sealed.status())) return std::vector<BackupRecord>{};
  if (!sealed.ok()) return sealed.status();
  BKV_ASSIGN_OR_RETURN(AesGcmSealer sealer, ManifestSealer(key_));
  auto plain = sealer.Open(*sealed, AsBytes(kManifestAd));
  if (!plain.ok()) {
    return absl::PermissionDeniedError(absl::StrCat(
        "cannot open the manifest 'latest' in ", store_.url(),
        ": wrong backup key for this store, or the manifest was modified"));
  }
  return DecodeManifest(std::string_view(
      reinterpret_cast<const char*>(plain->data()), plain->size()));
}

absl::Status BackupSet::WriteManifest(
    const std::vector<BackupRecord>& records) {
  BKV_ASSIGN_OR_RETURN(AesGcmSealer sealer, ManifestSealer(key_));
  BKV_ASSIGN_OR_RETURN(
      auto sealed,
      sealer.Seal(AsBytes(EncodeManifest(records)), AsBytes(kManifestAd)));
  return PutBytes(store_, kManifestName, sealed);
}

absl::StatusOr<BackupRecord> BackupSet::Backup(const std::string& path,
                                               const BackupOptions& options) {
  // Read the manifest first: a wrong key fails before any upload.
  BKV_ASSIGN_OR_RETURN(std::vector<BackupRecord> records, List());
  BKV_ASSIGN_OR_RETURN(BackupContent content, ContentOf(path));
  BackupParams params;
  params.chunk_size = options.chunk_size;
  params.compression =
      options.compress ? BackupCompression::kZstd : BackupCompression::kNone;
  params.content = content;
  BKV_ASSIGN_OR_RETURN(BackupEncryptor enc,
                       BackupEncryptor::Create(key_, params));
  BackupRecord r;
  r.id = enc.header().BackupIdHex();
  r.created_unix = std::time(nullptr);
  r.object = ObjectName(r.created_unix, r.id);
  r.content = content;
  BKV_ASSIGN_OR_RETURN(
      StreamStats stats,
      StreamBackup(path, std::move(enc), store_, r.object, options.stream));
  r.input_bytes = stats.input_bytes;
  r.stored_bytes = stats.stored_bytes;

  records.push_back(r);
  std::vector<BackupRecord> pruned;
  if (options.keep > 0 && records.size() > options.keep) {
    pruned.assign(records.begin(), records.end() - options.keep);
    records.erase(records.begin(), records.end() - options.keep);
  }
  BKV_RETURN_IF_ERROR(WriteManifest(records));
  for (const BackupRecord& old : pruned) {
    if (auto s = store_.Delete(old.object); !s.ok()) {
      return absl::Status(
          s.code(),
          absl::StrCat("backup ", r.id,
                       " is complete, but pruning failed: ", s.message()));
    }
  }
  return r;
}

absl::StatusOr<BackupRecord> BackupSet::Restore(const std::string& id,
                                                const std::string& target,
                                                const StreamOptions& options) {
  BKV_ASSIGN_OR_RETURN(std::vector<BackupRecord> records, List());
  if (records.empty()) {
    return absl::NotFoundError(
        absl::StrCat("no backups in ", store_.url(), " (no manifest)"));
  }
  const BackupRecord* chosen = nullptr;
  if (id.empty()) {
    chosen = &records.back();
  } else {
    for (const BackupRecord& r : records) {
      if (!absl::StartsWith(r.id, id)) continue;
      if (chosen != nullptr) {
        return absl::InvalidArgumentError(absl::StrCat(
            "backup id prefix '", id, "' is ambiguous; give more digits"));
      }
      chosen = &r;
    }
    if (chosen == nullptr) {
      return absl::NotFoundError(
          absl::StrCat("no backup with id '", id, "' in ", store_.url()));
    }
  }
  BKV_RETURN_IF_ERROR(
      StreamRestore(store_, chosen->object, key_, target, options).status());
  return *chosen;
}

}  // namespace bkv
