// Repository::Backup: walk, chunk, deduplicate, pack, then index, snapshot
// and head, in that order. Also Forget and Prune, which repack with the same
// Packer.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/bounded_queue.h"
#include "client/posix_file.h"
#include "client/repo/repository.h"
#include "client/repo/settled_read.h"
#include "crypto/random.h"
#include "crypto/status_macros.h"
#include "zstd.h"

namespace bkv {

// Collects chunks into packs of about options_.pack_target bytes:
//   pack = sealed chunk... || sealed pack header || u32 header length
// as a pipeline: the caller's thread hands over new chunks (Add); several
// sealer stages (one per core, at most kMaxSealers) each compress and seal a
// chunk and append it to the one open pack (the order of chunks in a pack is
// free: the index records offsets); whoever fills the pack closes it and
// queues it for the upload stage (which holds store_mu_, the caller's other
// store calls take it too). The caller indexes closed() packs only after
// Finish, when all are stored. A failure anywhere stops every stage; what
// was uploaded stays as packs no index names, which the next backup adopts.
//
// Memory: every large buffer is one of a fixed set, allocated once and
// handed round through a free queue for the Packer's lifetime (a stage that
// needs one waits for it; cancelling the pipeline wakes it): RawBuffers()
// raw chunks and kPackBuffers packs. So the working set is reached within
// the first two packs and does not grow with the data (docs/backup-format.md,
// "Working set").
class Repository::Packer {
 public:
  struct Sealed {
    PackRecord record;
    std::vector<uint8_t> bytes;
  };
  struct Raw {
    ChunkId id;
    std::vector<uint8_t> bytes;
  };

  Packer(Repository& repo, RepoBackupStats& st)
      : repo_(repo),
        st_(st),
        sealing_(Sealers()),
        chunks_(RawBuffers()),
        packs_(1),
        free_raw_(RawBuffers()),
        free_packs_(kPackBuffers) {
    for (int i = RawBuffers(); i > 0; --i) {
      (void)free_raw_.Push(Reserved(ChunkerParams::kMax));
    }
    for (int i = kPackBuffers; i > 0; --i) {
      (void)free_packs_.Push(Reserved(PackCapacity()));
    }
    stages_.Watch(chunks_);
    stages_.Watch(packs_);
    stages_.Watch(free_raw_);
    stages_.Watch(free_packs_);
    for (int i = sealing_; i > 0; --i) {
      stages_.Run([this] { return SealStage(); });
    }
    stages_.Run([this] { return UploadStage(); });
  }

