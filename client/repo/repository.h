#ifndef BKV_CLIENT_REPO_REPOSITORY_H_
#define BKV_CLIENT_REPO_REPOSITORY_H_

// Incremental, deduplicated backups: the repository format v2
// (docs/backup-format.md, "Repository format v2").
//
// Objects in the store, each sealed under the backup key with its kind and
// id in the AES-GCM associated data (crypto/repo_crypto.h):
//   config                         repo id; key check in the clear
//   pack-<32 hex>                  sealed chunks, then a sealed pack header
//   index-<32 hex>                 where each chunk of some packs lives
//   snap-<20 digit seq>-<32 hex>   one snapshot: source, time, its tree's id
//   tree-<64 hex>                  a snapshot's file tree and chunk ids,
//                                  named by its keyed id: stored once
//   head                           the newest sequence number, written last
//   lock-<32 hex>                  a running backup (shared) or prune
//                                  (exclusive), refreshed while it runs
// Order of writes: packs, then their index, then the tree (unless stored),
// then the snapshot, then head, so
// an interrupted backup never leaves a snapshot naming a missing chunk.
// Several clients may write at once (docs/backup-format.md, "Concurrent
// writers"): every object they create has a fresh random name, and a prune
// runs only while no backup holds a fresh lock.
//
// Thread-compatible; one operation at a time.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/blob_store.h"
#include "client/repo/repo_codec.h"
#include "client/repo/repo_lock.h"
#include "crypto/backup_key.h"
#include "crypto/repo_crypto.h"
#include "zstd.h"

namespace bkv {

struct RepoBackupStats;

struct RepoOptions {
  // Create the repository (config) if the store has none.
  bool create = false;
  // Where the client remembers the newest snapshot sequence per repository,
  // to detect a store that rolls back; empty disables the check.
  std::string state_dir;
  // Packs are closed once they hold at least this many sealed bytes.
  size_t pack_target = 16 << 20;
  // A lock not refreshed for this long is stale: prune removes it. Its
  // holder refreshes it every lease/6 and gives up after lease/2 without a
  // refresh, so clocks may differ by up to lease/2.
  int64_t lock_lease_s = 30 * 60;
  // How long a backup waits for a prune's lock to go away.
  int64_t lock_wait_s = 300;
  // Backup: called after each file and each pack with the running totals.
  std::function<void(const RepoBackupStats&)> progress;
  // Backup: record this source path and time (unix ms) in the snapshot
  // instead of the walked path and now (bkv rekey replays snapshots).
  std::string record_source;
  int64_t record_time_ms = 0;
  // Backup: polled between chunks; true stops it with Cancelled. What it
  // uploaded stays in unindexed packs that the next backup adopts.
  std::function<bool()> cancelled;
};

struct RepoBackupStats {
  uint64_t planned_bytes = 0;  // sizes of the files found by the walk
  uint64_t files = 0;
  uint64_t files_read = 0;       // changed or new: read and chunked
  uint64_t files_unchanged = 0;  // size, mtime and inode as in the parent
  uint64_t chunks = 0;           // referenced by the snapshot's files
  uint64_t new_chunks = 0;       // uploaded in this run
  uint64_t bytes = 0;            // plaintext bytes of the snapshot's files
  uint64_t new_bytes = 0;        // plaintext bytes of new chunks
  uint64_t dedup_bytes = 0;      // plaintext bytes found already stored
  uint64_t uploaded_bytes = 0;   // every object written, as stored
  uint64_t packs_uploaded = 0;
  uint64_t packs_adopted = 0;  // left by an interrupted backup, reused
  // Fifos, sockets and devices found by the walk (relative paths): not
  // backed up, reported so that nothing is skipped silently.
  std::vector<std::string> skipped_special;
};

struct SnapshotInfo {
  std::string id;      // 32 hex digits
  std::string object;  // object name in the store
  uint64_t seq = 0;
  int64_t time_ms = 0;
  std::string source;
  uint64_t files = 0;
  uint64_t bytes = 0;
};

struct RepoCheckReport {
  size_t snapshots = 0;
  size_t indexes = 0;
  size_t packs = 0;
  size_t chunks = 0;
  size_t chunks_read = 0;  // with read_data
  std::vector<std::string> problems;
  std::vector<std::string> notes;  // not damage (e.g. unindexed packs)
  bool clean() const { return problems.empty(); }
};

// Which snapshots `bkv forget` keeps: the newest keep_last, and the newest
// snapshot of each of the newest keep_daily days and keep_weekly ISO weeks
// (UTC) that have one. At least one count must be positive.
struct ForgetPolicy {
  size_t keep_last = 0;
  size_t keep_daily = 0;
  size_t keep_weekly = 0;
};

// Pure: for snapshots oldest first, whether each is kept.
std::vector<bool> KeptBy(const ForgetPolicy& policy,
                         const std::vector<SnapshotInfo>& snapshots);

struct PruneStats {
  uint64_t packs_deleted = 0;
  uint64_t packs_repacked = 0;
  uint64_t indexes_deleted = 0;
  uint64_t trees_deleted = 0;
  uint64_t chunks_dropped = 0;
  uint64_t bytes_freed = 0;  // stored bytes deleted, less what was rewritten
};

class Repository {
 public:
  static constexpr char kConfigName[] = "config";
  static constexpr char kHeadName[] = "head";
  // The largest object read: a pack is closed at its target size, so it is
  // at most one chunk larger.
  static constexpr size_t kMaxPackBytes = 64 << 20;

