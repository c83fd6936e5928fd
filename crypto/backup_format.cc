#include "crypto/backup_format.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "crypto/hash.h"
#include "crypto/hex.h"
#include "crypto/status_macros.h"

namespace bkv {
namespace {

constexpr uint8_t kMagic[8] = {'B', 'K', 'V', 'B', 'A', 'K', '\r', '\n'};
constexpr uint16_t kVersion = 1;
constexpr uint8_t kCipherAes256GcmHkdfSha512 = 1;
constexpr size_t kFieldsSize = 68;
constexpr size_t kCheckOffset = 100;
constexpr size_t kCheckSize = 8;
constexpr size_t kTagSize = 16;
constexpr size_t kPrefixSize = 7;
constexpr size_t kAdSize = 32;
// How far from its position a misplaced chunk is looked for when explaining
// a failure; only the error path pays for it.
constexpr uint32_t kDiagnoseWindow = 64;

uint32_t LoadBe32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) |
         (uint32_t{p[2]} << 8) | p[3];
}
void StoreBe32(uint8_t* p, uint32_t v) {
  p[0] = v >> 24;
  p[1] = v >> 16;
  p[2] = v >> 8;
  p[3] = v;
}

std::array<uint8_t, kCheckSize> HeaderCheck(std::span<const uint8_t> header) {
  Sha512Digest d = Sha512({header.first(kCheckOffset)});
  std::array<uint8_t, kCheckSize> out;
  std::copy_n(d.begin(), kCheckSize, out.begin());
  return out;
}

SecretBytes Derive(const SecretBytes& prk, std::string_view label,
                   std::span<const uint8_t> fields, size_t length) {
  std::vector<uint8_t> info(label.begin(), label.end());
  info.insert(info.end(), fields.begin(), fields.end());
  return HkdfExpand(prk.Reveal(), info, length);
}

struct DerivedKeys {
  SecretBytes data_key;
  SecretBytes commitment;
  SecretBytes prefix;
};

DerivedKeys DeriveKeys(const BackupKey& key, std::span<const uint8_t> header) {
  auto fields = header.first(kFieldsSize);
  SecretBytes prk = HkdfExtract(header.subspan(20, BackupHeader::kSaltSize),
                                key.secret().Reveal());
  return {Derive(prk, "bkv backup v1 data key", fields, 32),
          Derive(prk, "bkv backup v1 key commitment", fields, 32),
          Derive(prk, "bkv backup v1 nonce prefix", fields, kPrefixSize)};
}

}  // namespace

// AES-256-GCM over one reusable EVP context keyed once per backup.
class ChunkCipher {
 public:
  static absl::StatusOr<std::unique_ptr<ChunkCipher>> Create(
      const DerivedKeys& keys, std::span<const uint8_t> header) {
    auto c = std::unique_ptr<ChunkCipher>(new ChunkCipher());
    std::copy_n(keys.prefix.Reveal().begin(), kPrefixSize, c->nonce_.begin());
    Sha512Digest ad = Sha512({header});
    std::copy_n(ad.begin(), kAdSize, c->ad_.begin());
    c->enc_ = EVP_CIPHER_CTX_new();
    c->dec_ = EVP_CIPHER_CTX_new();
    if (c->enc_ == nullptr || c->dec_ == nullptr ||
        EVP_EncryptInit_ex(c->enc_, EVP_aes_256_gcm(), nullptr,
                           keys.data_key.Reveal().data(), nullptr) != 1 ||
        EVP_DecryptInit_ex(c->dec_, EVP_aes_256_gcm(), nullptr,
                           keys.data_key.Reveal().data(), nullptr) != 1) {
      return absl::InternalError("OpenSSL AES-256-GCM setup failed");
    }
    return c;
  }
  ~ChunkCipher() {
    EVP_CIPHER_CTX_free(enc_);
    EVP_CIPHER_CTX_free(dec_);
  }

