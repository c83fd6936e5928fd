#ifndef BKV_CLIENT_REPO_REPO_CODEC_H_
#define BKV_CLIENT_REPO_REPO_CODEC_H_

// Plaintext encodings of the repository v2 objects (docs/backup-format.md).
// All integers big-endian; strings are u32 length || bytes. Decoders reject
// any trailing byte and any length past the end.

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "crypto/repo_crypto.h"

namespace bkv {

using ObjectId = std::array<uint8_t, 16>;

// Where one chunk lives: a sealed blob inside a pack.
struct BlobLocation {
  ChunkId id{};
  uint32_t offset = 0;    // in the pack
  uint32_t length = 0;    // sealed bytes
  uint32_t raw_size = 0;  // plaintext bytes
};

struct PackRecord {
  ObjectId pack{};
  uint64_t size = 0;  // the pack object's size
  std::vector<BlobLocation> blobs;
};

struct IndexFile {
  std::vector<PackRecord> packs;
};

enum class EntryType : uint8_t { kDir = 0, kFile = 1, kSymlink = 2 };

struct TreeEntry {
  std::string path;  // "." for the root, else relative with '/'
  EntryType type = EntryType::kFile;
  uint32_t mode = 0;
  int64_t mtime_ns = 0;
  uint64_t size = 0;
  uint64_t inode = 0;
  std::string link_target;
  std::vector<ChunkId> chunks;
};

struct Snapshot {
  ObjectId repo{};
  ObjectId id{};
  uint64_t seq = 0;
  int64_t time_ms = 0;
  std::string source;
  std::vector<ObjectId> indexes;  // every index its chunks are listed in
  // Format 3: the entries live in the tree object `tree` names (an
  // unchanged tree is stored once); DecodeSnapshot leaves `entries` empty
  // and the reader fills them from the tree. Format 2 holds them inline.
  std::optional<ChunkId> tree;
  std::vector<TreeEntry> entries;
};

struct Head {
  uint64_t seq = 0;
  ObjectId snapshot{};
};

// A writer's claim on the repository (docs/backup-format.md, "Concurrent
// writers"): shared for backups, exclusive for prune.
struct LockRecord {
  bool exclusive = false;
  int64_t time_ms = 0;  // the last refresh, on the writer's clock
  uint32_t pid = 0;
  std::string host;
};

std::vector<uint8_t> EncodeIndex(const IndexFile& index);
absl::StatusOr<IndexFile> DecodeIndex(std::span<const uint8_t> bytes);
// Format 3 (needs snap.tree); decodes formats 2 and 3.
std::vector<uint8_t> EncodeSnapshot(const Snapshot& snap);
absl::StatusOr<Snapshot> DecodeSnapshot(std::span<const uint8_t> bytes);
// A snapshot's tree object (format 3): its entries.
std::vector<uint8_t> EncodeTree(const std::vector<TreeEntry>& entries);
absl::StatusOr<std::vector<TreeEntry>> DecodeTree(
    std::span<const uint8_t> bytes);
// The sealed header at the end of a pack (`... || H || u32 len(H)`), as
// the store served it: DataLoss when the pack is too short for its length.
absl::StatusOr<std::span<const uint8_t>> PackHeaderOf(
    std::span<const uint8_t> pack);
std::vector<uint8_t> EncodeHead(const Head& head);
absl::StatusOr<Head> DecodeHead(std::span<const uint8_t> bytes);
std::vector<uint8_t> EncodeLock(const LockRecord& lock);
absl::StatusOr<LockRecord> DecodeLock(std::span<const uint8_t> bytes);

}  // namespace bkv

#endif  // BKV_CLIENT_REPO_REPO_CODEC_H_