  // PermissionDenied for a wrong key, NotFound for a store without a
  // repository (unless options.create), DataLoss for a damaged config or a
  // head older than the sequence this client remembers.
  static absl::StatusOr<std::unique_ptr<Repository>> Open(
      BlobStore& store, const BackupKey& key, const RepoOptions& options);
  // True when the store holds a v2 repository (its config object).
  static absl::StatusOr<bool> Exists(BlobStore& store);

  // Backs up a file or directory tree; files whose size, mtime and inode
  // match the newest snapshot of the same source are not read again.
  absl::StatusOr<SnapshotInfo> Backup(const std::string& path,
                                      RepoBackupStats* stats = nullptr);

  // Oldest first.
  absl::StatusOr<std::vector<SnapshotInfo>> Snapshots();

  // Restores snapshot `id` (a unique prefix; empty = newest), or only
  // `subpath` of it, to `target`, which must not exist. Written to a
  // temporary next to it, every chunk verified, then renamed; nothing is
  // left behind on failure.
  absl::StatusOr<SnapshotInfo> Restore(const std::string& id,
                                       const std::string& subpath,
                                       const std::string& target);

  // Structure: every object authenticates, every referenced chunk is in an
  // index and every indexed pack exists with its size; with read_data every
  // chunk is downloaded and verified. Errors only when the store fails.
  absl::StatusOr<RepoCheckReport> Check(bool read_data);

  // Deletes every snapshot but the newest `keep_last` (>= 1); their data
  // stays until Prune. Returns the forgotten snapshots.
  absl::StatusOr<std::vector<SnapshotInfo>> Forget(size_t keep_last);
  // Deletes the snapshots `policy` does not keep (KeptBy).
  absl::StatusOr<std::vector<SnapshotInfo>> Forget(const ForgetPolicy& policy);

  // Mark and sweep: repacks the live chunks of partly used packs, writes
  // one index of every live chunk, then deletes the old indexes, then the
  // packs no longer indexed. Killed at any step, every snapshot still
  // restores: nothing is deleted before what replaces it is stored.
  // Unavailable, changing nothing, while another client holds a fresh lock
  // (a backup or a prune is running).
  absl::StatusOr<PruneStats> Prune();

  const ObjectId& repo_id() const { return repo_id_; }

  ~Repository();

 private:
  struct Located {
    ObjectId pack{};
    ObjectId index{};
    BlobLocation loc;
    uint64_t pack_size = 0;
  };
  class Packer;
  class Reader;