  // Encrypts in.size() bytes from `in` to `out` (may alias) plus the tag.
  absl::Status Seal(uint32_t counter, bool last, const uint8_t* in, size_t len,
                    uint8_t* out) {
    SetNonce(counter, last);
    int n = 0;
    if (EVP_EncryptInit_ex(enc_, nullptr, nullptr, nullptr, nonce_.data()) !=
            1 ||
        EVP_EncryptUpdate(enc_, nullptr, &n, ad_.data(), kAdSize) != 1 ||
        EVP_EncryptUpdate(enc_, out, &n, in, static_cast<int>(len)) != 1 ||
        EVP_EncryptFinal_ex(enc_, out + len, &n) != 1 ||
        EVP_CIPHER_CTX_ctrl(enc_, EVP_CTRL_GCM_GET_TAG, kTagSize, out + len) !=
            1) {
      return absl::InternalError("OpenSSL AES-256-GCM encryption failed");
    }
    return absl::OkStatus();
  }

  // False when the chunk does not authenticate under (counter, last); `out`
  // is wiped then.
  bool Open(uint32_t counter, bool last, std::span<const uint8_t> sealed,
            uint8_t* out) {
    const size_t len = sealed.size() - kTagSize;
    SetNonce(counter, last);
    uint8_t tag[kTagSize];
    std::memcpy(tag, sealed.data() + len, kTagSize);
    int n = 0;
    const bool ok =
        EVP_DecryptInit_ex(dec_, nullptr, nullptr, nullptr, nonce_.data()) ==
            1 &&
        EVP_DecryptUpdate(dec_, nullptr, &n, ad_.data(), kAdSize) == 1 &&
        EVP_DecryptUpdate(dec_, out, &n, sealed.data(),
                          static_cast<int>(len)) == 1 &&
        EVP_CIPHER_CTX_ctrl(dec_, EVP_CTRL_GCM_SET_TAG, kTagSize, tag) == 1 &&
        EVP_DecryptFinal_ex(dec_, out + len, &n) == 1;
    if (!ok) OPENSSL_cleanse(out, len);
    return ok;
  }

 private:
  ChunkCipher() = default;
  void SetNonce(uint32_t counter, bool last) {
    StoreBe32(nonce_.data() + kPrefixSize, counter);
    nonce_[11] = last ? 1 : 0;
  }
  EVP_CIPHER_CTX* enc_ = nullptr;
  EVP_CIPHER_CTX* dec_ = nullptr;
  std::array<uint8_t, 12> nonce_{};
  std::array<uint8_t, kAdSize> ad_{};
};

absl::StatusOr<BackupHeader> BackupHeader::Parse(
    std::span<const uint8_t> bytes) {
  if (bytes.size() < kSize) {
    return absl::DataLossError(absl::StrCat("backup header truncated: got ",
                                            bytes.size(), " of ", kSize,
                                            " bytes"));
  }
  bytes = bytes.first(kSize);
  if (!std::equal(std::begin(kMagic), std::end(kMagic), bytes.begin())) {
    return absl::InvalidArgumentError(
        "not a bkv backup: the stream does not start with the bkv magic");
  }
  if (!ConstantTimeEquals(HeaderCheck(bytes), bytes.subspan(kCheckOffset))) {
    return absl::DataLossError(
        "backup header corrupted: its check value does not match");
  }
  BackupHeader h;
  std::copy(bytes.begin(), bytes.end(), h.bytes_.begin());
  if (h.version() != kVersion) {
    return absl::UnimplementedError(
        absl::StrCat("backup format version ", h.version(),
                     " is not supported (this bkv reads version 1); "
                     "upgrade bkv"));
  }
  if (bytes[10] != kCipherAes256GcmHkdfSha512) {
    return absl::UnimplementedError(
        absl::StrCat("backup cipher ", bytes[10], " is not supported"));
  }
  if (bytes[11] > 1) {
    return absl::UnimplementedError(
        absl::StrCat("backup compression ", bytes[11], " is not supported"));
  }
  if (bytes[12] > 1) {
    return absl::UnimplementedError(
        absl::StrCat("backup content type ", bytes[12], " is not supported"));
  }
  if (bytes[13] != 0 || bytes[14] != 0 || bytes[15] != 0) {
    return absl::UnimplementedError("backup header uses reserved bits");
  }
  if (h.chunk_size() < kMinChunkSize || h.chunk_size() > kMaxChunkSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("backup chunk size ", h.chunk_size(), " is out of range"));
  }
  return h;
}