  // The pipeline's first error when it stopped (not the cancellation it
  // caused in the caller).
  absl::Status Add(const ChunkId& id, std::span<const uint8_t> raw) {
    pending_.insert(id);
    absl::StatusOr<std::vector<uint8_t>> copy = Free(free_raw_);
    absl::Status s = copy.status();
    if (s.ok()) {
      copy->assign(raw.begin(), raw.end());
      s = chunks_.Push({id, *std::move(copy)});
    }
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
  static constexpr int kMaxSealers = 4;
  // Packs in memory: one open (being filled), one queued or uploading. A
  // third would only help when sealing outpaces the upload, and then the
  // upload is the limit anyway.
  static constexpr int kPackBuffers = 2;
  // zstd level 1: on the bench's chat database it is both the fastest and
  // the smallest (2.23x vs level 3's 2.13x, 512 KiB blocks); incompressible
  // media pass through zstd at GB/s and are stored raw.
  static constexpr int kZstdLevel = 1;

  static int Sealers() {
    return std::clamp<int>(std::thread::hardware_concurrency(), 1, kMaxSealers);
  }
  // Raw chunks: one in each sealer and two queued, so a sealer that
  // finishes finds the next chunk waiting.
  static int RawBuffers() { return Sealers() + 2; }
  // A pack is closed at the first chunk that reaches the target, so it
  // holds at most that chunk's sealed size (a little over kMax) more.
  size_t PackCapacity() const {
    return repo_.options_.pack_target + 2 * ChunkerParams::kMax;
  }
  static std::vector<uint8_t> Reserved(size_t capacity) {
    std::vector<uint8_t> b;
    b.reserve(capacity);
    return b;
  }
  // A buffer of the fixed set: waits until a stage gives one back.
  static absl::StatusOr<std::vector<uint8_t>> Free(
      BoundedQueue<std::vector<uint8_t>>& q) {
    BKV_ASSIGN_OR_RETURN(std::optional<std::vector<uint8_t>> b, q.Pop());
    if (!b) return absl::InternalError("buffer queue closed");  // never closed
    b->clear();
    return *std::move(b);
  }

  absl::Status SealStage() {
    std::unique_ptr<ZSTD_CCtx, decltype(&ZSTD_freeCCtx)> zstd(ZSTD_createCCtx(),
                                                              &ZSTD_freeCCtx);
    if (!zstd) return absl::ResourceExhaustedError("out of memory (zstd)");
    // Reused for every chunk, sized once for the largest.
    std::vector<uint8_t> pt =
        Reserved(1 + ZSTD_compressBound(ChunkerParams::kMax));
    std::vector<uint8_t> sealed = Reserved(pt.capacity() + 64);
    for (;;) {
      BKV_ASSIGN_OR_RETURN(std::optional<Raw> chunk, chunks_.Pop());
      if (!chunk) break;
      Compress(zstd.get(), chunk->bytes, pt);
      sealed.clear();
      BKV_RETURN_IF_ERROR(repo_.keys_.SealAppend(RepoObjectKind::kChunk,
                                                 chunk->id, pt, sealed));
      const auto raw_size = static_cast<uint32_t>(chunk->bytes.size());
      BKV_RETURN_IF_ERROR(free_raw_.Push(std::move(chunk->bytes)));
      BKV_RETURN_IF_ERROR(Append(chunk->id, raw_size, sealed));
    }
    // The last sealer to finish closes the partial pack, then the queue.
    if (--sealing_ > 0) return absl::OkStatus();
    std::optional<Sealed> last;
    {
      std::lock_guard lock(open_mu_);
      if (!open_.record.blobs.empty()) {
        BKV_ASSIGN_OR_RETURN(last, CloseOpen());
      }
    }
    if (last) BKV_RETURN_IF_ERROR(packs_.Push(*std::move(last)));
    packs_.Close();
    return absl::OkStatus();
  }

  // pt = flag || data: 1 and a zstd frame when strictly smaller, else 0 and
  // the raw bytes.
  static void Compress(ZSTD_CCtx* zstd, std::span<const uint8_t> raw,
                       std::vector<uint8_t>& pt) {
    pt.resize(1 + ZSTD_compressBound(raw.size()));
    size_t z = ZSTD_compressCCtx(zstd, pt.data() + 1, pt.size() - 1, raw.data(),
                                 raw.size(), kZstdLevel);
    if (ZSTD_isError(z) || z >= raw.size()) {
      pt.assign(1, 0);
      pt.insert(pt.end(), raw.begin(), raw.end());
    } else {
      pt[0] = 1;
      pt.resize(1 + z);
    }
  }

  absl::Status Append(const ChunkId& id, uint32_t raw_size,
                      std::span<const uint8_t> sealed) {
    std::optional<Sealed> full;
    {
      std::lock_guard lock(open_mu_);
      if (open_.record.blobs.empty()) {
        BKV_ASSIGN_OR_RETURN(open_.bytes, Free(free_packs_));
        SystemRandom().Bytes(open_.record.pack);
      }
      open_.record.blobs.push_back(
          {id, static_cast<uint32_t>(open_.bytes.size()),
           static_cast<uint32_t>(sealed.size()), raw_size});
      open_.bytes.insert(open_.bytes.end(), sealed.begin(), sealed.end());
      if (open_.bytes.size() >= repo_.options_.pack_target) {
        BKV_ASSIGN_OR_RETURN(full, CloseOpen());
      }
    }
    return full ? packs_.Push(*std::move(full)) : absl::OkStatus();
  }

  // Under open_mu_: the open pack with its header, ready to upload.
  absl::StatusOr<Sealed> CloseOpen() {
    IndexFile header{{open_.record}};
    const size_t at = open_.bytes.size();
    BKV_RETURN_IF_ERROR(
        repo_.keys_.SealAppend(RepoObjectKind::kPackHeader, open_.record.pack,
                               EncodeIndex(header), open_.bytes));
    uint32_t n = static_cast<uint32_t>(open_.bytes.size() - at);
    for (int i = 3; i >= 0; --i)
      open_.bytes.push_back(static_cast<uint8_t>(n >> (8 * i)));
    open_.record.size = open_.bytes.size();
    return std::exchange(open_, Sealed{});
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
      BKV_RETURN_IF_ERROR(free_packs_.Push(std::move(pack->bytes)));
      closed_.push_back(std::move(pack->record));
    }
  }

