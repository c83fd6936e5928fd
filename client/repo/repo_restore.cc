// Repository::Restore and Repository::Check.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "client/bounded_queue.h"
#include "client/buffer_pool.h"
#include "client/posix_file.h"
#include "client/repo/repository.h"
#include "client/restore_staging.h"
#include "crypto/status_macros.h"

namespace bkv {
namespace {

absl::Status SafePath(const std::string& p) {
  if (p == ".") return absl::OkStatus();
  for (absl::string_view part : absl::StrSplit(p, '/')) {
    if (part.empty() || part == "." || part == "..") {
      return absl::DataLossError("snapshot has an unsafe path: " + p);
    }
  }
  return absl::OkStatus();
}

// Entries at or under `sub`, renamed relative to it ("." for `sub` itself).
absl::StatusOr<std::vector<TreeEntry>> Select(const Snapshot& snap,
                                              const std::string& wanted) {
  absl::string_view v = wanted;
  while (absl::ConsumePrefix(&v, "./")) {
  }
  while (v.size() > 1 && v.back() == '/') v.remove_suffix(1);
  const std::string sub = v.empty() ? std::string(".") : std::string(v);
  const std::string prefix = absl::StrCat(sub, "/");
  std::vector<TreeEntry> out;
  for (const TreeEntry& e : snap.entries) {
    if (auto s = SafePath(e.path); !s.ok()) return s;
    TreeEntry c = e;
    if (sub == ".") {
      // as is
    } else if (e.path == sub) {
      c.path.assign(1, '.');
    } else if (absl::StartsWith(e.path, prefix)) {
      c.path = e.path.substr(sub.size() + 1);
    } else {
      continue;
    }
    out.push_back(std::move(c));
  }
  if (out.empty() || out[0].path != ".") {
    return absl::NotFoundError(
        absl::StrCat("no path '", sub, "' in the snapshot"));
  }
  return out;
}

absl::Status SetMeta(const std::string& path, const TreeEntry& e) {
  if (e.type != EntryType::kSymlink && ::chmod(path.c_str(), e.mode) != 0) {
    return ErrnoStatus(errno, "chmod " + path);
  }
  struct timespec ts[2];
  ts[0].tv_sec = ts[1].tv_sec = e.mtime_ns / 1000000000;
  ts[0].tv_nsec = ts[1].tv_nsec = e.mtime_ns % 1000000000;
  if (::utimensat(AT_FDCWD, path.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0) {
    return ErrnoStatus(errno, "set times of " + path);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::pair<std::string, Snapshot>> Repository::Choose(
    const std::string& id) {
  auto objects = ListObjects();
  if (!objects.ok()) return objects.status();
  auto snaps = AllSnapshots(*objects, nullptr);
  if (!snaps.ok()) return snaps.status();
  if (snaps->empty())
    return absl::NotFoundError("the repository has no snapshots");
  if (id.empty()) return std::move(snaps->back());
  std::vector<size_t> hits;
  for (size_t i = 0; i < snaps->size(); ++i) {
    if (absl::StartsWith(ObjectIdHex((*snaps)[i].second.id), id))
      hits.push_back(i);
  }
  if (hits.empty()) return absl::NotFoundError("no snapshot " + id);
  if (hits.size() > 1) {
    return absl::InvalidArgumentError("snapshot id " + id + " is ambiguous");
  }
  return std::move((*snaps)[hits[0]]);
}

absl::StatusOr<SnapshotInfo> Repository::Restore(const std::string& id,
                                                 const std::string& subpath,
                                                 const std::string& target) {
  auto chosen = Choose(id);
  if (!chosen.ok()) return chosen.status();
  const Snapshot& snap = chosen->second;
  auto entries = Select(snap, subpath);
  if (!entries.ok()) return entries.status();
  // Every chunk is located before anything is written. All indexes are
  // read: prune replaces the ones a snapshot was written with.
  auto objects = ListObjects();
  if (!objects.ok()) return objects.status();
  std::map<ChunkId, Located> chunks;
  if (auto s = LoadIndexes(*objects, chunks, nullptr); !s.ok()) return s;
  for (const TreeEntry& e : *entries) {
    for (const ChunkId& c : e.chunks) {
      if (!chunks.contains(c)) {
        return absl::DataLossError(
            absl::StrCat("a chunk of ", e.path,
                         " is in no index: the store dropped an "
                         "index; run `bkv check`"));
      }
    }
  }
  struct stat st;
  if (::lstat(target.c_str(), &st) == 0) {
    return absl::AlreadyExistsError(
        target + " exists; restore to a new path or an empty folder");
  }
  std::filesystem::path t =
      std::filesystem::absolute(target).lexically_normal();
  BKV_ASSIGN_OR_RETURN(RestoreStaging staging,
                       RestoreStaging::Create(t.string()));
  const bool is_dir = (*entries)[0].type == EntryType::kDir;
  const std::string root = is_dir ? staging.dir() : staging.file();
  // WriteTree returns once every file and directory under `root` is
  // durable, so the rename publishes only synced data.
  absl::Status s = WriteTree(root, *entries, chunks);
  if (s.ok()) s = PublishRestore(root, t.string());
  if (!s.ok()) return s;
  SnapshotInfo info{ObjectIdHex(snap.id), chosen->first, snap.seq, snap.time_ms,
                    snap.source};
  for (const TreeEntry& e : *entries) {
    if (e.type != EntryType::kFile) continue;
    ++info.files;
    info.bytes += e.size;
  }
  return info;
}

// The files of a restore: created and pre-sized up front, written by chunk
// from several threads; as soon as a file's last chunk is written it gets
// its metadata (mode, times), its writeback is started and it is queued for
// the sync threads (RunSync), which fsync and close it while the others are
// still written. Thread-safe after Create.
class Repository::TreeWriter {
 public:
  TreeWriter(std::string root, const std::vector<TreeEntry>& entries)
      : root_(std::move(root)),
        entries_(entries),
        left_(new std::atomic<size_t>[entries.size()]),
        synced_(entries.size() + 1) {}
  ~TreeWriter() {
    for (int fd : fds_) {
      if (fd >= 0) ::close(fd);
    }
  }

  std::string PathOf(const TreeEntry& e) const {
    return e.path == "." ? root_ : root_ + "/" + e.path;
  }
  // Files whose last chunk is written; closed when every file is.
  BoundedQueue<size_t>& finished() { return synced_; }

  // Directories and empty, pre-sized files; `slots[i]` chunks to come for
  // entry i.
  absl::Status Create(const std::vector<size_t>& slots) {
    fds_.assign(entries_.size(), -1);
    files_left_ = static_cast<size_t>(std::count_if(
        entries_.begin(), entries_.end(),
        [](const auto& e) { return e.type == EntryType::kFile; }));
    if (files_left_ == 0) synced_.Close();
    for (size_t i = 0; i < entries_.size(); ++i) {
      const TreeEntry& e = entries_[i];
      const std::string p = PathOf(e);
      left_[i] = slots[i];
      if (e.type == EntryType::kDir) {
        if (e.path != "." && ::mkdir(p.c_str(), 0700) != 0) {
          return ErrnoStatus(errno, "mkdir " + p);
        }
      } else if (e.type == EntryType::kFile) {
        fds_[i] =
            ::open(p.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fds_[i] < 0) return ErrnoStatus(errno, "create " + p);
        if (::ftruncate(fds_[i], static_cast<off_t>(e.size)) != 0) {
          return ErrnoStatus(errno, "size " + p);
        }
        if (slots[i] == 0) BKV_RETURN_IF_ERROR(Finish(i));
      }
    }
    return absl::OkStatus();
  }

  absl::Status Write(const Slot& slot, std::span<const uint8_t> data) {
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n =
          ::pwrite(fds_[slot.entry], data.data() + done, data.size() - done,
                   static_cast<off_t>(slot.offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0)
        return ErrnoStatus(errno, "write " + PathOf(entries_[slot.entry]));
      done += static_cast<size_t>(n);
    }
    // Writeback of this chunk starts now, so a large file's fsync does not
    // find all of it still dirty after its last chunk.
    (void)::sync_file_range(fds_[slot.entry], static_cast<off_t>(slot.offset),
                            static_cast<off_t>(data.size()),
                            SYNC_FILE_RANGE_WRITE);
    if (left_[slot.entry].fetch_sub(1) == 1) return Finish(slot.entry);
    return absl::OkStatus();
  }

  // A sync thread: fsyncs and closes finished files until all are.
  absl::Status RunSync() {
    for (;;) {
      BKV_ASSIGN_OR_RETURN(std::optional<size_t> i, synced_.Pop());
      if (!i) return absl::OkStatus();
      BKV_RETURN_IF_ERROR(SyncFd(fds_[*i], PathOf(entries_[*i])));
      ::close(std::exchange(fds_[*i], -1));
    }
  }

 private:
  // The file's last chunk is written: its mode and times, and writeback
  // starts now so its fsync on a sync thread has less to wait for.
  absl::Status Finish(size_t i) {
    const TreeEntry& e = entries_[i];
    BKV_RETURN_IF_ERROR(SetMeta(PathOf(e), e));
    (void)::sync_file_range(fds_[i], 0, 0, SYNC_FILE_RANGE_WRITE);
    BKV_RETURN_IF_ERROR(synced_.Push(i));
    if (files_left_.fetch_sub(1) == 1) synced_.Close();
    return absl::OkStatus();
  }

  const std::string root_;
  const std::vector<TreeEntry>& entries_;
  std::unique_ptr<std::atomic<size_t>[]> left_;
  std::vector<int> fds_;
  std::atomic<size_t> files_left_{0};
  BoundedQueue<size_t> synced_;  // never full: one slot per entry
};

// Every file and directory under `root` is written and durable on return.
absl::Status Repository::WriteTree(const std::string& root,
                                   const std::vector<TreeEntry>& entries,
                                   const std::map<ChunkId, Located>& chunks) {
  std::map<ObjectId, PackPlan> plan;
  std::vector<size_t> slots(entries.size(), 0);
  for (size_t i = 0; i < entries.size(); ++i) {
    const TreeEntry& e = entries[i];
    if (e.type != EntryType::kFile) continue;
    uint64_t off = 0;
    for (const ChunkId& c : e.chunks) {
      const Located& l = chunks.at(c);
      plan[l.pack][c].push_back({i, off});
      off += l.loc.raw_size;
      ++slots[i];
    }
    if (off != e.size) {
      return absl::DataLossError("snapshot entry " + e.path +
                                 ": its chunks do not add up to its size");
    }
  }
  TreeWriter writer(root, entries);
  BKV_RETURN_IF_ERROR(writer.Create(slots));
  BKV_RETURN_IF_ERROR(RestorePacks(plan, chunks, writer));
  for (const TreeEntry& e : entries) {
    if (e.type != EntryType::kSymlink) continue;
    if (::symlink(e.link_target.c_str(), writer.PathOf(e).c_str()) != 0) {
      return ErrnoStatus(errno, "symlink " + writer.PathOf(e));
    }
  }
  // Deepest first, so setting a directory's time is not undone by its
  // children; each synced after its entries (symlinks included) exist.
  for (auto it = entries.rbegin(); it != entries.rend(); ++it) {
    if (it->type == EntryType::kFile) continue;  // done by the writer
    BKV_RETURN_IF_ERROR(SetMeta(writer.PathOf(*it), *it));
    if (it->type == EntryType::kDir) {
      BKV_RETURN_IF_ERROR(SyncDir(writer.PathOf(*it)));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<uint8_t>> Repository::FetchPack(
    const ObjectId& pack, std::vector<uint8_t> bytes) {
  bytes.clear();
  // The largest a pack may be, whatever this one's size: a reused buffer
  // then never reallocates (a fresh 16 MiB per pack was a quarter of the
  // restore's CPU in page faults); untouched capacity costs no memory.
  bytes.reserve(kMaxPackBytes);
  absl::Status s = store_.Get(PackName(pack), [&](std::span<const uint8_t> d) {
    if (bytes.size() + d.size() > kMaxPackBytes) {
      return absl::DataLossError(PackName(pack) + " is larger than any pack");
    }
    bytes.insert(bytes.end(), d.begin(), d.end());
    return absl::OkStatus();
  });
  if (absl::IsNotFound(s)) {
    return absl::DataLossError(PackName(pack) +
                               " is missing: the store dropped it");
  }
  if (!s.ok()) return s;
  return bytes;
}

absl::Status Repository::RestorePacks(const std::map<ObjectId, PackPlan>& plan,
                                      const std::map<ChunkId, Located>& chunks,
                                      TreeWriter& writer) {
  using Fetched = std::pair<const PackPlan*, std::vector<uint8_t>>;
  // One pack waiting while two are being written: memory stays at a few
  // packs whatever the size of the restore. Their buffers are reused.
  BoundedQueue<std::pair<ObjectId, Fetched>> fetched(1);
  BufferPool buffers(4 * kMaxPackBytes);
  Pipeline stages;
  // Both queues before any stage runs: a stage's error cancels only the
  // queues watched by then.
  stages.Watch(fetched);
  stages.Watch(writer.finished());
  stages.Run([&]() -> absl::Status {  // the only thread using the store
    for (const auto& [pack, wanted] : plan) {
      BKV_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes,
                           FetchPack(pack, buffers.Take()));
      BKV_RETURN_IF_ERROR(
          fetched.Push({pack, Fetched{&wanted, std::move(bytes)}}));
    }
    fetched.Close();
    return absl::OkStatus();
  });
  auto write = [&]() -> absl::Status {
    ChunkBuffers reused;
    for (;;) {
      BKV_ASSIGN_OR_RETURN(auto next, fetched.Pop());
      if (!next) return absl::OkStatus();
      const ObjectId& pack = next->first;
      const auto& [wanted, bytes] = next->second;
      BKV_RETURN_IF_ERROR(ParsePackHeader(pack, bytes).status());
      for (const auto& [id, slots] : *wanted) {
        auto raw = OpenChunkInto(chunks.at(id).loc, bytes, reused,
                                 IdCheck::kTrustSeal);
        if (!raw.ok()) {
          return absl::DataLossError(
              absl::StrCat(PackName(pack), ": ", raw.status().message()));
        }
        for (const Slot& slot : slots) {
          BKV_RETURN_IF_ERROR(writer.Write(slot, *raw));
        }
      }
      buffers.Give(std::move(next->second.second));
    }
  };
  stages.Run(write);
  stages.Run(write);
  // fsync waits for the disk, not a core: two so one slow file does not
  // hold up the rest (concurrent fsyncs share a journal commit).
  stages.Run([&] { return writer.RunSync(); });
  stages.Run([&] { return writer.RunSync(); });
  return stages.Join();
}

absl::StatusOr<RepoCheckReport> Repository::Check(bool read_data) {
  RepoCheckReport rep;
  auto objects = ListObjects();
  if (!objects.ok()) return objects.status();
  std::map<ChunkId, Located> chunks;
  if (auto s = LoadIndexes(*objects, chunks, &rep.problems); !s.ok()) return s;
  std::set<ObjectId> packs, indexes;
  for (const auto& [id, l] : chunks) {
    indexes.insert(l.index);
    if (!packs.insert(l.pack).second) continue;
    auto it = objects->find(PackName(l.pack));
    if (it == objects->end()) {
      rep.problems.push_back(PackName(l.pack) +
                             ": missing (the store dropped it)");
    } else if (it->second != l.pack_size) {
      rep.problems.push_back(absl::StrCat(
          PackName(l.pack), ": ", it->second, " bytes, the index says ",
          l.pack_size, " (truncated or replaced)"));
    }
  }
  rep.indexes = indexes.size();
  rep.packs = packs.size();
  rep.chunks = chunks.size();
  for (const auto& [name, size] : *objects) {
    ObjectId p;
    if (absl::StartsWith(name, "pack-") &&
        ParseObjectIdHex(name.substr(5), p) && !packs.contains(p)) {
      rep.notes.push_back(name +
                          ": in no index (an interrupted backup; the "
                          "next backup adopts it)");
    }
  }
  auto snaps = AllSnapshots(*objects, &rep.problems);
  if (!snaps.ok()) return snaps.status();
  rep.snapshots = snaps->size();
  std::set<std::string> trees;
  for (const auto& [name, snap] : *snaps) {
    if (snap.tree) trees.insert(TreeName(*snap.tree));
  }
  for (const auto& [name, size] : *objects) {
    if (absl::StartsWith(name, "tree-") && !trees.contains(name)) {
      rep.notes.push_back(name +
                          ": named by no readable snapshot (forgotten, or an "
                          "interrupted backup; prune deletes it)");
    }
  }
  uint64_t newest = snaps->empty() ? 0 : snaps->back().second.seq;
  if (newest < head_seq_) {
    rep.problems.push_back(absl::StrCat(
        "head names snapshot number ", head_seq_, " but the newest is ", newest,
        ": the store dropped snapshots"));
  }
  for (const auto& [name, snap] : *snaps) {
    size_t missing = 0;
    for (const TreeEntry& e : snap.entries) {
      for (const ChunkId& c : e.chunks) {
        if (!chunks.contains(c)) ++missing;
      }
    }
    if (missing > 0) {
      rep.problems.push_back(
          absl::StrCat(name, ": ", missing,
                       " chunk references are in no index (an "
                       "index was dropped)"));
    }
  }
  if (read_data) {
    if (auto s = CheckReadData(chunks, rep); !s.ok()) return s;
  }
  return rep;
}

absl::Status Repository::CheckReadData(const std::map<ChunkId, Located>& chunks,
                                       RepoCheckReport& rep) {
  std::map<ObjectId, std::vector<const Located*>> by_pack;
  for (const auto& [id, l] : chunks) by_pack[l.pack].push_back(&l);
  ChunkBuffers reused;
  for (const auto& [pack, locs] : by_pack) {
    auto bytes = GetBytes(store_, PackName(pack), kMaxPackBytes);
    if (!bytes.ok()) {
      if (!absl::IsNotFound(bytes.status())) {
        rep.problems.push_back(std::string(bytes.status().message()));
      }
      continue;
    }
    if (auto h = ParsePackHeader(pack, *bytes); !h.ok()) {
      rep.problems.push_back(std::string(h.status().message()));
    }
    for (const Located* l : locs) {
      auto raw = OpenChunkInto(l->loc, *bytes, reused);
      if (raw.ok()) {
        ++rep.chunks_read;
      } else {
        rep.problems.push_back(
            absl::StrCat(PackName(pack), ": ", raw.status().message()));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace bkv