uint16_t BackupHeader::version() const {
  return static_cast<uint16_t>((bytes_[8] << 8) | bytes_[9]);
}
BackupCompression BackupHeader::compression() const {
  return static_cast<BackupCompression>(bytes_[11]);
}
BackupContent BackupHeader::content() const {
  return static_cast<BackupContent>(bytes_[12]);
}
uint32_t BackupHeader::chunk_size() const { return LoadBe32(&bytes_[16]); }
std::span<const uint8_t> BackupHeader::salt() const {
  return std::span(bytes_).subspan(20, kSaltSize);
}
std::span<const uint8_t> BackupHeader::backup_id() const {
  return std::span(bytes_).subspan(52, kIdSize);
}
std::span<const uint8_t> BackupHeader::commitment() const {
  return std::span(bytes_).subspan(68, 32);
}
std::string BackupHeader::BackupIdHex() const { return HexEncode(backup_id()); }

BackupEncryptor::BackupEncryptor(BackupHeader header,
                                 std::unique_ptr<ChunkCipher> cipher)
    : header_(header), cipher_(std::move(cipher)) {}
BackupEncryptor::BackupEncryptor(BackupEncryptor&&) noexcept = default;
BackupEncryptor& BackupEncryptor::operator=(BackupEncryptor&&) noexcept =
    default;
BackupEncryptor::~BackupEncryptor() = default;

absl::StatusOr<BackupEncryptor> BackupEncryptor::Create(
    const BackupKey& key, const BackupParams& params,
    const RandomSource& random) {
  if (params.chunk_size < BackupHeader::kMinChunkSize ||
      params.chunk_size > BackupHeader::kMaxChunkSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("chunk size must be between 256 bytes and 16 MiB, got ",
                     params.chunk_size));
  }
  BackupHeader h;
  auto b = std::span(h.bytes_);
  std::copy(std::begin(kMagic), std::end(kMagic), b.begin());
  b[8] = kVersion >> 8;
  b[9] = kVersion & 0xff;
  b[10] = kCipherAes256GcmHkdfSha512;
  b[11] = static_cast<uint8_t>(params.compression);
  b[12] = static_cast<uint8_t>(params.content);
  StoreBe32(&b[16], params.chunk_size);
  random.Bytes(b.subspan(20, BackupHeader::kSaltSize));
  random.Bytes(b.subspan(52, BackupHeader::kIdSize));
  DerivedKeys keys = DeriveKeys(key, b);
  std::copy_n(keys.commitment.Reveal().begin(), 32, b.begin() + 68);
  auto check = HeaderCheck(b);
  std::copy(check.begin(), check.end(), b.begin() + kCheckOffset);
  BKV_ASSIGN_OR_RETURN(auto cipher, ChunkCipher::Create(keys, b));
  return BackupEncryptor(h, std::move(cipher));
}

absl::Status BackupEncryptor::SealChunk(std::span<const uint8_t> plaintext,
                                        std::span<uint8_t> out) {
  if (finished_ || plaintext.size() != chunk_size() ||
      out.size() != SealedChunkSize(chunk_size())) {
    return absl::FailedPreconditionError(
        "SealChunk needs a full chunk before the final one");
  }
  if (next_ == UINT32_MAX) {
    return absl::OutOfRangeError("backup exceeds 2^32 - 1 chunks");
  }
  return cipher_->Seal(next_++, false, plaintext.data(), plaintext.size(),
                       out.data());
}