  Repository& repo_;
  RepoBackupStats& st_;
  std::atomic<int> sealing_;  // sealers still running
  BoundedQueue<Raw> chunks_;
  BoundedQueue<Sealed> packs_;
  // The fixed sets of buffers not in use (see the class comment).
  BoundedQueue<std::vector<uint8_t>> free_raw_, free_packs_;
  std::mutex open_mu_;
  Sealed open_;                     // under open_mu_
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

// Reads until `buf` is full or the file ends; `have` bytes are in it.
absl::Status FillWindow(int fd, const std::string& abs,
                        std::vector<uint8_t>& buf, size_t& have, bool& eof) {
  while (!eof && have < buf.size()) {
    ssize_t n = ::read(fd, buf.data() + have, buf.size() - have);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, "read " + abs);
    if (n == 0) eof = true;
    have += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

}  // namespace

// What reads a backup's changed files, kept for the whole backup: the
// window a file is read through (several chunks, so their ids are hashed in
// parallel) and one helper thread per further core for the keyed ids (they
// cost more per byte than anything else), started once rather than once per
// window, each with its own MAC keyed once (the caller's thread: own_). A
// window's chunks are hashed as they are cut: the helpers hash the first chunks
// while the caller's thread still looks for the next boundaries, then the
// caller hashes too (Start, Add..., Ids).
class Repository::Reader {
 public:
  explicit Reader(const RepoKeys& keys) : keys_(keys), own_(keys) {
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    for (unsigned i = 1; i < cores; ++i)
      helpers_.emplace_back([this] { Help(); });
  }
  ~Reader() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    work_.notify_all();
    for (std::thread& t : helpers_) t.join();
  }

  // A new window: its chunks follow with Add, then Ids.
  void Start() {
    {
      std::lock_guard lock(mu_);
      chunks_.clear();
      ids_.clear();
      next_ = 0;
      closed_ = false;
      busy_ = helpers_.size();
      ++round_;
    }
    work_.notify_all();
  }
  // A chunk of the window, hashed by whichever thread is free first. It
  // must stay valid until Ids returns.
  void Add(std::span<const uint8_t> chunk) {
    {
      std::lock_guard lock(mu_);
      chunks_.push_back(chunk);
      ids_.emplace_back();
    }
    work_.notify_one();
  }
  // The ids of the window's chunks in order, once every one is hashed.
  std::vector<ChunkId> Ids() {
    {
      std::lock_guard lock(mu_);
      closed_ = true;
    }
    work_.notify_all();
    Hash(own_);
    std::unique_lock lock(mu_);
    done_.wait(lock, [&] { return busy_ == 0; });
    return std::move(ids_);
  }

  // Allocated when the first changed file is read: an unchanged backup
  // needs none.
  std::vector<uint8_t>& Window() {
    window_.resize(4 * ChunkerParams::kMax);
    return window_;
  }

