#include "client/backup_set.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <map>
#include <optional>
#include <set>
#include <tuple>

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

// backup-<YYYYMMDDTHHMMSS.mmmZ>-<16 hex>.bkv: milliseconds, so that a list
// rebuilt from the names keeps the order of backups made within a second.
std::string ObjectName(int64_t now_ms, const std::string& id) {
  std::time_t t = static_cast<std::time_t>(now_ms / 1000);
  std::tm tm;
  gmtime_r(&t, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%S", &tm);
  return absl::StrCat("backup-", stamp, ".",
                      absl::Dec(now_ms % 1000, absl::kZeroPad3), "Z-",
                      id.substr(0, 16), ".bkv");
}

// A backup object's name, parsed. Names written before milliseconds were
// added (backup-YYYYMMDDTHHMMSSZ-...) still parse. Only the rebuilt list's
// order depends on the time; the store can change it.
struct ObjectNameParts {
  int64_t created_ms = 0;
  std::string_view id_prefix;
};

std::optional<ObjectNameParts> ParseObjectName(std::string_view name) {
  constexpr std::string_view kPrefix = "backup-", kSuffix = ".bkv";
  if (!name.starts_with(kPrefix) || !name.ends_with(kSuffix)) {
    return std::nullopt;
  }
  name.remove_prefix(kPrefix.size());
  name.remove_suffix(kSuffix.size());
  const size_t dash = name.find('-');
  if (dash == std::string_view::npos || name.size() - dash - 1 != 16) {
    return std::nullopt;
  }
  ObjectNameParts parts;
  parts.id_prefix = name.substr(dash + 1);
  if (!std::all_of(parts.id_prefix.begin(), parts.id_prefix.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
      })) {
    return std::nullopt;
  }
  const std::string stamp(name.substr(0, dash));
  std::tm tm{};
  const char* end = strptime(stamp.c_str(), "%Y%m%dT%H%M%S", &tm);
  if (end == nullptr) return std::nullopt;
  int ms = 0;
  const std::string_view rest(end);
  if (rest.size() == 5 && rest[0] == '.' && rest[4] == 'Z' &&
      absl::SimpleAtoi(std::string(rest.substr(1, 3)), &ms)) {
  } else if (rest != "Z") {
    return std::nullopt;
  }
  parts.created_ms = static_cast<int64_t>(timegm(&tm)) * 1000 + ms;
  return parts;
}

// Errors that are a verdict on an object's bytes (or its absence), as
// opposed to a store or network failure.
bool IsVerdict(const absl::Status& s) {
  return absl::IsDataLoss(s) || absl::IsPermissionDenied(s) ||
         absl::IsInvalidArgument(s) || absl::IsUnimplemented(s) ||
         absl::IsNotFound(s);
}