  Repository(BlobStore& store, RepoKeys keys, RepoOptions options);
  absl::Status LoadConfig();
  absl::Status ParseConfig(std::span<const uint8_t> bytes);
  absl::Status LoadHead();
  absl::Status Remember(uint64_t seq);
  absl::StatusOr<std::map<std::string, uint64_t>> ListObjects();
  absl::Status LoadIndexes(const std::map<std::string, uint64_t>& objects,
                           std::map<ChunkId, Located>& out,
                           std::vector<std::string>* problems);
  // With its entries (format 3: read from its tree object).
  absl::StatusOr<Snapshot> ReadSnapshot(const std::string& object);
  // DataLoss for a missing or damaged tree.
  absl::StatusOr<std::vector<TreeEntry>> ReadTree(const ChunkId& tree);
  // Stores the tree of `snap` unless an intact copy is already stored.
  absl::Status StoreTree(Snapshot& snap, RepoBackupStats& st);
  // `if_absent`: with the store's create-only put where it has one
  // (AlreadyExists when a config appeared meanwhile).
  absl::Status WriteConfig(bool if_absent);
  absl::Status CreateConfig();
  absl::StatusOr<std::vector<std::pair<std::string, Snapshot>>> AllSnapshots(
      const std::map<std::string, uint64_t>& objects,
      std::vector<std::string>* problems);
  // The pack's own header (it authenticates and names this pack).
  absl::StatusOr<PackRecord> ParsePackHeader(const ObjectId& pack,
                                             std::span<const uint8_t> bytes);
  absl::StatusOr<PackRecord> ReadPackHeader(const ObjectId& pack,
                                            std::vector<uint8_t>& bytes);
  absl::StatusOr<std::vector<uint8_t>> OpenChunk(const BlobLocation& loc,
                                                 std::span<const uint8_t> pack);
  // One reader thread's reused buffers for OpenChunkInto.
  struct ChunkBuffers {
    std::vector<uint8_t> plaintext, raw;
    std::unique_ptr<ZSTD_DCtx, size_t (*)(ZSTD_DCtx*)> dctx{nullptr,
                                                            ZSTD_freeDCtx};
    ZSTD_DCtx* Dctx() {
      if (!dctx) dctx.reset(ZSTD_createDCtx());
      return dctx.get();
    }
    // Keyed once, when the first id is recomputed with these buffers.
    std::unique_ptr<ChunkIdHasher> hasher;
  };
  // Whether the keyed id is recomputed after a chunk opened. Restore trusts
  // the seal (the GCM tag binds the bytes to their id under a key the store
  // lacks); check --read-data and prune recompute it to catch a writer's bug
  // (docs/backup-format.md, "What a restore verifies").
  enum class IdCheck { kRecompute, kTrustSeal };
  // The chunk's raw bytes, valid until `buffers` is used again.
  absl::StatusOr<std::span<const uint8_t>> OpenChunkInto(
      const BlobLocation& loc, std::span<const uint8_t> pack,
      ChunkBuffers& buffers, IdCheck check = IdCheck::kRecompute);
  // Restore (repo_restore.cc): where each chunk of each pack goes.
  struct Slot {
    size_t entry;  // index into the selected entries
    uint64_t offset;
  };
  using PackPlan = std::map<ChunkId, std::vector<Slot>>;
  class TreeWriter;
  absl::Status WriteTree(const std::string& root,
                         const std::vector<TreeEntry>& entries,
                         const std::map<ChunkId, Located>& chunks);
  // Downloads the planned packs on one thread while two others verify
  // their chunks and write them and two more fsync the finished files.
  absl::Status RestorePacks(const std::map<ObjectId, PackPlan>& plan,
                            const std::map<ChunkId, Located>& chunks,
                            TreeWriter& writer);
  // Into `bytes` (a reused buffer; its contents are replaced).
  absl::StatusOr<std::vector<uint8_t>> FetchPack(const ObjectId& pack,
                                                 std::vector<uint8_t> bytes);
  absl::Status CheckReadData(const std::map<ChunkId, Located>& chunks,
                             RepoCheckReport& rep);
  absl::Status AdoptPacks(const std::map<std::string, uint64_t>& objects,
                          std::map<ChunkId, Located>& known, IndexFile& index,
                          const ObjectId& index_id, RepoBackupStats& st);
  absl::Status BackupFile(const std::string& abs, TreeEntry& entry,
                          const std::map<std::string, const TreeEntry*>& parent,
                          const std::map<ChunkId, Located>& known,
                          Reader& reader, Packer& packer, RepoLock& lock,
                          RepoBackupStats& st);
  absl::Status AddChunk(const ChunkId& id, std::span<const uint8_t> chunk,
                        const std::map<ChunkId, Located>& known, Packer& packer,
                        TreeEntry& entry, RepoBackupStats& st);
  // Prune's repack and its new index (repo_backup.cc).
  absl::Status Repack(const std::map<ChunkId, Located>& chunks,
                      const std::set<ChunkId>& live, RepoLock& lock,
                      Packer& packer, std::set<ObjectId>& doomed,
                      PruneStats& ps);
  absl::Status SweepTrees(
      const std::map<std::string, uint64_t>& objects,
      const std::vector<std::pair<std::string, Snapshot>>& snaps,
      PruneStats& ps);
  absl::Status WriteLiveIndex(const std::map<ChunkId, Located>& chunks,
                              const std::set<ChunkId>& live,
                              const std::set<ObjectId>& doomed,
                              std::vector<PackRecord>& repacked,
                              RepoBackupStats& st);
  absl::StatusOr<SnapshotInfo> CommitSnapshot(Snapshot& snap,
                                              RepoBackupStats& st);
  // Sequence numbers are taken when a snapshot is written, not when its
  // backup started, so concurrent backups rarely share one.
  absl::StatusOr<uint64_t> NextSeq();
  // Head only moves forward: a slower concurrent writer leaves it alone.
  absl::Status AdvanceHead(const Head& head, RepoBackupStats& st);
  absl::StatusOr<uint64_t> ReadHeadSeq();
  absl::StatusOr<std::pair<std::string, Snapshot>> Choose(
      const std::string& id);
  absl::Status PutObject(const std::string& name,
                         std::span<const uint8_t> bytes, RepoBackupStats& st);

  BlobStore& store_;
  // Held by whoever calls store_ while a Packer's upload stage runs.
  std::mutex store_mu_;
  RepoKeys keys_;
  RepoOptions options_;
  ObjectId repo_id_{};
  uint16_t config_version_ = 0;
  // From the config; keys_ computes ids with it once Open has checked.
  ChunkIdFunction id_function_ = ChunkIdFunction::kHmacSha256;
  uint64_t head_seq_ = 0;
};

std::string ObjectIdHex(const ObjectId& id);
bool ParseObjectIdHex(std::string_view hex, ObjectId& out);
std::string PackName(const ObjectId& id);
std::string IndexName(const ObjectId& id);
std::string SnapshotName(uint64_t seq, const ObjectId& id);
std::string TreeName(const ChunkId& id);
// Associated data of a tree object: repo id || tree id.
std::vector<uint8_t> TreeAd(const ObjectId& repo, const ChunkId& tree);

}  // namespace bkv

#endif  // BKV_CLIENT_REPO_REPOSITORY_H_