 private:
  // Claims and hashes chunks until the window is closed and none is left.
  void Hash(ChunkIdHasher& hasher) {
    std::unique_lock lock(mu_);
    for (;;) {
      work_.wait(lock, [&] { return next_ < chunks_.size() || closed_; });
      if (next_ == chunks_.size()) return;
      const size_t i = next_++;
      const std::span<const uint8_t> chunk = chunks_[i];
      lock.unlock();
      const ChunkId id = hasher.Id(chunk);
      lock.lock();
      ids_[i] = id;
    }
  }
  void Help() {
    ChunkIdHasher hasher(keys_);
    uint64_t seen = 0;
    std::unique_lock lock(mu_);
    for (;;) {
      work_.wait(lock, [&] { return stop_ || round_ != seen; });
      if (stop_) return;
      seen = round_;
      lock.unlock();
      Hash(hasher);
      lock.lock();
      if (--busy_ == 0) done_.notify_one();
    }
  }

  std::vector<uint8_t> window_;
  const RepoKeys& keys_;
  ChunkIdHasher own_;  // the caller's thread's
  std::mutex mu_;
  std::condition_variable work_, done_;
  // One window's work, under mu_.
  std::vector<std::span<const uint8_t>> chunks_;
  std::vector<ChunkId> ids_;
  size_t next_ = 0;      // the next chunk to claim
  bool closed_ = false;  // no more chunks in this window
  size_t busy_ = 0;      // helpers still in this round
  uint64_t round_ = 0;
  bool stop_ = false;
  std::vector<std::thread> helpers_;  // last: they use the members above
};

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
  Reader reader(keys_);
  Packer packer(*this, st);
  Snapshot snap;
  for (Walked& w : walked) {
    if (w.entry.type == EntryType::kFile) {
      auto s =
          BackupFile(w.abs, w.entry, parent, known, reader, packer, **lock, st);
      if (!s.ok()) return packer.Abort(s);
      if (options_.progress) options_.progress(st);
    }
    snap.entries.push_back(std::move(w.entry));
  }
  if (auto s = packer.Finish(); !s.ok()) return s;
  for (PackRecord& p : packer.closed()) index.packs.push_back(std::move(p));
  if (!index.packs.empty()) {
    auto sealed =
        keys_.Seal(RepoObjectKind::kIndex, index_id, EncodeIndex(index));
    if (!sealed.ok()) return sealed.status();
    if (auto s = PutObject(IndexName(index_id), *sealed, st); !s.ok()) return s;
  }
  SystemRandom().Bytes(snap.id);
  snap.source = source;
  // A chunk in no index read at the start is new in this run (AddChunk
  // packed it), so it is in this run's index: the new chunks are not added
  // to `known`, whose nodes would raise the peak with the data size.
  std::set<ObjectId> needed;
  for (const TreeEntry& e : snap.entries) {
    for (const ChunkId& c : e.chunks) {
      auto it = known.find(c);
      needed.insert(it == known.end() ? index_id : it->second.index);
    }
  }
  snap.indexes.assign(needed.begin(), needed.end());
  // Freed before the tree is encoded, which reuses their memory.
  std::map<ChunkId, Located>().swap(known);
  std::vector<PackRecord>().swap(index.packs);
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
    const std::map<ChunkId, Located>& known, Reader& reader, Packer& packer,
    RepoLock& lock, RepoBackupStats& st) {
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
  std::vector<uint8_t>& buf = reader.Window();
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
    if (status.ok()) status = FillWindow(fd, abs, buf, have, eof);
    if (!status.ok() || have == 0) break;
    // Every chunk that starts kMax bytes before the window's end is cut
    // exactly as with unlimited lookahead (a cut never looks further).
    std::vector<std::span<const uint8_t>> chunks;
    size_t at = 0;
    reader.Start();
    while (at < have && (eof || have - at >= ChunkerParams::kMax)) {
      chunks.emplace_back(buf.data() + at,
                          keys_.FindBoundary({buf.data() + at, have - at}));
      reader.Add(chunks.back());
      at += chunks.back().size();
    }
    const std::vector<ChunkId> ids = reader.Ids();
    for (size_t i = 0; i < chunks.size() && status.ok(); ++i) {
      status = AddChunk(ids[i], chunks[i], known, packer, entry, st);
      total += chunks[i].size();
    }
    std::memmove(buf.data(), buf.data() + at, have - at);
    have -= at;
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

// One chunk of a file that is read: deduplicated, or handed to the packer.
absl::Status Repository::AddChunk(const ChunkId& id,
                                  std::span<const uint8_t> chunk,
                                  const std::map<ChunkId, Located>& known,
                                  Packer& packer, TreeEntry& entry,
                                  RepoBackupStats& st) {
  entry.chunks.push_back(id);
  ++st.chunks;
  if (known.contains(id) || packer.Pending(id)) {
    st.dedup_bytes += chunk.size();
    return absl::OkStatus();
  }
  ++st.new_chunks;
  st.new_bytes += chunk.size();
  return packer.Add(id, chunk);
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
  if (auto s = StoreTree(snap, st); !s.ok()) return s;
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

// The tree goes first (a snapshot never names a missing tree); one already
// stored is reused after it opens, so an unchanged backup writes only its
// snapshot and head. Our lock is confirmed: no prune deletes it meanwhile.
absl::Status Repository::StoreTree(Snapshot& snap, RepoBackupStats& st) {
  if (config_version_ < 3) {
    // Older clients must say "upgrade" rather than fail on a format-3
    // snapshot; the repository id and every other object stay.
    if (auto s = WriteConfig(/*if_absent=*/false); !s.ok()) return s;
  }
  const std::vector<uint8_t> tree = EncodeTree(snap.entries);
  snap.tree = keys_.IdOf(tree);
  const std::string name = TreeName(*snap.tree);
  const std::vector<uint8_t> ad = TreeAd(snap.repo, *snap.tree);
  auto stored = store_.Stat(name);
  if (!stored.ok() && !absl::IsNotFound(stored.status())) {
    return stored.status();
  }
  if (stored.ok()) {
    auto intact = GetOpened(store_, keys_, RepoObjectKind::kTree, ad, name,
                            kMaxPackBytes, SettleParams{.reads = 1});
    if (intact.ok() && *intact == tree) return absl::OkStatus();
    if (!intact.ok() && !absl::IsDataLoss(intact.status())) {
      return intact.status();
    }
  }
  auto sealed = keys_.Seal(RepoObjectKind::kTree, ad, tree);
  if (!sealed.ok()) return sealed.status();
  return PutObject(name, *sealed, st);
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
  if (auto s = SweepTrees(*objects, *snaps, ps); !s.ok()) return s;
  ps.chunks_dropped = chunks.size() - live.size();
  ps.bytes_freed -= std::min(ps.bytes_freed, st.uploaded_bytes);
  return ps;
}

// Trees no remaining snapshot names (forgotten, or left by an interrupted
// backup). Under prune's lock, so no backup is about to reuse one.
absl::Status Repository::SweepTrees(
    const std::map<std::string, uint64_t>& objects,
    const std::vector<std::pair<std::string, Snapshot>>& snaps,
    PruneStats& ps) {
  std::set<std::string> live;
  for (const auto& [name, snap] : snaps) {
    if (snap.tree) live.insert(TreeName(*snap.tree));
  }
  for (const auto& [name, size] : objects) {
    if (!absl::StartsWith(name, "tree-") || live.contains(name)) continue;
    if (auto s = store_.Delete(name); !s.ok()) return s;
    ++ps.trees_deleted;
    ps.bytes_freed += size;
  }
  return absl::OkStatus();
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