absl::Status BackupEncryptor::SealFinalChunk(std::span<const uint8_t> plaintext,
                                             std::span<uint8_t> out) {
  if (finished_ || plaintext.size() >= chunk_size() ||
      out.size() != SealedChunkSize(chunk_size())) {
    return absl::FailedPreconditionError(
        "SealFinalChunk takes less than a chunk, once");
  }
  finished_ = true;
  // Pad in the output buffer, then encrypt in place.
  if (!plaintext.empty()) {
    std::memmove(out.data(), plaintext.data(), plaintext.size());
  }
  out[plaintext.size()] = 0x80;
  std::fill(out.begin() + plaintext.size() + 1, out.begin() + chunk_size(), 0);
  return cipher_->Seal(next_, true, out.data(), chunk_size(), out.data());
}

BackupDecryptor::BackupDecryptor(const BackupKey& key) : key_(key.Clone()) {
  pending_.reserve(BackupHeader::kSize);
}
BackupDecryptor::BackupDecryptor(BackupDecryptor&&) noexcept = default;
BackupDecryptor::~BackupDecryptor() {
  if (!plain_.empty()) OPENSSL_cleanse(plain_.data(), plain_.size());
}

absl::Status BackupDecryptor::Fail(absl::Status status) {
  error_ = status;
  if (!plain_.empty()) OPENSSL_cleanse(plain_.data(), plain_.size());
  return status;
}

absl::Status BackupDecryptor::OnHeader() {
  BKV_ASSIGN_OR_RETURN(BackupHeader h, BackupHeader::Parse(pending_));
  DerivedKeys keys = DeriveKeys(key_, h.bytes());
  if (!ConstantTimeEquals(keys.commitment.Reveal(), h.commitment())) {
    return absl::PermissionDeniedError(
        "wrong backup key: the key does not match this backup's key "
        "commitment");
  }
  // Only an authentic header's id means anything: checked after the key.
  if (expected_id_ && h.BackupIdHex() != *expected_id_) {
    return absl::DataLossError(absl::StrCat(
        "this object holds backup ", h.BackupIdHex(), ", not backup ",
        *expected_id_,
        " that the list names: the store swapped or rolled back the object"));
  }
  BKV_ASSIGN_OR_RETURN(cipher_, ChunkCipher::Create(keys, h.bytes()));
  header_ = h;
  sealed_size_ = SealedChunkSize(h.chunk_size());
  pending_.clear();
  pending_.reserve(sealed_size_);
  plain_.resize(h.chunk_size() + kTagSize);
  return absl::OkStatus();
}

absl::Status BackupDecryptor::Update(std::span<const uint8_t> in,
                                     const Sink& sink) {
  if (!error_.ok()) return error_;
  if (finished_) return absl::FailedPreconditionError("stream finished");
  while (!in.empty()) {
    if (!header_) {
      const size_t take =
          std::min(in.size(), BackupHeader::kSize - pending_.size());
      pending_.insert(pending_.end(), in.begin(), in.begin() + take);
      in = in.subspan(take);
      if (pending_.size() == BackupHeader::kSize) {
        if (auto s = OnHeader(); !s.ok()) return Fail(s);
      }
      continue;
    }
    // A full chunk followed by more bytes cannot be the final one.
    if (pending_.size() == sealed_size_) {
      if (auto s = OpenPending(false, sink); !s.ok()) return Fail(s);
    }
    const size_t take = std::min(in.size(), sealed_size_ - pending_.size());
    pending_.insert(pending_.end(), in.begin(), in.begin() + take);
    in = in.subspan(take);
  }
  return absl::OkStatus();
}

absl::Status BackupDecryptor::Finish(const Sink& sink) {
  if (!error_.ok()) return error_;
  if (finished_) return absl::FailedPreconditionError("stream finished");
  if (!header_) {
    return Fail(pending_.empty()
                    ? absl::DataLossError("backup is empty: no header")
                    : BackupHeader::Parse(pending_).status());
  }
  if (pending_.empty()) {
    return Fail(
        absl::DataLossError("backup truncated: no chunks after the header"));
  }
  if (pending_.size() != sealed_size_) {
    return Fail(absl::DataLossError(
        absl::StrCat("backup truncated inside chunk ", index_, ": it has ",
                     pending_.size(), " of ", sealed_size_, " bytes")));
  }
  if (auto s = OpenPending(true, sink); !s.ok()) return Fail(s);
  finished_ = true;
  return absl::OkStatus();
}

