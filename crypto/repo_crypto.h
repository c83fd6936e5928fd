#ifndef BKV_CRYPTO_REPO_CRYPTO_H_
#define BKV_CRYPTO_REPO_CRYPTO_H_

// Keys, chunk ids, chunk boundaries and object sealing of the repository
// format v2 (docs/backup-format.md, "Repository format v2").
//
//   prk      = HKDF-Extract("bkv repo v2", backup key)          (HKDF-SHA512)
//   data key = HKDF-Expand(prk, "bkv repo v2 data key", 32)
//   id key   = HKDF-Expand(prk, "bkv repo v2 chunk id key", 32)
//   gear     = HKDF-Expand(prk, "bkv repo v2 gear table", 2048) as 256 u64 LE
//   check    = HKDF-Expand(prk, "bkv repo v2 key check", 32)  (in the config)
//   chunk id = HMAC-SHA512(id key, plaintext)[0..32]
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

  static RepoKeys Derive(const BackupKey& key);

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
  RepoKeys() = default;
  SecretBytes data_key_;
  SecretBytes id_key_;
  SecretBytes check_;
  std::array<uint64_t, 256> gear_{};
};

}  // namespace bkv

#endif  // BKV_CRYPTO_REPO_CRYPTO_H_
