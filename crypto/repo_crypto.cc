#include "crypto/repo_crypto.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "crypto/aes_gcm_sealer.h"
#include "crypto/hash.h"
#include "crypto/random.h"

namespace bkv {
namespace {

const char* KindLabel(RepoObjectKind kind) {
  switch (kind) {
    case RepoObjectKind::kConfig:
      return "config";
    case RepoObjectKind::kChunk:
      return "chunk";
    case RepoObjectKind::kPackHeader:
      return "pack header";
    case RepoObjectKind::kIndex:
      return "index";
    case RepoObjectKind::kSnapshot:
      return "snapshot";
    case RepoObjectKind::kHead:
      return "head";
    case RepoObjectKind::kLock:
      return "lock";
    case RepoObjectKind::kTree:
      return "tree";
  }
  return "?";
}

std::vector<uint8_t> Ad(RepoObjectKind kind, std::span<const uint8_t> id) {
  std::string ad = "bkv repo v2 ";
  ad += KindLabel(kind);
  ad.push_back('\0');
  std::vector<uint8_t> out(ad.begin(), ad.end());
  out.insert(out.end(), id.begin(), id.end());
  return out;
}

// Masks of FastCDC's normalized chunking (level 2): two bits harder before
// the average size, two bits easier after it.
constexpr uint64_t Mask(int bits) {
  return bits >= 64 ? ~uint64_t{0} : ((uint64_t{1} << bits) - 1) << (64 - bits);
}
constexpr uint64_t kMaskHard = Mask(ChunkerParams::kAvgBits + 2);
constexpr uint64_t kMaskEasy = Mask(ChunkerParams::kAvgBits - 2);

}  // namespace

RepoKeys RepoKeys::Derive(const BackupKey& key, ChunkIdFunction id_function) {
  RepoKeys k;
  k.id_function_ = id_function;
  SecretBytes prk = HkdfExtract(AsBytes("bkv repo v2"), key.secret().Reveal());
  k.data_key_ = HkdfExpand(prk.Reveal(), AsBytes("bkv repo v2 data key"), 32);
  // A label per function: one key is never used by two MACs.
  k.id_key_ = HkdfExpand(prk.Reveal(),
                         AsBytes(id_function == ChunkIdFunction::kHmacSha256
                                     ? "bkv repo v2 chunk id key hmac-sha256"
                                     : "bkv repo v2 chunk id key"),
                         32);
  k.check_ = HkdfExpand(prk.Reveal(), AsBytes("bkv repo v2 key check"), 32);
  SecretBytes gear =
      HkdfExpand(prk.Reveal(), AsBytes("bkv repo v2 gear table"), 256 * 8);
  for (size_t i = 0; i < 256; ++i) {
    uint64_t v = 0;
    for (int b = 7; b >= 0; --b) v = (v << 8) | gear.Reveal()[i * 8 + b];
    k.gear_[i] = v;
  }
  return k;
}

ChunkId RepoKeys::IdOf(std::span<const uint8_t> plaintext) const {
  return ChunkIdHasher(*this).Id(plaintext);
}

ChunkIdHasher::ChunkIdHasher(const RepoKeys& keys)
    : mac_(keys.id_function_ == ChunkIdFunction::kHmacSha256
               ? ReusableHmac::Digest::kSha256
               : ReusableHmac::Digest::kSha512,
           keys.id_key_.Reveal()) {}

ChunkId ChunkIdHasher::Id(std::span<const uint8_t> plaintext) {
  std::array<uint8_t, 64> mac;  // function 1 keeps the first 32 bytes
  mac_.Mac(plaintext, mac);
  ChunkId id;
  std::memcpy(id.data(), mac.data(), id.size());
  return id;
}

namespace {

// The gear hash over d[i, end): the cut just after the first byte whose
// fingerprint has no bit of `mask` set, or 0 if none. Four bytes a round:
// the loop's own bookkeeping cost as much as the hash.
size_t GearScan(const uint64_t* gear, const uint8_t* d, size_t i, size_t end,
                uint64_t mask, uint64_t& fp_inout) {
  uint64_t fp = fp_inout;  // a local: the reference could alias the table
  size_t cut = 0;
  for (; i + 4 <= end; i += 4) {
    fp = (fp << 1) + gear[d[i]];
    if ((fp & mask) == 0) {
      cut = i + 1;
      break;
    }
    fp = (fp << 1) + gear[d[i + 1]];
    if ((fp & mask) == 0) {
      cut = i + 2;
      break;
    }
    fp = (fp << 1) + gear[d[i + 2]];
    if ((fp & mask) == 0) {
      cut = i + 3;
      break;
    }
    fp = (fp << 1) + gear[d[i + 3]];
    if ((fp & mask) == 0) {
      cut = i + 4;
      break;
    }
  }
  for (; i < end && cut == 0; ++i) {
    fp = (fp << 1) + gear[d[i]];
    if ((fp & mask) == 0) cut = i + 1;
  }
  fp_inout = fp;
  return cut;
}

}  // namespace

size_t RepoKeys::FindBoundary(std::span<const uint8_t> data) const {
  const size_t n = data.size();
  if (n <= ChunkerParams::kMin) return n;
  const size_t max = std::min<size_t>(n, ChunkerParams::kMax);
  const size_t normal =
      std::min<size_t>(max, size_t{1} << ChunkerParams::kAvgBits);
  uint64_t fp = 0;
  const uint8_t* d = data.data();
  if (size_t cut = GearScan(gear_.data(), d, ChunkerParams::kMin, normal,
                            kMaskHard, fp)) {
    return cut;
  }
  const size_t cut = GearScan(gear_.data(), d, normal, max, kMaskEasy, fp);
  return cut ? cut : max;
}

absl::StatusOr<std::vector<uint8_t>> RepoKeys::Seal(
    RepoObjectKind kind, std::span<const uint8_t> id,
    std::span<const uint8_t> plaintext) const {
  std::vector<uint8_t> out;
  if (auto s = SealAppend(kind, id, plaintext, out); !s.ok()) return s;
  return out;
}

absl::Status RepoKeys::SealAppend(RepoObjectKind kind,
                                  std::span<const uint8_t> id,
                                  std::span<const uint8_t> plaintext,
                                  std::vector<uint8_t>& out) const {
  const size_t at = out.size();
  out.resize(at + kOverhead + plaintext.size());
  std::span<uint8_t> sealed(out.data() + at, kOverhead + plaintext.size());
  SystemRandom().Bytes(sealed.first(kNonceSize));
  absl::Status s =
      AesGcmEncryptTo(data_key_.Reveal(), sealed.first(kNonceSize), plaintext,
                      Ad(kind, id), sealed.subspan(kNonceSize));
  if (!s.ok()) out.resize(at);
  return s;
}

absl::Status RepoKeys::OpenTo(RepoObjectKind kind, std::span<const uint8_t> id,
                              std::span<const uint8_t> sealed,
                              std::vector<uint8_t>& out) const {
  if (sealed.size() < kOverhead) {
    return absl::DataLossError(absl::StrCat("repository ", KindLabel(kind),
                                            " truncated: ", sealed.size(),
                                            " bytes"));
  }
  out.resize(sealed.size() - kOverhead);
  absl::Status s =
      AesGcmDecryptTo(data_key_.Reveal(), sealed.first(kNonceSize),
                      sealed.subspan(kNonceSize), Ad(kind, id), out);
  if (!s.ok()) {
    out.clear();
    return absl::DataLossError(absl::StrCat(
        "repository ", KindLabel(kind),
        " failed authentication: modified, truncated, or not the object its "
        "name says"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<uint8_t>> RepoKeys::Open(
    RepoObjectKind kind, std::span<const uint8_t> id,
    std::span<const uint8_t> sealed) const {
  std::vector<uint8_t> out;
  if (auto s = OpenTo(kind, id, sealed, out); !s.ok()) return s;
  return out;
}

}  // namespace bkv
