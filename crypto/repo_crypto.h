#ifndef BKV_CRYPTO_REPO_CRYPTO_H_
#define BKV_CRYPTO_REPO_CRYPTO_H_

// Keys, chunk ids, chunk boundaries and object sealing of the repository
// format v2 (docs/backup-format.md, "Repository format v2").
//
//   prk      = HKDF-Extract("bkv repo v2", backup key)          (HKDF-SHA512)
//   data key = HKDF-Expand(prk, "bkv repo v2 data key", 32)
//   gear     = HKDF-Expand(prk, "bkv repo v2 gear table", 2048) as 256 u64 LE
//   check    = HKDF-Expand(prk, "bkv repo v2 key check", 32)  (in the config)
//   chunk id = the repository's function (its config), one of
//     1: HMAC-SHA512(HKDF-Expand(prk, "bkv repo v2 chunk id key", 32),
//                    plaintext)[0..32]
//     2: HMAC-SHA256(HKDF-Expand(prk, "bkv repo v2 chunk id key hmac-sha256",
//                                32), plaintext)
//   sealed   = nonce (12, random) || AES-256-GCM(data key, nonce, pt, AD) ||
//   tag AD       = "bkv repo v2 " || kind || 0x00 || object id

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "crypto/backup_key.h"
#include "crypto/reusable_hmac.h"
#include "crypto/secret_bytes.h"

namespace bkv {

using ChunkId = std::array<uint8_t, 32>;

// What a sealed object is; part of its AD, so an object of one kind never
// opens as another.
enum class RepoObjectKind {
  kConfig,
  kChunk,
  kPackHeader,
  kIndex,
  kSnapshot,
  kHead,
  kLock,
  kTree
};

// The chunk-id function of a repository, as its config stores it (u16).
// One repository uses one function for good (docs/backup-format.md, "The
// chunk-id function").
enum class ChunkIdFunction : uint16_t {
  kHmacSha512Trunc = 1,  // config versions 2 and 3
  kHmacSha256 = 2,       // repositories created since config version 4
};

// Content-defined chunk sizes (FastCDC with normalized chunking, level 2).
struct ChunkerParams {
  static constexpr uint32_t kMin = 128 << 10;
  static constexpr uint32_t kAvgBits = 19;  // 512 KiB
  static constexpr uint32_t kMax = 2 << 20;
};

class RepoKeys {
 public:
  static constexpr size_t kNonceSize = 12;
  static constexpr size_t kTagSize = 16;
  static constexpr size_t kOverhead = kNonceSize + kTagSize;

  // `id_function` is the repository's (its config's); no default, so no
  // caller computes ids of the wrong function without a sound (review #7).
  static RepoKeys Derive(const BackupKey& key, ChunkIdFunction id_function);

  ChunkIdFunction id_function() const { return id_function_; }
  // One id; a loop over many chunks uses a ChunkIdHasher instead.
  ChunkId IdOf(std::span<const uint8_t> plaintext) const;
  // Stored in the clear in the config: tells a wrong key from damage.
  std::span<const uint8_t> key_check() const { return check_.Reveal(); }

  // Length of the chunk starting at data[0]: data.size() when no boundary
  // is found before it (the caller then supplies at least kMax bytes unless
  // at the end of its input).
  size_t FindBoundary(std::span<const uint8_t> data) const;

  absl::StatusOr<std::vector<uint8_t>> Seal(
      RepoObjectKind kind, std::span<const uint8_t> id,
      std::span<const uint8_t> plaintext) const;
  // The same appended to `out` (which keeps its capacity between calls).
  absl::Status SealAppend(RepoObjectKind kind, std::span<const uint8_t> id,
                          std::span<const uint8_t> plaintext,
                          std::vector<uint8_t>& out) const;
  // Into `out` (resized to the plaintext; keeps its capacity between
  // calls, so a reader reusing it allocates and faults no new pages).
  absl::Status OpenTo(RepoObjectKind kind, std::span<const uint8_t> id,
                      std::span<const uint8_t> sealed,
                      std::vector<uint8_t>& out) const;
  // DataLoss when the object does not authenticate under this id and kind.
  absl::StatusOr<std::vector<uint8_t>> Open(
      RepoObjectKind kind, std::span<const uint8_t> id,
      std::span<const uint8_t> sealed) const;

 private:
  friend class ChunkIdHasher;
  RepoKeys() = default;
  ChunkIdFunction id_function_ = ChunkIdFunction::kHmacSha256;
  SecretBytes data_key_;
  SecretBytes id_key_;  // the id function's own key
  SecretBytes check_;
  std::array<uint64_t, 256> gear_{};
};

// The chunk ids of one repository through one MAC context: one per thread
// that hashes many chunks (no context allocated per chunk; re-keyed per
// chunk, see ReusableHmac). Not thread-safe; it keeps its own copy of the
// key (SecretBytes).
class ChunkIdHasher {
 public:
  explicit ChunkIdHasher(const RepoKeys& keys);
  ChunkId Id(std::span<const uint8_t> plaintext);

 private:
  ReusableHmac mac_;
};

}  // namespace bkv

#endif  // BKV_CRYPTO_REPO_CRYPTO_H_