// Authenticates object `name` under `key`: its header (and every chunk with
// `read_data`), and, when `expected_id` is set, that the header carries it.
// Errors name the object.
absl::StatusOr<BackupHeader> VerifyObject(BlobStore& store,
                                          const BackupKey& key,
                                          const std::string& name,
                                          const std::string& expected_id,
                                          bool read_data) {
  BackupDecryptor dec(key);
  if (!expected_id.empty()) dec.ExpectBackupId(expected_id);
  const auto discard = [](std::span<const uint8_t>) {
    return absl::OkStatus();
  };
  size_t fed = 0;
  bool header_only_done = false;
  absl::Status s = store.Get(name, [&](std::span<const uint8_t> d) {
    if (!read_data) d = d.first(std::min(d.size(), BackupHeader::kSize - fed));
    fed += d.size();
    BKV_RETURN_IF_ERROR(dec.Update(d, discard));
    if (!read_data && dec.header()) {
      header_only_done = true;
      return absl::CancelledError("header read");  // stops the download
    }
    return absl::OkStatus();
  });
  if (!header_only_done) {
    if (s.ok()) s = dec.Finish(discard);
    if (!s.ok()) {
      if (absl::IsNotFound(s)) return s;
      return absl::Status(s.code(),
                          absl::StrCat("object ", name, ": ", s.message()));
    }
  }
  return *dec.header();
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

bool IsBackupObjectName(std::string_view name) {
  return ParseObjectName(name).has_value();
}

BackupSet::BackupSet(BlobStore& store, const BackupKey& key)
    : store_(store), key_(key.Clone()) {}

absl::StatusOr<std::vector<BackupRecord>> BackupSet::ReadManifest() {
  BKV_ASSIGN_OR_RETURN(auto sealed, GetBytes(store_, kManifestName));
  BKV_ASSIGN_OR_RETURN(AesGcmSealer sealer, ManifestSealer(key_));
  auto plain = sealer.Open(sealed, AsBytes(kManifestAd));
  if (!plain.ok()) {
    return absl::DataLossError("the manifest fails authentication");
  }
  return DecodeManifest(std::string_view(
      reinterpret_cast<const char*>(plain->data()), plain->size()));
}

absl::StatusOr<BackupSet::ObjectScan> BackupSet::ScanObjects() {
  BKV_ASSIGN_OR_RETURN(std::vector<BlobInfo> objects, store_.List());
  ObjectScan scan;
  for (const BlobInfo& o : objects) {
    if (!IsBackupObjectName(o.name)) continue;
    auto h = VerifyObject(store_, key_, o.name, "", /*read_data=*/false);
    if (!h.ok()) {
      // Only a verdict on the object leaves it out; a store that failed
      // to answer must not shrink a rebuilt list.
      if (!IsVerdict(h.status())) return h.status();
      if (absl::IsPermissionDenied(h.status())) ++scan.wrong_key;
      scan.skipped.push_back(std::string(h.status().message()));
      continue;
    }
    const std::string id = h->BackupIdHex();
    const ObjectNameParts parts = *ParseObjectName(o.name);
    if (!std::string_view(id).starts_with(parts.id_prefix)) {
      scan.skipped.push_back(
          absl::StrCat("object ", o.name, " holds backup ", id,
                       ", not the one its name gives: swapped by the store"));
      continue;
    }
    scan.records.push_back(
        {id, o.name, parts.created_ms / 1000, h->content(), 0, o.size, {}});
  }
  std::sort(scan.records.begin(), scan.records.end(),
            [](const BackupRecord& a, const BackupRecord& b) {
              const int64_t ta = ParseObjectName(a.object)->created_ms;
              const int64_t tb = ParseObjectName(b.object)->created_ms;
              return std::tie(ta, a.object) < std::tie(tb, b.object);
            });
  return scan;
}

absl::Status BackupSet::ExplainUnreadableManifest() {
  BKV_ASSIGN_OR_RETURN(ObjectScan scan, ScanObjects());
  if (scan.records.empty()) {
    return absl::PermissionDeniedError(absl::StrCat(
        "cannot open the manifest 'latest' in ", store_.url(),
        ": wrong backup key for this store, or the manifest was modified"));
  }
  return absl::DataLossError(absl::StrCat(
      "the backup list 'latest' in ", store_.url(),
      " is damaged (it does not open, while ", scan.records.size(),
      " backup objects there open with this key); run `bkv repair --from ",
      store_.url(),
      "` to rebuild it from the backup objects (`bkv restore "
      "--backup ID` works meanwhile)"));
}

absl::StatusOr<std::vector<BackupRecord>> BackupSet::List() {
  auto records = ReadManifest();
  if (records.ok()) return records;
  if (absl::IsDataLoss(records.status())) return ExplainUnreadableManifest();
  if (!absl::IsNotFound(records.status())) return records.status();
  BKV_ASSIGN_OR_RETURN(std::vector<BlobInfo> objects, store_.List());
  const size_t n = std::count_if(
      objects.begin(), objects.end(),
      [](const BlobInfo& o) { return IsBackupObjectName(o.name); });
  if (n == 0) return std::vector<BackupRecord>{};
  return absl::DataLossError(absl::StrCat(
      "the backup list 'latest' is missing from ", store_.url(), ", but ", n,
      " backup objects are there: they are not lost; run `bkv repair --from ",
      store_.url(), "` to rebuild the list from them"));
}

absl::Status BackupSet::CheckListed(const std::vector<BackupRecord>& listed,
                                    bool read_data, CheckReport& rep) {
  for (const BackupRecord& r : listed) {
    auto h = VerifyObject(store_, key_, r.object, r.id, read_data);
    if (!h.ok() && !IsVerdict(h.status())) return h.status();
    if (h.ok()) {
      ++rep.verified;
    } else if (absl::IsNotFound(h.status())) {
      rep.problems.push_back(
          absl::StrCat("backup ", r.id, ": object ", r.object, " is missing"));
    } else {
      rep.problems.push_back(
          absl::StrCat("backup ", r.id, ": ", h.status().message()));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<CheckReport> BackupSet::Check(bool read_data) {
  CheckReport rep;
  BKV_ASSIGN_OR_RETURN(std::vector<BlobInfo> objects, store_.List());
  std::vector<BackupRecord> listed;
  auto m = ReadManifest();
  if (m.ok()) {
    listed = *m;
  } else if (absl::IsNotFound(m.status())) {
    rep.list = CheckReport::ListState::kMissing;
  } else if (absl::IsDataLoss(m.status())) {
    rep.list = CheckReport::ListState::kDamaged;
  } else {
    return m.status();
  }
  rep.listed = listed.size();
  BKV_RETURN_IF_ERROR(CheckListed(listed, read_data, rep));
  std::set<std::string> in_list;
  for (const BackupRecord& r : listed) in_list.insert(r.object);
  size_t authentic = 0, wrong_key = 0;
  for (const BlobInfo& o : objects) {
    if (!IsBackupObjectName(o.name)) continue;
    ++rep.objects;
    if (in_list.count(o.name)) continue;
    auto h = VerifyObject(store_, key_, o.name, "", read_data);
    if (!h.ok()) {
      if (!IsVerdict(h.status())) return h.status();
      if (absl::IsPermissionDenied(h.status())) ++wrong_key;
      rep.problems.push_back(std::string(h.status().message()));
      continue;
    }
    ++authentic;
    if (rep.list == CheckReport::ListState::kOk) {
      rep.problems.push_back(
          absl::StrCat("object ", o.name, " (backup ", h->BackupIdHex(),
                       ") is not in the list: `bkv repair` adds it"));
    }
  }
  if (rep.list == CheckReport::ListState::kMissing && rep.objects == 0) {
    rep.list = CheckReport::ListState::kOk;  // an empty store
  }
  if (rep.list == CheckReport::ListState::kDamaged && authentic == 0 &&
      (wrong_key > 0 || rep.objects == 0)) {
    return ExplainUnreadableManifest();  // most likely a wrong key
  }
  if (rep.list != CheckReport::ListState::kOk) {
    rep.problems.insert(
        rep.problems.begin(),
        absl::StrCat("the backup list 'latest' is ",
                     rep.list == CheckReport::ListState::kMissing
                         ? "missing"
                         : "damaged (it fails authentication)",
                     "; ", authentic, " backup objects open with this key"));
  }
  return rep;
}

absl::StatusOr<RepairReport> BackupSet::Repair() {
  RepairReport rep;
  auto m = ReadManifest();
  if (absl::IsNotFound(m.status())) {
    rep.before = CheckReport::ListState::kMissing;
  } else if (absl::IsDataLoss(m.status())) {
    rep.before = CheckReport::ListState::kDamaged;
  } else if (!m.ok()) {
    return m.status();
  }
  BKV_ASSIGN_OR_RETURN(ObjectScan scan, ScanObjects());
  if (!m.ok() && scan.records.empty() && scan.wrong_key > 0) {
    return absl::PermissionDeniedError(absl::StrCat(
        "no backup object in ", store_.url(),
        " opens with this key: wrong backup key? nothing was changed"));
  }
  std::map<std::string, BackupRecord> old;  // by object
  if (m.ok()) {
    for (const BackupRecord& r : *m) old[r.object] = r;
  }
  std::set<std::string> kept;
  for (BackupRecord& r : scan.records) {
    auto it = old.find(r.object);
    if (it != old.end() && it->second.id == r.id) {
      r.created_unix = it->second.created_unix;
      r.input_bytes = it->second.input_bytes;
      kept.insert(r.object);
    } else {
      ++rep.added;
    }
  }
  rep.dropped = old.size() - kept.size();
  rep.skipped = std::move(scan.skipped);
  rep.records = std::move(scan.records);
  rep.rewritten = !m.ok() || EncodeManifest(*m) != EncodeManifest(rep.records);
  if (rep.rewritten) BKV_RETURN_IF_ERROR(WriteManifest(rep.records));
  return rep;
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
  const int64_t now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count();
  r.created_unix = now_ms / 1000;
  r.object = ObjectName(now_ms, r.id);
  r.content = content;
  BKV_ASSIGN_OR_RETURN(
      StreamStats stats,
      StreamBackup(path, std::move(enc), store_, r.object, options.stream));
  r.input_bytes = stats.input_bytes;
  r.stored_bytes = stats.stored_bytes;
  r.skipped_special = std::move(stats.skipped_special);

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
  auto records = List();
  if (!records.ok()) {
    // A damaged or missing list: a named backup is found from the objects,
    // each authenticated; the newest is not guessed.
    if (!absl::IsDataLoss(records.status()) || id.empty()) {
      return records.status();
    }
    BKV_ASSIGN_OR_RETURN(ObjectScan scan, ScanObjects());
    records = std::move(scan.records);
  }
  BKV_ASSIGN_OR_RETURN(BackupRecord chosen, Choose(*records, id));
  BKV_RETURN_IF_ERROR(
      StreamRestore(store_, chosen.object, key_, target, options, chosen.id)
          .status());
  return chosen;
}

absl::StatusOr<BackupRecord> BackupSet::Choose(
    const std::vector<BackupRecord>& records, const std::string& id) {
  if (records.empty()) {
    return absl::NotFoundError(absl::StrCat("no backups in ", store_.url()));
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
  return *chosen;
}

}  // namespace bkv
