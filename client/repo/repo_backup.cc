// Repository::Backup: walk, chunk, deduplicate, pack, then index, snapshot
// and head, in that order. Also Forget and Prune, which repack with the same
// Packer.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <optional>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/bounded_queue.h"
#include "client/posix_file.h"
#include "client/repo/repository.h"
#include "crypto/random.h"
#include "crypto/status_macros.h"
#include "zstd.h"

namespace bkv {

// Collects chunks into packs of about options_.pack_target bytes:
//   pack = sealed chunk... || sealed pack header || u32 header length
// as a pipeline: the caller's thread hands over new chunks (Add), one stage
// compresses and seals them into packs, another uploads each full pack
// (holding store_mu_, the caller's other store calls take it too). The
// caller indexes closed() packs only after Finish, when all are stored.
// A failure anywhere stops every stage; what was uploaded stays as packs
// no index names, which the next backup adopts.
class Repository::Packer {
 public:
  struct Sealed {
    PackRecord record;
    std::vector<uint8_t> bytes;
  };

  Packer(Repository& repo, RepoBackupStats& st)
      : repo_(repo), st_(st), chunks_(8), packs_(1) {
    stages_.Watch(chunks_);
    stages_.Watch(packs_);
    stages_.Run([this] { return SealStage(); });
    stages_.Run([this] { return UploadStage(); });
  }

  // The pipeline's first error when it stopped (not the cancellation it
  // caused in the caller).
  absl::Status Add(const ChunkId& id, std::span<const uint8_t> raw) {
    pending_.insert(id);
    absl::Status s =
        chunks_.Push({id, std::vector<uint8_t>(raw.begin(), raw.end())});
    return s.ok() ? s : Abort(s);
  }

  bool Pending(const ChunkId& id) const { return pending_.contains(id); }

  // Seals and uploads the rest; every pack is stored when it returns OK.
  absl::Status Finish() {
    chunks_.Close();
    absl::Status s = stages_.Join();
    st_.uploaded_bytes += uploaded_bytes_;
    st_.packs_uploaded += closed_.size();
    return s;
  }
  absl::Status Abort(absl::Status why) {
    stages_.Fail(why);
    absl::Status first = stages_.Join();
    return first.ok() ? why : first;
  }

  std::vector<PackRecord>& closed() { return closed_; }

 private:
  absl::Status SealStage() {
    Sealed open;
    for (;;) {
      BKV_ASSIGN_OR_RETURN(auto chunk, chunks_.Pop());
      if (!chunk) break;
      BKV_RETURN_IF_ERROR(SealInto(chunk->first, chunk->second, open));
      if (open.bytes.size() >= repo_.options_.pack_target) {
        BKV_RETURN_IF_ERROR(ClosePack(open));
      }
    }
    if (!open.record.blobs.empty()) BKV_RETURN_IF_ERROR(ClosePack(open));
    packs_.Close();
    return absl::OkStatus();
  }

  absl::Status SealInto(const ChunkId& id, std::span<const uint8_t> raw,
                        Sealed& open) {
    std::vector<uint8_t> pt(1 + ZSTD_compressBound(raw.size()));
    size_t z =
        ZSTD_compress(pt.data() + 1, pt.size() - 1, raw.data(), raw.size(), 3);
    if (ZSTD_isError(z) || z >= raw.size()) {  // stored raw when not smaller
      pt.assign(1, 0);
      pt.insert(pt.end(), raw.begin(), raw.end());
    } else {
      pt[0] = 1;
      pt.resize(1 + z);
    }
    BKV_ASSIGN_OR_RETURN(auto sealed,
                         repo_.keys_.Seal(RepoObjectKind::kChunk, id, pt));
    if (open.record.blobs.empty()) SystemRandom().Bytes(open.record.pack);
    open.record.blobs.push_back({id, static_cast<uint32_t>(open.bytes.size()),
                                 static_cast<uint32_t>(sealed.size()),
                                 static_cast<uint32_t>(raw.size())});
    open.bytes.insert(open.bytes.end(), sealed.begin(), sealed.end());
    return absl::OkStatus();
  }

