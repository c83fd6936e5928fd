#include "client/repo/repository.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/client_state.h"
#include "client/posix_file.h"
#include "client/repo/settled_read.h"
#include "crypto/hex.h"
#include "crypto/random.h"
#include "zstd.h"

namespace bkv {
namespace {

constexpr std::string_view kConfigMagic = "BKVREPO2";
constexpr size_t kConfigHeader = 8 + 2 + 32;
// 3: snapshots keep their entries in tree objects. A version 2 repository
// (inline entries) is read as it is and upgraded by its next backup.
// 4: the sealed part names the chunk-id function; 2 and 3 imply function 1.
constexpr uint16_t kVersion = 4;
constexpr uint16_t kOldestVersion = 2;
constexpr uint16_t kLastImplicitIdVersion = 3;

// The version a repository with this id function is written at: function 1
// stays at 3, so the previous release still reads an old repository.
uint16_t VersionFor(ChunkIdFunction f) {
  return f == ChunkIdFunction::kHmacSha512Trunc ? kLastImplicitIdVersion
                                                : kVersion;
}
// The seal's AD id: from version 4 on, the clear header (magic, version, key
// check), so the store cannot change the version; 2 and 3 (released without
// it) have none.
std::span<const uint8_t> ConfigAd(std::span<const uint8_t> config) {
  const uint16_t version = (config[8] << 8) | config[9];
  if (version <= kLastImplicitIdVersion) return {};
  return config.first(kConfigHeader);
}
// "snap-<20 digits>-<32 hex>" -> seq, id.
bool ParseSnapshotName(absl::string_view name, uint64_t& seq, ObjectId& id) {
  if (name.size() != 5 + 20 + 1 + 32 || !absl::StartsWith(name, "snap-") ||
      name[25] != '-') {
    return false;
  }
  return absl::SimpleAtoi(name.substr(5, 20), &seq) &&
         ParseObjectIdHex(std::string(name.substr(26)), id);
}

std::vector<uint8_t> SnapshotAd(const ObjectId& repo, const ObjectId& id) {
  std::vector<uint8_t> ad(repo.begin(), repo.end());
  ad.insert(ad.end(), id.begin(), id.end());
  return ad;
}

}  // namespace

std::string ObjectIdHex(const ObjectId& id) { return HexEncode(id); }
bool ParseObjectIdHex(std::string_view hex, ObjectId& out) {
  if (hex.size() != 32) return false;
  auto bytes = HexDecode(hex);
  if (!bytes.ok() || bytes->size() != out.size()) return false;
  std::copy(bytes->begin(), bytes->end(), out.begin());
  return true;
}
std::string PackName(const ObjectId& id) { return "pack-" + HexEncode(id); }
std::string IndexName(const ObjectId& id) { return "index-" + HexEncode(id); }
std::string SnapshotName(uint64_t seq, const ObjectId& id) {
  return absl::StrFormat("snap-%020u-%s", seq, HexEncode(id));
}
std::string TreeName(const ChunkId& id) { return "tree-" + HexEncode(id); }
std::vector<uint8_t> TreeAd(const ObjectId& repo, const ChunkId& tree) {
  std::vector<uint8_t> ad(repo.begin(), repo.end());
  ad.insert(ad.end(), tree.begin(), tree.end());
  return ad;
}

Repository::Repository(BlobStore& store, RepoKeys keys, RepoOptions options)
    : store_(store), keys_(std::move(keys)), options_(std::move(options)) {}
Repository::~Repository() = default;

absl::StatusOr<bool> Repository::Exists(BlobStore& store) {
  auto info = store.Stat(kConfigName);
  if (info.ok()) return true;
  if (absl::IsNotFound(info.status())) return false;
  return info.status();
}

absl::StatusOr<std::unique_ptr<Repository>> Repository::Open(
    BlobStore& store, const BackupKey& key, const RepoOptions& options) {
  // The config opens under any function's keys (the key check and the
  // seal do not depend on it); a new repository gets function 2.
  std::unique_ptr<Repository> repo(new Repository(
      store, RepoKeys::Derive(key, ChunkIdFunction::kHmacSha256), options));
  if (auto s = repo->LoadConfig(); !s.ok()) return s;
  // Ids are computed only after this: one repository, one id function.
  if (repo->id_function_ != repo->keys_.id_function()) {
    repo->keys_ = RepoKeys::Derive(key, repo->id_function_);
  }
  if (auto s = repo->LoadHead(); !s.ok()) return s;
  return repo;
}

absl::Status Repository::LoadConfig() {
  auto bytes =
      GetSettled(store_, kConfigName, 4096,
                 [&](std::span<const uint8_t> b) { return ParseConfig(b); });
  if (absl::IsNotFound(bytes.status()) && options_.create) {
    return CreateConfig();
  }
  if (absl::IsNotFound(bytes.status())) {
    return absl::NotFoundError(
        absl::StrCat("no bkv repository (v2) in ", store_.url(),
                     ": run `bkv backup` into it first"));
  }
  return bytes.status();
}

namespace {
// What a repository writes besides its config (not locks: they come and go).
bool IsRepositoryObject(absl::string_view name) {
  return name == "head" || absl::StartsWith(name, "pack-") ||
         absl::StartsWith(name, "index-") || absl::StartsWith(name, "snap-") ||
         absl::StartsWith(name, "tree-");
}
}  // namespace

// A new repository, only into a store with no repository objects: where
// they exist the config was lost (deleted, or a NotFound the store should
// not have said), and a new one would give them a new repository id and
// function and orphan every snapshot (review finding 2).
absl::Status Repository::CreateConfig() {
  auto objects = ListObjects();
  if (!objects.ok()) return objects.status();
  for (const auto& [name, size] : *objects) {
    if (!IsRepositoryObject(name)) continue;
    return absl::FailedPreconditionError(absl::StrCat(
        store_.url(), " holds a bkv repository (", name,
        ", ...) but its config is missing: nothing was written; restore "
        "`config` from a copy of the store, or run again if the store only "
        "failed to return it"));
  }
  SystemRandom().Bytes(repo_id_);
  const absl::Status put = WriteConfig(/*if_absent=*/true);
  if (!put.ok() && !absl::IsAlreadyExists(put)) return put;
  // Of two first backups at once, the config that stands (the first, where
  // the store has a create-only put; else the last) is read back and used.
  return GetSettled(store_, kConfigName, 4096,
                    [&](std::span<const uint8_t> b) { return ParseConfig(b); })
      .status();
}

// Config of repo_id_ at the current version.
absl::Status Repository::WriteConfig(bool if_absent) {
  std::vector<uint8_t> out(kConfigMagic.begin(), kConfigMagic.end());
  out.push_back(0);
  const uint16_t version = VersionFor(keys_.id_function());
  out.push_back(version);
  auto check = keys_.key_check();
  out.insert(out.end(), check.begin(), check.end());
  std::vector<uint8_t> pt(repo_id_.begin(), repo_id_.end());
  if (version > kLastImplicitIdVersion) {
    const auto f = static_cast<uint16_t>(keys_.id_function());
    pt.push_back(f >> 8);
    pt.push_back(f & 0xff);
  }
  auto sealed = keys_.Seal(RepoObjectKind::kConfig, ConfigAd(out), pt);
  if (!sealed.ok()) return sealed.status();
  out.insert(out.end(), sealed->begin(), sealed->end());
  SpanSource source(out);
  absl::Status put = if_absent ? store_.PutIfAbsent(kConfigName, source)
                               : absl::UnimplementedError("");
  if (absl::IsUnimplemented(put)) put = PutBytes(store_, kConfigName, out);
  if (!put.ok()) return put;
  config_version_ = version;
  id_function_ = keys_.id_function();
  return absl::OkStatus();
}

namespace {

// The function a version-4 config names (sealed: the store cannot change
// it); Unimplemented for one this bkv does not know.
absl::StatusOr<ChunkIdFunction> ParseIdFunction(std::span<const uint8_t> b) {
  const uint16_t f = (b[0] << 8) | b[1];
  if (f != static_cast<uint16_t>(ChunkIdFunction::kHmacSha512Trunc) &&
      f != static_cast<uint16_t>(ChunkIdFunction::kHmacSha256)) {
    return absl::UnimplementedError(absl::StrCat(
        "repository chunk-id function ", f,
        " is not supported: it was written by a newer bkv: upgrade bkv"));
  }
  return static_cast<ChunkIdFunction>(f);
}

}  // namespace

// Sets repo_id_; DataLoss for a short or damaged config (read again: it may
// be a write in progress), PermissionDenied for another key.
absl::Status Repository::ParseConfig(std::span<const uint8_t> b) {
  if (b.size() < kConfigHeader ||
      std::memcmp(b.data(), kConfigMagic.data(), kConfigMagic.size()) != 0) {
    return absl::DataLossError("repository config damaged: bad magic");
  }
  if (b[8] == 0 && b[9] < kOldestVersion) {
    return absl::UnimplementedError(
        "repository version is not supported: upgrade bkv");
  }
  auto check = keys_.key_check();
  if (std::memcmp(b.data() + 10, check.data(), check.size()) != 0) {
    return absl::PermissionDeniedError(
        "wrong backup key: this repository was made with another key");
  }
  // Every version from 4 on keeps this header and seals it as AD: a newer
  // version is told from the store's edit of the version byte (DataLoss).
  auto pt = keys_.Open(RepoObjectKind::kConfig, ConfigAd(b),
                       b.subspan(kConfigHeader));
  if (!pt.ok()) return pt.status();
  if (b[8] != 0 || b[9] > kVersion) {
    return absl::UnimplementedError(
        "repository version is not supported: upgrade bkv");
  }
  // 2 and 3 (no header in the AD) differ from 4 in length too, so a
  // version changed in the clear does not decode as another id function.
  const bool named = b[9] > kLastImplicitIdVersion;
  if (pt->size() != repo_id_.size() + (named ? 2 : 0)) {
    return absl::DataLossError("repository config does not decode");
  }
  ChunkIdFunction f = ChunkIdFunction::kHmacSha512Trunc;
  if (named) {
    auto parsed = ParseIdFunction(std::span(*pt).subspan(repo_id_.size()));
    if (!parsed.ok()) return parsed.status();
    f = *parsed;
  }
  std::copy(pt->begin(), pt->begin() + repo_id_.size(), repo_id_.begin());
  config_version_ = b[9];
  id_function_ = f;
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> Repository::ReadHeadSeq() {
  auto pt = GetOpened(store_, keys_, RepoObjectKind::kHead, repo_id_, kHeadName,
                      4096);
  if (absl::IsNotFound(pt.status())) return 0;
  if (!pt.ok()) return pt.status();
  auto head = DecodeHead(*pt);
  if (!head.ok()) return head.status();
  return head->seq;
}

absl::StatusOr<uint64_t> Repository::NextSeq() {
  auto objects = ListObjects();
  if (!objects.ok()) return objects.status();
  uint64_t seq = head_seq_;
  for (const auto& [name, size] : *objects) {
    uint64_t s = 0;
    ObjectId id;
    if (ParseSnapshotName(name, s, id)) seq = std::max(seq, s);
  }
  return seq + 1;
}

absl::Status Repository::AdvanceHead(const Head& head, RepoBackupStats& st) {
  auto current = ReadHeadSeq();
  if (!current.ok()) return current.status();
  head_seq_ = std::max(head_seq_, *current);
  if (*current >= head.seq) return absl::OkStatus();
  auto sealed = keys_.Seal(RepoObjectKind::kHead, repo_id_, EncodeHead(head));
  if (!sealed.ok()) return sealed.status();
  if (auto s = PutObject(kHeadName, *sealed, st); !s.ok()) return s;
  head_seq_ = std::max(head_seq_, head.seq);
  return absl::OkStatus();
}

absl::Status Repository::LoadHead() {
  auto seq = ReadHeadSeq();
  if (!seq.ok()) return seq.status();
  head_seq_ = *seq;
  const uint64_t seen =
      RecallCounter(options_.state_dir, ObjectIdHex(repo_id_) + ".seq");
  if (seen <= head_seq_) return absl::OkStatus();
  // Two backups that commit at once may leave the head at the older one's
  // number (read, then write: stores have no conditional put), so it is a
  // rollback only if no snapshot as new as the one seen is listed either.
  auto next = NextSeq();
  if (!next.ok()) return next.status();
  if (*next - 1 >= seen) {
    head_seq_ = seen;
    return absl::OkStatus();
  }
  return absl::DataLossError(absl::StrCat(
      "the store rolled back: its newest snapshot is number ", *next - 1,
      " but this client already saw number ", seen,
      "; restore from another copy, or delete the client state in ",
      options_.state_dir, " to accept the older repository"));
}

absl::Status Repository::Remember(uint64_t seq) {
  return RememberCounter(options_.state_dir, ObjectIdHex(repo_id_) + ".seq",
                         seq);
}

absl::StatusOr<std::map<std::string, uint64_t>> Repository::ListObjects() {
  auto list = store_.List();
  if (!list.ok()) return list.status();
  std::map<std::string, uint64_t> out;
  for (const BlobInfo& b : *list) out[b.name] = b.size;
  return out;
}

absl::Status Repository::LoadIndexes(
    const std::map<std::string, uint64_t>& objects,
    std::map<ChunkId, Located>& out, std::vector<std::string>* problems) {
  for (const auto& [name, size] : objects) {
    ObjectId id;
    if (!absl::StartsWith(name, "index-") ||
        !ParseObjectIdHex(name.substr(6), id)) {
      continue;
    }
    auto pt = GetOpened(store_, keys_, RepoObjectKind::kIndex, id, name,
                        kMaxPackBytes);
    if (!pt.ok() && !absl::IsDataLoss(pt.status())) return pt.status();
    absl::StatusOr<IndexFile> index =
        pt.ok() ? DecodeIndex(*pt) : absl::StatusOr<IndexFile>(pt.status());
    if (!index.ok()) {
      if (problems == nullptr) {
        return absl::DataLossError(absl::StrCat(
            name, ": ", index.status().message(), "; run `bkv check`"));
      }
      problems->push_back(absl::StrCat(name, ": ", index.status().message()));
      continue;
    }
    for (const PackRecord& p : index->packs) {
      for (const BlobLocation& b : p.blobs) out[b.id] = {p.pack, id, b, p.size};
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Snapshot> Repository::ReadSnapshot(const std::string& object) {
  uint64_t seq = 0;
  ObjectId id;
  if (!ParseSnapshotName(object, seq, id)) {
    return absl::InvalidArgumentError("not a snapshot name: " + object);
  }
  auto pt = GetOpened(store_, keys_, RepoObjectKind::kSnapshot,
                      SnapshotAd(repo_id_, id), object, kMaxPackBytes);
  if (!pt.ok() && !absl::IsDataLoss(pt.status())) return pt.status();
  if (!pt.ok()) {
    return absl::DataLossError(absl::StrCat(
        object, ": ", pt.status().message(),
        " (from another repository, or replayed under another name)"));
  }
  auto snap = DecodeSnapshot(*pt);
  if (!snap.ok()) return snap.status();
  if (snap->repo != repo_id_ || snap->id != id || snap->seq != seq) {
    return absl::DataLossError(
        absl::StrCat(object, ": holds another snapshot than its name says"));
  }
  if (snap->tree) {
    auto entries = ReadTree(*snap->tree);
    if (!entries.ok() && !absl::IsDataLoss(entries.status())) {
      return entries.status();
    }
    if (!entries.ok()) {
      return absl::DataLossError(
          absl::StrCat(object, ": ", entries.status().message()));
    }
    snap->entries = *std::move(entries);
  }
  return snap;
}

absl::StatusOr<std::vector<TreeEntry>> Repository::ReadTree(
    const ChunkId& tree) {
  const std::string name = TreeName(tree);
  auto pt = GetOpened(store_, keys_, RepoObjectKind::kTree,
                      TreeAd(repo_id_, tree), name, kMaxPackBytes);
  if (absl::IsNotFound(pt.status())) {
    return absl::DataLossError(
        absl::StrCat(name, " is missing: the store dropped it"));
  }
  if (!pt.ok() && absl::IsDataLoss(pt.status())) {
    return absl::DataLossError(absl::StrCat(
        name, ": ", pt.status().message(),
        " (modified, or swapped with another tree or repository)"));
  }
  if (!pt.ok()) return pt.status();
  // The name is the keyed id of the content: a writer's bug shows here.
  if (keys_.IdOf(*pt) != tree) {
    return absl::DataLossError(name + ": content does not match its id");
  }
  auto entries = DecodeTree(*pt);
  if (!entries.ok()) {
    return absl::DataLossError(
        absl::StrCat(name, ": ", entries.status().message()));
  }
  return entries;
}

absl::StatusOr<std::vector<std::pair<std::string, Snapshot>>>
Repository::AllSnapshots(const std::map<std::string, uint64_t>& objects,
                         std::vector<std::string>* problems) {
  std::vector<std::pair<std::string, Snapshot>> out;
  for (const auto& [name, size] : objects) {
    if (!absl::StartsWith(name, "snap-")) continue;
    auto snap = ReadSnapshot(name);
    if (snap.ok()) {
      out.emplace_back(name, *std::move(snap));
    } else if (absl::IsDataLoss(snap.status()) && problems != nullptr) {
      problems->push_back(std::string(snap.status().message()));
    } else {
      return snap.status();
    }
  }
  // Names sort by sequence (zero-padded), so `out` is oldest first.
  if (problems == nullptr && !out.empty() &&
      out.back().second.seq < head_seq_) {
    return absl::DataLossError(absl::StrCat(
        "snapshot number ", head_seq_,
        " named by the head is missing: the store dropped or rolled back "
        "snapshots; run `bkv check`"));
  }
  return out;
}

namespace {
SnapshotInfo InfoOf(const std::string& object, const Snapshot& s) {
  SnapshotInfo info{ObjectIdHex(s.id), object, s.seq, s.time_ms, s.source};
  for (const TreeEntry& e : s.entries) {
    if (e.type != EntryType::kFile) continue;
    ++info.files;
    info.bytes += e.size;
  }
  return info;
}
}  // namespace

absl::StatusOr<std::vector<SnapshotInfo>> Repository::Snapshots() {
  auto objects = ListObjects();
  if (!objects.ok()) return objects.status();
  auto snaps = AllSnapshots(*objects, nullptr);
  if (!snaps.ok()) return snaps.status();
  std::vector<SnapshotInfo> out;
  for (const auto& [name, s] : *snaps) out.push_back(InfoOf(name, s));
  return out;
}

absl::StatusOr<PackRecord> Repository::ReadPackHeader(
    const ObjectId& pack, std::vector<uint8_t>& bytes) {
  auto got = GetBytes(store_, PackName(pack), kMaxPackBytes);
  if (!got.ok()) return got.status();
  bytes = *std::move(got);
  return ParsePackHeader(pack, bytes);
}

absl::StatusOr<PackRecord> Repository::ParsePackHeader(
    const ObjectId& pack, std::span<const uint8_t> bytes) {
  const std::string name = PackName(pack);
  auto sealed = PackHeaderOf(bytes);
  if (!sealed.ok()) {
    return absl::DataLossError(
        absl::StrCat(name, ": ", sealed.status().message()));
  }
  auto pt = keys_.Open(RepoObjectKind::kPackHeader, pack, *sealed);
  if (!pt.ok()) {
    return absl::DataLossError(absl::StrCat(name, ": ", pt.status().message()));
  }
  auto index = DecodeIndex(*pt);
  if (!index.ok()) return index.status();
  if (index->packs.size() != 1 || index->packs[0].pack != pack) {
    return absl::DataLossError(name + ": pack header names another pack");
  }
  PackRecord rec = std::move(index->packs[0]);
  rec.size = bytes.size();
  return rec;
}

absl::StatusOr<std::vector<uint8_t>> Repository::OpenChunk(
    const BlobLocation& loc, std::span<const uint8_t> pack) {
  ChunkBuffers buffers;
  auto raw = OpenChunkInto(loc, pack, buffers);
  if (!raw.ok()) return raw.status();
  return std::vector<uint8_t>(raw->begin(), raw->end());
}

absl::StatusOr<std::span<const uint8_t>> Repository::OpenChunkInto(
    const BlobLocation& loc, std::span<const uint8_t> pack,
    ChunkBuffers& buffers, IdCheck check) {
  if (uint64_t{loc.offset} + loc.length > pack.size() || loc.length < 1) {
    return absl::DataLossError("chunk lies outside its pack: pack truncated");
  }
  std::vector<uint8_t>& pt = buffers.plaintext;
  if (!keys_
           .OpenTo(RepoObjectKind::kChunk, loc.id,
                   pack.subspan(loc.offset, loc.length), pt)
           .ok() ||
      pt.empty()) {
    return absl::DataLossError(
        "chunk failed authentication: pack modified, swapped or truncated");
  }
  std::span<const uint8_t> raw;
  if (pt[0] == 0) {
    raw = std::span<const uint8_t>(pt).subspan(1);  // no copy of raw chunks
  } else {
    // Grown, never shrunk: the zero-fill and page faults of a fresh
    // buffer per chunk were a tenth of a restore's CPU.
    if (buffers.raw.size() < loc.raw_size) buffers.raw.resize(loc.raw_size);
    if (buffers.Dctx() == nullptr) {
      return absl::ResourceExhaustedError("out of memory for zstd");
    }
    size_t got =
        ZSTD_decompressDCtx(buffers.Dctx(), buffers.raw.data(), loc.raw_size,
                            pt.data() + 1, pt.size() - 1);
    if (ZSTD_isError(got) || got != loc.raw_size) {
      return absl::DataLossError("chunk does not decompress to its size");
    }
    raw = std::span<const uint8_t>(buffers.raw).first(loc.raw_size);
  }
  if (raw.size() != loc.raw_size) {
    return absl::DataLossError("chunk is not the size its index says");
  }
  if (check == IdCheck::kRecompute) {
    if (!buffers.hasher)
      buffers.hasher = std::make_unique<ChunkIdHasher>(keys_);
    if (buffers.hasher->Id(raw) != loc.id) {
      return absl::DataLossError("chunk content does not match its id");
    }
  }
  return raw;
}

absl::Status Repository::PutObject(const std::string& name,
                                   std::span<const uint8_t> bytes,
                                   RepoBackupStats& st) {
  if (auto s = PutBytes(store_, name, bytes); !s.ok()) return s;
  st.uploaded_bytes += bytes.size();
  return absl::OkStatus();
}

}  // namespace bkv
