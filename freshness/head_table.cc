#include "freshness/head_table.h"

#include "absl/status/status.h"
#include "crypto/status_macros.h"
#include "hsm/key_labels.h"

namespace bkv::freshness {
namespace {

constexpr uint8_t kFormat = 0x01;
constexpr size_t kHeader = 1 + 4 + 8;
constexpr size_t kShardSize = 4 + 4 + 32;

uint64_t GetBe(std::span<const uint8_t> in, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | in[at + i];
  return v;
}

}  // namespace

void PutBigEndian(std::vector<uint8_t>& out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(uint8_t(v >> (8 * i)));
}

std::string DigestBytes(const Digest& d) {
  return std::string(d.begin(), d.end());
}

std::string EncodeHeadsString(const HeadTable& t) {
  const std::vector<uint8_t> b = EncodeHeads(t);
  return std::string(b.begin(), b.end());
}

absl::StatusOr<HeadTable> ParseHeadsString(const std::string& bytes) {
  return ParseHeads(
      std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
}

std::vector<uint8_t> EncodeHeads(const HeadTable& t) {
  std::vector<uint8_t> out{kFormat};
  PutBigEndian(out, t.shards.size(), 4);
  PutBigEndian(out, t.seq, 8);
  for (const ShardHead& h : t.shards) {
    PutBigEndian(out, h.epoch, 4);
    PutBigEndian(out, h.cap, 4);
    out.insert(out.end(), h.root.begin(), h.root.end());
  }
  return out;
}

absl::StatusOr<HeadTable> ParseHeads(std::span<const uint8_t> in) {
  if (in.size() < kHeader || in[0] != kFormat) {
    return absl::DataLossError("freshness head table: unknown format");
  }
  const uint64_t shards = GetBe(in, 1, 4);
  if (shards == 0 || in.size() != kHeader + shards * kShardSize) {
    return absl::DataLossError("freshness head table: wrong size");
  }
  HeadTable t;
  t.seq = GetBe(in, 5, 8);
  t.shards.resize(shards);
  for (size_t s = 0; s < shards; ++s) {
    const size_t at = kHeader + s * kShardSize;
    t.shards[s].epoch = static_cast<uint32_t>(GetBe(in, at, 4));
    t.shards[s].cap = static_cast<uint32_t>(GetBe(in, at + 4, 4));
    std::copy_n(in.begin() + at + 8, 32, t.shards[s].root.begin());
  }
  return t;
}

absl::StatusOr<std::unique_ptr<TokenHeadStore>> TokenHeadStore::Open(
    std::shared_ptr<hsm::Pkcs11Hsm> token) {
  BKV_ASSIGN_OR_RETURN(auto object, hsm::AnchoredObject::Open(
                                        std::move(token), hsm::kFreshHeadsLabel,
                                        hsm::kFreshMacLabel));
  return std::unique_ptr<TokenHeadStore>(new TokenHeadStore(std::move(object)));
}

absl::StatusOr<std::optional<HeadTable>> TokenHeadStore::Read() {
  BKV_ASSIGN_OR_RETURN(auto bytes, object_->Read());
  if (!bytes) return std::nullopt;
  BKV_ASSIGN_OR_RETURN(HeadTable t, ParseHeads(*bytes));
  return std::optional<HeadTable>(std::move(t));
}

absl::Status TokenHeadStore::Write(const HeadTable& t) {
  return object_->Write(EncodeHeads(t));
}

}  // namespace bkv::freshness