absl::Status BackupDecryptor::OpenPending(bool last, const Sink& sink) {
  if (!cipher_->Open(index_, last, pending_, plain_.data())) {
    return Diagnose(last);
  }
  size_t len = header_->chunk_size();
  if (last) {
    // Authenticated, so a bad pad means a faulty writer, not an attacker.
    while (len > 0 && plain_[len - 1] == 0) --len;
    if (len == 0 || plain_[len - 1] != 0x80) {
      return absl::DataLossError("final chunk has invalid padding");
    }
    --len;
  }
  ++index_;
  pending_.clear();
  absl::Status s = sink(std::span<const uint8_t>(plain_.data(), len));
  OPENSSL_cleanse(plain_.data(), len);
  return s;
}

absl::Status BackupDecryptor::Diagnose(bool last) {
  // Explain the failure by finding where this chunk would authenticate. The
  // trial plaintexts are wiped by Open() or below and never released.
  auto opens = [&](uint32_t counter, bool as_last) {
    bool ok = cipher_->Open(counter, as_last, pending_, plain_.data());
    OPENSSL_cleanse(plain_.data(), plain_.size());
    return ok;
  };
  if (opens(index_, !last)) {
    return last ? absl::DataLossError(
                      absl::StrCat("backup truncated after chunk ", index_,
                                   ": the final chunk is missing"))
                : absl::DataLossError(absl::StrCat(
                      "trailing data after the final chunk ", index_));
  }
  const uint32_t lo = index_ > kDiagnoseWindow ? index_ - kDiagnoseWindow : 0;
  const uint32_t hi = index_ + kDiagnoseWindow;
  for (uint32_t j = lo; j <= hi; ++j) {
    if (j == index_) continue;
    if (opens(j, false) || opens(j, true)) {
      return absl::DataLossError(
          j < index_ ? absl::StrCat("chunk ", index_, " is a copy of chunk ", j,
                                    ": chunks duplicated or reordered")
                     : absl::StrCat("chunk ", index_, " is chunk ", j,
                                    ": chunks reordered or missing"));
    }
  }
  return absl::DataLossError(
      absl::StrCat("chunk ", index_,
                   " failed authentication: modified, or taken from another "
                   "backup"));
}

absl::StatusOr<std::vector<uint8_t>> EncryptBackup(
    const BackupKey& key, const BackupParams& params,
    std::span<const uint8_t> plaintext) {
  BKV_ASSIGN_OR_RETURN(BackupEncryptor enc,
                       BackupEncryptor::Create(key, params));
  const size_t c = enc.chunk_size();
  const size_t full = plaintext.size() / c;
  std::vector<uint8_t> out(enc.header().bytes().begin(),
                           enc.header().bytes().end());
  out.resize(BackupHeader::kSize + (full + 1) * SealedChunkSize(c));
  uint8_t* p = out.data() + BackupHeader::kSize;
  for (size_t i = 0; i < full; ++i, p += SealedChunkSize(c)) {
    BKV_RETURN_IF_ERROR(
        enc.SealChunk(plaintext.subspan(i * c, c), {p, SealedChunkSize(c)}));
  }
  BKV_RETURN_IF_ERROR(
      enc.SealFinalChunk(plaintext.subspan(full * c), {p, SealedChunkSize(c)}));
  return out;
}

absl::StatusOr<std::vector<uint8_t>> DecryptBackup(
    const BackupKey& key, std::span<const uint8_t> backup) {
  std::vector<uint8_t> out;
  BackupDecryptor dec(key);
  auto sink = [&](std::span<const uint8_t> pt) {
    out.insert(out.end(), pt.begin(), pt.end());
    return absl::OkStatus();
  };
  absl::Status s = dec.Update(backup, sink);
  if (s.ok()) s = dec.Finish(sink);
  if (!s.ok()) {
    OPENSSL_cleanse(out.data(), out.size());
    return s;
  }
  return out;
}

}  // namespace bkv
