#include "freshness/head_table.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "crypto/status_macros.h"
#include "hsm/key_labels.h"

namespace bkv::freshness {
namespace {

constexpr uint8_t kLegacy = 0x01;
constexpr uint8_t kFormat = 0x02;
constexpr size_t kHeader = 1 + 4 + 8;

size_t ShardSize(uint8_t format) {
  return format == kLegacy ? 4 + 4 + 32 : 4 + 4 + 4 + 32;
}

// 0x01 only for a table read as 0x01 that still says what 0x01 would.
uint8_t FormatOf(const HeadTable& t) {
  if (t.format != kLegacy) return kFormat;
  for (const ShardHead& h : t.shards) {
    if (h.ceremonies_left != LegacyCeremoniesLeft(h.epoch, h.cap)) {
      return kFormat;
    }
  }
  return kLegacy;
}

uint64_t GetBe(std::span<const uint8_t> in, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | in[at + i];
  return v;
}

}  // namespace

uint32_t LegacyCeremoniesLeft(uint32_t epoch, uint32_t cap) {
  if (epoch == 0) return kDefaultCeremonies;
  // The old rule gave caps cap - 1, ..., 1 after this (budget review
  // finding 6): never more than that, nor than the default B has left.
  const uint32_t old_rule = cap > 0 ? cap - 1 : 0;
  return std::min(old_rule,
                  kDefaultCeremonies - std::min(epoch, kDefaultCeremonies));
}

namespace {

absl::Status OutOfRange(size_t s, absl::string_view what,
                        absl::string_view fix) {
  return absl::FailedPreconditionError(
      absl::StrCat("freshness head table: shard ", s, " ", what, ": ", fix,
                   " (docs/rollback.md \"The lifetime budget\")"));
}

constexpr char kCheckToken[] =
    "no ceremony writes that; check that this is the deployment's token and "
    "restore its directory, or re-create the heads with `rollback reanchor "
    "--genesis` on a new token";

}  // namespace

absl::Status CheckHeadRanges(const HeadTable& t, const HeadLimits& limits) {
  // Budget3 review finding 1: only what no ceremony of any release writes
  // is refused (B at most 64, one spent per re-anchor, cap 0 only when
  // spent, no epoch wrap); a table made under another B or K is not: a
  // lower B counts as min(left, B) (ReanchoredHead), and K bounds the caps
  // a ceremony makes, not the ones it made.
  for (size_t s = 0; s < t.shards.size(); ++s) {
    const ShardHead& h = t.shards[s];
    if (h.ceremonies_left > kMaxCeremonies ||
        (h.ceremonies_left > 0 &&
         uint64_t{h.epoch} + h.ceremonies_left > kMaxCeremonies)) {
      return OutOfRange(s,
                        absl::StrCat("was re-anchored ", h.epoch,
                                     " times and still has ", h.ceremonies_left,
                                     " left, more than any reanchor_budget (",
                                     kMaxCeremonies, ") allows"),
                        kCheckToken);
    }
    if (h.epoch > 0 && h.ceremonies_left > 0 && h.cap == 0) {
      return OutOfRange(
          s,
          absl::StrCat("was re-anchored with cap 0 but has ", h.ceremonies_left,
                       " re-anchors left (cap 0 is only for a "
                       "spent shard)"),
          kCheckToken);
    }
    if (h.epoch == UINT32_MAX) {  // budget3 review finding 9
      return OutOfRange(s, "is at the last epoch", kCheckToken);
    }
    if (limits.max_cap > 0 && h.epoch > 0 && h.cap > limits.max_cap) {
      return OutOfRange(
          s,
          absl::StrCat("caps its re-anchored records at ", h.cap,
                       " attempts, above this node's [freshness] "
                       "reanchor_max_attempts (",
                       limits.max_cap, ")"),
          "a first table is made by this list's owner: every member must "
          "have the same K");
    }
  }
  return absl::OkStatus();
}

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
  const uint8_t format = FormatOf(t);
  std::vector<uint8_t> out{format};
  PutBigEndian(out, t.shards.size(), 4);
  PutBigEndian(out, t.seq, 8);
  for (const ShardHead& h : t.shards) {
    PutBigEndian(out, h.epoch, 4);
    PutBigEndian(out, h.cap, 4);
    if (format != kLegacy) PutBigEndian(out, h.ceremonies_left, 4);
    out.insert(out.end(), h.root.begin(), h.root.end());
  }
  return out;
}

absl::StatusOr<HeadTable> ParseHeads(std::span<const uint8_t> in) {
  if (in.size() < kHeader || (in[0] != kFormat && in[0] != kLegacy)) {
    return absl::DataLossError("freshness head table: unknown format");
  }
  HeadTable t;
  t.format = in[0];
  const size_t size = ShardSize(t.format);
  const uint64_t shards = GetBe(in, 1, 4);
  if (shards == 0 || in.size() != kHeader + shards * size) {
    return absl::DataLossError("freshness head table: wrong size");
  }
  t.seq = GetBe(in, 5, 8);
  t.shards.resize(shards);
  for (size_t s = 0; s < shards; ++s) {
    size_t at = kHeader + s * size;
    ShardHead& h = t.shards[s];
    h.epoch = static_cast<uint32_t>(GetBe(in, at, 4));
    h.cap = static_cast<uint32_t>(GetBe(in, at + 4, 4));
    at += 8;
    if (t.format == kLegacy) {
      h.ceremonies_left = LegacyCeremoniesLeft(h.epoch, h.cap);
    } else {
      h.ceremonies_left = static_cast<uint32_t>(GetBe(in, at, 4));
      at += 4;
    }
    std::copy_n(in.begin() + at, 32, h.root.begin());
  }
  return t;
}

absl::StatusOr<std::unique_ptr<TokenHeadStore>> TokenHeadStore::Open(
    std::shared_ptr<hsm::Pkcs11Hsm> token, hsm::AnchoredObject::Path path) {
  BKV_ASSIGN_OR_RETURN(auto object, hsm::AnchoredObject::Open(
                                        std::move(token), hsm::kFreshHeadsLabel,
                                        hsm::kFreshMacLabel, path));
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
