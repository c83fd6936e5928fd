#ifndef BKV_CRYPTO_BACKUP_FORMAT_H_
#define BKV_CRYPTO_BACKUP_FORMAT_H_

// The bkv backup stream format, version 1 (docs/backup-format.md).
//
// A backup is one byte stream: a fixed header, then one or more sealed chunks
// of exactly the same size. Chunks follow the STREAM construction (Hoang,
// Reyhanitabar, Rogaway, Vizar 2015): each nonce carries the chunk counter and
// a last-chunk flag, so truncation, reordering, duplication and trailing data
// fail authentication.
//
//   header (108 bytes, all integers big-endian)
//   +--------+------+------------------------------------------------------+
//   | offset | size | field                                                |
//   +--------+------+------------------------------------------------------+
//   |      0 |    8 | magic "BKVBAK\r\n"                                   |
//   |      8 |    2 | format version = 1                                   |
//   |     10 |    1 | cipher = 1 (AES-256-GCM, keys from HKDF-SHA512)      |
//   |     11 |    1 | compression: 0 none, 1 zstd (before encryption)      |
//   |     12 |    1 | content: 0 one file, 1 pax archive of a tree         |
//   |     13 |    3 | reserved, zero                                       |
//   |     16 |    4 | chunk size C: plaintext bytes per chunk, 256..16 MiB |
//   |     20 |   32 | salt, random per backup                              |
//   |     52 |   16 | backup id, random per backup                         |
//   |     68 |   32 | key commitment                                       |
//   |    100 |    8 | check: SHA-512(bytes 0..99)[0..8], unkeyed           |
//   +--------+------+------------------------------------------------------+
//
//   fields = header[0..68)
//   prk    = HKDF-Extract(salt, backup key)
//   K      = HKDF-Expand(prk, "bkv backup v1 data key"       || fields, 32)
//   commit = HKDF-Expand(prk, "bkv backup v1 key commitment" || fields, 32)
//   P      = HKDF-Expand(prk, "bkv backup v1 nonce prefix"   || fields, 7)
//   AD     = SHA-512(header)[0..32]
//
//   chunk i (every chunk is C + 16 bytes)
//   +------------------------------+----------+
//   | AES-256-GCM(K, nonce_i, pt)  | tag (16) |   nonce_i = P || u32(i) || last
//   +------------------------------+----------+   last = 1 on the final chunk
//
// Non-final chunks carry exactly C plaintext bytes. The final chunk carries
// 0..C-1 bytes padded to C as  data || 0x80 || 0x00...  (ISO/IEC 7816-4), so
// every chunk has the same size and a cut or an append is always visible at a
// chunk boundary. A stream whose length is an exact multiple of C ends with a
// full chunk and a final chunk holding no data.
//
// The commitment binds the key to the header: a wrong key fails in the header,
// before any chunk is opened. The unkeyed check only tells accidental header
// corruption apart from a wrong key; it is not what makes the header
// authentic (the commitment and AD are).

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "crypto/backup_key.h"
#include "crypto/random.h"
#include "crypto/secret_bytes.h"

namespace bkv {

enum class BackupCompression : uint8_t { kNone = 0, kZstd = 1 };
enum class BackupContent : uint8_t { kFile = 0, kTree = 1 };

struct BackupParams {
  uint32_t chunk_size = 64 * 1024;
  BackupCompression compression = BackupCompression::kNone;
  BackupContent content = BackupContent::kFile;
};

// A structurally valid header; says nothing yet about the key.
class BackupHeader {
 public:
  static constexpr size_t kSize = 108;
  static constexpr size_t kSaltSize = 32;
  static constexpr size_t kIdSize = 16;
  static constexpr uint32_t kMinChunkSize = 256;
  static constexpr uint32_t kMaxChunkSize = 16 << 20;

  // Checks magic, check value, version, cipher and field ranges. Errors:
  // InvalidArgument (not a bkv backup), DataLoss (corrupted header),
  // Unimplemented (a newer version or an unknown algorithm).
  static absl::StatusOr<BackupHeader> Parse(std::span<const uint8_t> bytes);