  absl::Status ClosePack(Sealed& open) {
    IndexFile header{{open.record}};
    BKV_ASSIGN_OR_RETURN(
        auto sealed, repo_.keys_.Seal(RepoObjectKind::kPackHeader,
                                      open.record.pack, EncodeIndex(header)));
    open.bytes.insert(open.bytes.end(), sealed.begin(), sealed.end());
    uint32_t n = static_cast<uint32_t>(sealed.size());
    for (int i = 3; i >= 0; --i)
      open.bytes.push_back(static_cast<uint8_t>(n >> (8 * i)));
    open.record.size = open.bytes.size();
    return packs_.Push(std::exchange(open, Sealed{}));
  }

  absl::Status UploadStage() {
    for (;;) {
      BKV_ASSIGN_OR_RETURN(std::optional<Sealed> pack, packs_.Pop());
      if (!pack) return absl::OkStatus();
      {
        std::lock_guard lock(repo_.store_mu_);
        BKV_RETURN_IF_ERROR(
            PutBytes(repo_.store_, PackName(pack->record.pack), pack->bytes));
      }
      uploaded_bytes_ += pack->bytes.size();
      closed_.push_back(std::move(pack->record));
    }
  }

  Repository& repo_;
  RepoBackupStats& st_;
  BoundedQueue<std::pair<ChunkId, std::vector<uint8_t>>> chunks_;
  BoundedQueue<Sealed> packs_;
  std::set<ChunkId> pending_;       // the caller's thread only
  std::vector<PackRecord> closed_;  // the upload stage's, until Finish
  uint64_t uploaded_bytes_ = 0;     // likewise
  Pipeline stages_;                 // last: joined before the queues go
};

namespace {

struct Walked {
  std::string abs;
  TreeEntry entry;
};

TreeEntry EntryOf(const std::string& rel, const struct stat& st) {
  TreeEntry e;
  e.path = rel;
  e.mode = st.st_mode & 07777;
  e.mtime_ns = int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
  e.inode = st.st_ino;
  if (S_ISDIR(st.st_mode)) {
    e.type = EntryType::kDir;
  } else if (S_ISLNK(st.st_mode)) {
    e.type = EntryType::kSymlink;
  } else {
    e.type = EntryType::kFile;
    e.size = static_cast<uint64_t>(st.st_size);
  }
  return e;
}

// Depth-first, names sorted, so a snapshot lists parents before children.
// Sockets, devices and fifos are not backed up; `special` names them.
absl::Status Walk(const std::string& abs, const std::string& rel,
                  std::vector<Walked>& out, std::vector<std::string>& special,
                  int depth) {
  if (depth > 256) return absl::FailedPreconditionError(abs + ": too deep");
  struct stat st;
  if (::lstat(abs.c_str(), &st) != 0) return ErrnoStatus(errno, "lstat " + abs);
  if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) {
    special.push_back(rel);
    return absl::OkStatus();
  }
  Walked w{abs, EntryOf(rel, st)};
  if (S_ISLNK(st.st_mode)) {
    std::error_code ec;
    w.entry.link_target = std::filesystem::read_symlink(abs, ec).string();
    if (ec) return absl::InternalError("readlink " + abs + ": " + ec.message());
  }
  out.push_back(std::move(w));
  if (!S_ISDIR(st.st_mode)) return absl::OkStatus();
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& d : std::filesystem::directory_iterator(abs, ec)) {
    names.push_back(d.path().filename().string());
  }
  if (ec)
    return absl::InternalError("read directory " + abs + ": " + ec.message());
  std::sort(names.begin(), names.end());
  for (const std::string& n : names) {
    auto s = Walk(abs + "/" + n, rel == "." ? n : rel + "/" + n, out, special,
                  depth + 1);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SnapshotInfo> Repository::Backup(const std::string& path,
                                                RepoBackupStats* stats_out) {
  RepoBackupStats st;
  // Locked before the indexes are read: a prune that starts later waits
  // for us, one already running makes us wait.
  auto lock =
      RepoLock::Acquire(store_, keys_, repo_id_,
                        {false, options_.lock_lease_s, options_.lock_wait_s});
  if (!lock.ok()) return lock.status();
  auto objects = ListObjects();
  if (!objects.ok()) return objects.status();
  std::map<ChunkId, Located> known;
  if (auto s = LoadIndexes(*objects, known, nullptr); !s.ok()) return s;
  auto snaps = AllSnapshots(*objects, nullptr);
  if (!snaps.ok()) return snaps.status();

  const std::string root =
      std::filesystem::absolute(path).lexically_normal().string();
  const std::string source =
      options_.record_source.empty() ? root : options_.record_source;
  std::map<std::string, const TreeEntry*> parent;
  for (const auto& [name, s] : *snaps) {
    if (s.source != source) continue;
    parent.clear();
    for (const TreeEntry& e : s.entries) parent[e.path] = &e;
  }

  IndexFile index;
  ObjectId index_id;
  SystemRandom().Bytes(index_id);
  // Packs of an interrupted backup that no index lists: adopt them.
  if (auto s = AdoptPacks(*objects, known, index, index_id, st); !s.ok()) {
    return s;
  }

  std::vector<Walked> walked;
  if (auto s = Walk(root, ".", walked, st.skipped_special, 0); !s.ok()) {
    return s;
  }
  for (const Walked& w : walked) st.planned_bytes += w.entry.size;
  Packer packer(*this, st);
  Snapshot snap;
  for (Walked& w : walked) {
    if (w.entry.type == EntryType::kFile) {
      auto s = BackupFile(w.abs, w.entry, parent, known, packer, **lock, st);
      if (!s.ok()) return packer.Abort(s);
      if (options_.progress) options_.progress(st);
    }
    snap.entries.push_back(std::move(w.entry));
  }
  if (auto s = packer.Finish(); !s.ok()) return s;
  for (PackRecord& p : packer.closed()) {
    for (const BlobLocation& b : p.blobs)
      known[b.id] = {p.pack, index_id, b, p.size};
    index.packs.push_back(std::move(p));
  }
  if (!index.packs.empty()) {
    auto sealed =
        keys_.Seal(RepoObjectKind::kIndex, index_id, EncodeIndex(index));
    if (!sealed.ok()) return sealed.status();
    if (auto s = PutObject(IndexName(index_id), *sealed, st); !s.ok()) return s;
  }
  SystemRandom().Bytes(snap.id);
  snap.source = source;
  std::set<ObjectId> needed;
  for (const TreeEntry& e : snap.entries) {
    for (const ChunkId& c : e.chunks) needed.insert(known.at(c).index);
  }
  snap.indexes.assign(needed.begin(), needed.end());
  // Still ours: no prune can have run since the indexes were read.
  if (auto s = (*lock)->Confirm(); !s.ok()) return s;
  // Two clients that created the repository at once each wrote a config;
  // the last one stands. Packs and indexes do not depend on the repository
  // id, so adopting the surviving one here loses nothing.
  if (auto s = LoadConfig(); !s.ok()) return s;
  snap.repo = repo_id_;
  auto info = CommitSnapshot(snap, st);
  if (stats_out != nullptr) *stats_out = st;
  return info;
}

absl::Status Repository::AdoptPacks(
    const std::map<std::string, uint64_t>& objects,
    std::map<ChunkId, Located>& known, IndexFile& index,
    const ObjectId& index_id, RepoBackupStats& st) {
  std::set<ObjectId> indexed;
  for (const auto& [id, l] : known) indexed.insert(l.pack);
  for (const auto& [name, size] : objects) {
    ObjectId pack;
    if (!absl::StartsWith(name, "pack-") ||
        !ParseObjectIdHex(name.substr(5), pack) || indexed.contains(pack)) {
      continue;
    }
    std::vector<uint8_t> bytes;
    auto rec = ReadPackHeader(pack, bytes);
    if (!rec.ok()) continue;  // a damaged leftover: not adopted, never deleted
    for (const BlobLocation& b : rec->blobs)
      known[b.id] = {pack, index_id, b, rec->size};
    index.packs.push_back(*std::move(rec));
    ++st.packs_adopted;
  }
  return absl::OkStatus();
}

absl::Status Repository::BackupFile(
    const std::string& abs, TreeEntry& entry,
    const std::map<std::string, const TreeEntry*>& parent,
    const std::map<ChunkId, Located>& known, Packer& packer, RepoLock& lock,
    RepoBackupStats& st) {
  ++st.files;
  st.bytes += entry.size;
  auto p = parent.find(entry.path);
  if (p != parent.end() && p->second->type == EntryType::kFile &&
      p->second->size == entry.size && p->second->mtime_ns == entry.mtime_ns &&
      p->second->inode == entry.inode &&
      std::all_of(p->second->chunks.begin(), p->second->chunks.end(),
                  [&](const ChunkId& c) { return known.contains(c); })) {
    entry.chunks = p->second->chunks;
    ++st.files_unchanged;
    st.chunks += entry.chunks.size();
    st.dedup_bytes += entry.size;
    return absl::OkStatus();
  }
  ++st.files_read;
  int fd = ::open(abs.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return ErrnoStatus(errno, "open " + abs);
  std::vector<uint8_t> buf(2 * ChunkerParams::kMax);
  size_t have = 0;
  bool eof = false;
  uint64_t total = 0;
  absl::Status status;
  while (status.ok()) {
    if (options_.cancelled && options_.cancelled()) {
      status = absl::CancelledError("backup cancelled");
      break;
    }
    if (lock.RefreshDue()) {
      std::lock_guard store_lock(store_mu_);  // the packer uploads too
      status = lock.Keep();
    }
    if (!status.ok()) break;
    while (!eof && have < ChunkerParams::kMax) {
      ssize_t n = ::read(fd, buf.data() + have, buf.size() - have);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        status = ErrnoStatus(errno, "read " + abs);
        break;
      }
      if (n == 0) eof = true;
      have += static_cast<size_t>(n);
    }
    if (!status.ok() || have == 0) break;
    size_t cut = keys_.FindBoundary({buf.data(), have});
    std::span<const uint8_t> chunk(buf.data(), cut);
    ChunkId id = keys_.IdOf(chunk);
    entry.chunks.push_back(id);
    ++st.chunks;
    total += cut;
    if (known.contains(id) || packer.Pending(id)) {
      st.dedup_bytes += cut;
    } else {
      ++st.new_chunks;
      st.new_bytes += cut;
      status = packer.Add(id, chunk);
    }
    std::memmove(buf.data(), buf.data() + cut, have - cut);
    have -= cut;
    if (options_.progress) options_.progress(st);
  }
  ::close(fd);
  if (!status.ok()) return status;
  if (total != entry.size) {
    // The file changed while it was read; store what was read.
    st.bytes = st.bytes - entry.size + total;
    entry.size = total;
  }
  return absl::OkStatus();
}

absl::StatusOr<SnapshotInfo> Repository::CommitSnapshot(Snapshot& snap,
                                                        RepoBackupStats& st) {
  auto seq = NextSeq();
  if (!seq.ok()) return seq.status();
  snap.seq = *seq;
  snap.time_ms = options_.record_time_ms
                     ? options_.record_time_ms
                     : std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
  const std::string name = SnapshotName(snap.seq, snap.id);
  std::vector<uint8_t> ad(snap.repo.begin(), snap.repo.end());
  ad.insert(ad.end(), snap.id.begin(), snap.id.end());
  auto sealed = keys_.Seal(RepoObjectKind::kSnapshot, ad, EncodeSnapshot(snap));
  if (!sealed.ok()) return sealed.status();
  if (auto s = PutObject(name, *sealed, st); !s.ok()) return s;
  if (auto s = AdvanceHead({snap.seq, snap.id}, st); !s.ok()) return s;
  if (auto s = Remember(snap.seq); !s.ok()) return s;
  SnapshotInfo info{ObjectIdHex(snap.id), name, snap.seq, snap.time_ms,
                    snap.source};
  info.files = st.files;
  info.bytes = st.bytes;
  return info;
}

// Forget and Prune (mark and sweep) share the Packer.
std::vector<bool> KeptBy(const ForgetPolicy& policy,
                         const std::vector<SnapshotInfo>& snapshots) {
  std::vector<bool> keep(snapshots.size(), false);
  // Newest first; a period's newest snapshot is the first one seen in it.
  auto keep_per = [&](size_t count, int64_t period_ms, int64_t offset_ms) {
    std::set<int64_t> periods;
    for (size_t i = snapshots.size(); i-- > 0 && periods.size() < count;) {
      const int64_t t = snapshots[i].time_ms + offset_ms;
      const int64_t p = (t >= 0 ? t : t - period_ms + 1) / period_ms;
      if (periods.insert(p).second) keep[i] = true;
    }
  };
  constexpr int64_t kDayMs = 86400000;
  for (size_t i = 0; i < snapshots.size(); ++i) {
    keep[i] = keep[i] || i + policy.keep_last >= snapshots.size();
  }
  keep_per(policy.keep_daily, kDayMs, 0);
  // Unix time 0 was a Thursday; ISO weeks start on Monday.
  keep_per(policy.keep_weekly, 7 * kDayMs, 3 * kDayMs);
  return keep;
}

absl::StatusOr<std::vector<SnapshotInfo>> Repository::Forget(size_t keep_last) {
  return Forget(ForgetPolicy{keep_last, 0, 0});
}

absl::StatusOr<std::vector<SnapshotInfo>> Repository::Forget(
    const ForgetPolicy& policy) {
  if (policy.keep_last + policy.keep_daily + policy.keep_weekly == 0) {
    return absl::InvalidArgumentError(
        "forget needs --keep-last, --keep-daily or --keep-weekly of at least "
        "1");
  }
  auto all = Snapshots();
  if (!all.ok()) return all.status();
  const std::vector<bool> keep = KeptBy(policy, *all);
  std::vector<SnapshotInfo> gone;
  for (size_t i = 0; i < all->size(); ++i) {
    if (keep[i]) continue;
    if (auto s = store_.Delete((*all)[i].object); !s.ok()) return s;
    gone.push_back((*all)[i]);
  }
  return gone;
}

absl::StatusOr<PruneStats> Repository::Prune() {
  PruneStats ps;
  RepoBackupStats st;
  auto lock = RepoLock::Acquire(store_, keys_, repo_id_,
                                {true, options_.lock_lease_s, 0});
  if (!lock.ok()) return lock.status();
  auto objects = ListObjects();
  if (!objects.ok()) return objects.status();
  std::map<ChunkId, Located> chunks;
  if (auto s = LoadIndexes(*objects, chunks, nullptr); !s.ok()) return s;
  auto snaps = AllSnapshots(*objects, nullptr);
  if (!snaps.ok()) return snaps.status();
  // Mark.
  std::set<ChunkId> live;
  for (const auto& [name, snap] : *snaps) {
    for (const TreeEntry& e : snap.entries) {
      for (const ChunkId& c : e.chunks) {
        if (!chunks.contains(c)) {
          return absl::DataLossError(absl::StrCat(
              name,
              " references a chunk in no index; prune refuses to run: "
              "run `bkv check`"));
        }
        live.insert(c);
      }
    }
  }
  std::set<ObjectId> doomed;
  Packer packer(*this, st);
  if (auto s = Repack(chunks, live, **lock, packer, doomed, ps); !s.ok()) {
    return packer.Abort(s);
  }
  if (auto s = packer.Finish(); !s.ok()) return s;
  if (auto s = WriteLiveIndex(chunks, live, doomed, packer.closed(), st);
      !s.ok()) {
    return s;
  }
  // Sweep: old indexes first, then the packs no index names any more. Only
  // while the lock is provably ours: no backup can have started meanwhile.
  if (auto s = (*lock)->Confirm(); !s.ok()) return s;
  for (const auto& [name, size] : *objects) {
    if (!absl::StartsWith(name, "index-")) continue;
    if (auto s = store_.Delete(name); !s.ok()) return s;
    ++ps.indexes_deleted;
  }
  for (const ObjectId& pack : doomed) {
    if (auto s = store_.Delete(PackName(pack)); !s.ok()) return s;
    ++ps.packs_deleted;
    auto it = objects->find(PackName(pack));
    if (it != objects->end()) ps.bytes_freed += it->second;
  }
  ps.chunks_dropped = chunks.size() - live.size();
  ps.bytes_freed -= std::min(ps.bytes_freed, st.uploaded_bytes);
  return ps;
}

// Packs with dead chunks are doomed; the live chunks of those that have
// some are verified and handed to `packer`.
absl::Status Repository::Repack(const std::map<ChunkId, Located>& chunks,
                                const std::set<ChunkId>& live, RepoLock& lock,
                                Packer& packer, std::set<ObjectId>& doomed,
                                PruneStats& ps) {
  std::map<ObjectId, std::pair<size_t, size_t>> use;  // pack -> live, all
  for (const auto& [id, l] : chunks) {
    auto& u = use[l.pack];
    ++u.second;
    if (live.contains(id)) ++u.first;
  }
  for (const auto& [pack, u] : use) {
    if (u.first == u.second) continue;
    doomed.insert(pack);
    if (u.first == 0) continue;
    ++ps.packs_repacked;
    absl::StatusOr<std::vector<uint8_t>> bytes;
    {
      std::lock_guard store_lock(store_mu_);  // the packer uploads too
      absl::Status kept = lock.Keep();
      bytes = kept.ok() ? GetBytes(store_, PackName(pack), kMaxPackBytes)
                        : absl::StatusOr<std::vector<uint8_t>>(kept);
    }
    if (!bytes.ok()) return bytes.status();
    for (const auto& [id, l] : chunks) {
      if (l.pack != pack || !live.contains(id)) continue;
      auto raw = OpenChunk(l.loc, *bytes);
      if (!raw.ok()) {
        return absl::DataLossError(
            absl::StrCat(PackName(pack), ": ", raw.status().message(),
                         "; prune stopped before deleting anything"));
      }
      if (auto s = packer.Add(id, *raw); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

// One index of every live chunk (kept packs and new ones), stored before
// anything is deleted.
absl::Status Repository::WriteLiveIndex(
    const std::map<ChunkId, Located>& chunks, const std::set<ChunkId>& live,
    const std::set<ObjectId>& doomed, std::vector<PackRecord>& repacked,
    RepoBackupStats& st) {
  ObjectId index_id;
  SystemRandom().Bytes(index_id);
  std::map<ObjectId, PackRecord> records;
  for (const auto& [id, l] : chunks) {
    if (!live.contains(id) || doomed.contains(l.pack)) continue;
    PackRecord& r = records[l.pack];
    r.pack = l.pack;
    r.size = l.pack_size;
    r.blobs.push_back(l.loc);
  }
  IndexFile index;
  for (auto& [p, r] : records) index.packs.push_back(std::move(r));
  for (PackRecord& p : repacked) index.packs.push_back(std::move(p));
  auto sealed =
      keys_.Seal(RepoObjectKind::kIndex, index_id, EncodeIndex(index));
  if (!sealed.ok()) return sealed.status();
  return PutObject(IndexName(index_id), *sealed, st);
}

}  // namespace bkv