  std::span<const uint8_t> bytes() const { return bytes_; }
  uint16_t version() const;
  BackupCompression compression() const;
  BackupContent content() const;
  uint32_t chunk_size() const;
  std::span<const uint8_t> salt() const;
  std::span<const uint8_t> backup_id() const;
  std::span<const uint8_t> commitment() const;
  // Lower-case hex of the backup id.
  std::string BackupIdHex() const;

 private:
  friend class BackupEncryptor;
  BackupHeader() = default;
  std::array<uint8_t, kSize> bytes_{};
};

// Bytes of one sealed chunk for a plaintext chunk size.
inline size_t SealedChunkSize(uint32_t chunk_size) { return chunk_size + 16; }

class ChunkCipher;  // backup_format.cc

// Writes a backup: Create() draws salt and id, then the caller emits header()
// followed by one SealChunk() per full chunk and exactly one SealFinalChunk().
// Not thread-safe; one instance per backup.
class BackupEncryptor {
 public:
  static absl::StatusOr<BackupEncryptor> Create(
      const BackupKey& key, const BackupParams& params,
      const RandomSource& random = SystemRandom());
  BackupEncryptor(BackupEncryptor&&) noexcept;
  BackupEncryptor& operator=(BackupEncryptor&&) noexcept;
  ~BackupEncryptor();

  const BackupHeader& header() const { return header_; }
  uint32_t chunk_size() const { return header_.chunk_size(); }

  // plaintext.size() == chunk_size(); out.size() == SealedChunkSize().
  absl::Status SealChunk(std::span<const uint8_t> plaintext,
                         std::span<uint8_t> out);
  // plaintext.size() < chunk_size(); ends the stream.
  absl::Status SealFinalChunk(std::span<const uint8_t> plaintext,
                              std::span<uint8_t> out);

 private:
  BackupEncryptor(BackupHeader header, std::unique_ptr<ChunkCipher> cipher);
  BackupHeader header_;
  std::unique_ptr<ChunkCipher> cipher_;
  uint32_t next_ = 0;
  bool finished_ = false;
};

// Reads a backup pushed to it in pieces of any size. Plaintext reaches the
// sink one authenticated chunk at a time, in order; only after Finish()
// returns OK is the stream known to be complete. A wrong key fails on the
// header, before any plaintext. After an error every call returns it again.
//
// Errors: PermissionDenied for a wrong key; DataLoss naming the chunk for a
// truncated, reordered, duplicated, spliced, modified or extended stream;
// header errors as BackupHeader::Parse. Not thread-safe.
class BackupDecryptor {
 public:
  using Sink = std::function<absl::Status(std::span<const uint8_t>)>;

  explicit BackupDecryptor(const BackupKey& key);
  BackupDecryptor(BackupDecryptor&&) noexcept;
  ~BackupDecryptor();

  // Binds the stream to the id its list gives it (32 lower-case hex
  // digits): a header with another id, authentic or not, fails with DataLoss
  // before any plaintext. Call before the first Update().
  void ExpectBackupId(std::string id_hex) { expected_id_ = std::move(id_hex); }

  absl::Status Update(std::span<const uint8_t> in, const Sink& sink);
  absl::Status Finish(const Sink& sink);

  // Set once the header has been parsed and the key verified.
  const std::optional<BackupHeader>& header() const { return header_; }

 private:
  absl::Status Fail(absl::Status status);
  absl::Status OnHeader();
  absl::Status OpenPending(bool last, const Sink& sink);
  absl::Status Diagnose(bool last);

  BackupKey key_;
  std::optional<BackupHeader> header_;
  std::unique_ptr<ChunkCipher> cipher_;
  std::vector<uint8_t> pending_;
  std::vector<uint8_t> plain_;
  size_t sealed_size_ = 0;
  uint32_t index_ = 0;
  absl::Status error_;
  std::optional<std::string> expected_id_;
  bool finished_ = false;
};

// Whole-buffer helpers for tests, fuzzers and small objects.
absl::StatusOr<std::vector<uint8_t>> EncryptBackup(
    const BackupKey& key, const BackupParams& params,
    std::span<const uint8_t> plaintext);
absl::StatusOr<std::vector<uint8_t>> DecryptBackup(
    const BackupKey& key, std::span<const uint8_t> backup);

}  // namespace bkv

#endif  // BKV_CRYPTO_BACKUP_FORMAT_H_
