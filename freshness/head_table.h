#ifndef BKV_FRESHNESS_HEAD_TABLE_H_
#define BKV_FRESHNESS_HEAD_TABLE_H_

// The shard heads the token holds (docs/rollback.md "Head table"):
//
//   +------+----------+---------+-----------------------------------------+
//   | 0x02 | S u32 BE | seq u64 | S x (epoch u32 || cap u32 || left u32 |
//   |      |          |         |      || root)                           |
//   +------+----------+---------+-----------------------------------------+
//
// Format 0x01 (before the lifetime budget) has no `left`; it is still read,
// with LegacyCeremoniesLeft, and written back as 0x01 while `left` is that
// value (old certificates keep verifying). hsm::AnchoredObject adds the
// MAC. All integers big-endian.

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "freshness/shard_tree.h"
#include "hsm/anchored_object.h"

namespace bkv::freshness {

struct ShardHead {
  uint32_t epoch = 0;  // re-anchors of this shard
  // With epoch > 0: records written before `epoch` read with at most `cap`
  // attempts remaining (docs/rollback.md "Disaster recovery").
  uint32_t cap = 0;
  // Re-anchors this shard may still have in its life, written once when
  // the table is created and only ever decremented (docs/rollback.md "The
  // lifetime budget").
  uint32_t ceremonies_left = 0;
  Digest root{};
};

// The default lifetime budget B: with the default K = 2 its B·K = 8 stays
// below the default attempt limit 10 (budget review finding 5). The most
// any table may start with is [freshness] reanchor_budget's range, checked
// by every endorser too.
inline constexpr uint32_t kDefaultCeremonies = 4;
inline constexpr uint32_t kMaxCeremonies = 64;

// The most shards a 0x02 table the token holds can have: 13 bytes of header
// and 44 per shard within hsm::AnchoredObject::kMaxValueSize (1487).
inline constexpr uint32_t kMaxShards =
    (hsm::AnchoredObject::kMaxValueSize - (1 + 4 + 8)) / (4 + 4 + 4 + 32);

// A 0x01 shard's `ceremonies_left`: the default B at epoch 0; after a
// re-anchor the fewer of what the old rule still allowed (caps cap - 1 down
// to 1: cap - 1 more) and the default B less its re-anchors.
uint32_t LegacyCeremoniesLeft(uint32_t epoch, uint32_t cap);

// What a node holds an adopted table to (docs/rollback.md "The lifetime
// budget", budget review finding 5): its own B and, over a quorum, its K.
struct HeadLimits {
  uint32_t ceremonies = kMaxCeremonies;  // B: [freshness] reanchor_budget
  // K: [freshness] reanchor_max_attempts; 0 leaves caps unbounded (a single
  // node's `rollback reanchor --genesis` may cap at any K).
  uint32_t max_cap = 0;
};

struct HeadTable;

// Every shard within what a ceremony of any release can write (budget3
// review finding 1: never judged against this node's B or K, which may
// have been lower or higher when the table was made): left <= 64; with
// left > 0, epoch + left <= 64 (each re-anchor spent one) and, once
// re-anchored, cap >= 1 (cap 0 only when spent); epoch below 2^32 - 1.
// With max_cap (only where this node's ceremony makes the caps: an
// endorser's first table), a re-anchored shard's cap <= K.
// FailedPrecondition naming the first shard out of range otherwise.
absl::Status CheckHeadRanges(const HeadTable& t, const HeadLimits& limits);

struct HeadTable {
  uint64_t seq = 0;  // +1 per head write
  std::vector<ShardHead> shards;
  // The encoding it was read in: 0x01 tables are written back as 0x01 as
  // long as every shard's `left` is the derived one.
  uint8_t format = 0x02;
};

std::vector<uint8_t> EncodeHeads(const HeadTable& t);
// DataLoss on any framing error.
absl::StatusOr<HeadTable> ParseHeads(std::span<const uint8_t> bytes);
// The same, as protobuf `bytes` fields carry them (endorse.proto).
std::string EncodeHeadsString(const HeadTable& t);
absl::StatusOr<HeadTable> ParseHeadsString(const std::string& bytes);

// `v`'s low `bytes` bytes, big-endian: every integer of the freshness wire
// and statement formats.
void PutBigEndian(std::vector<uint8_t>& out, uint64_t v, int bytes);
std::string DigestBytes(const Digest& d);

// Where the table lives. The token in production; tests wrap it to inject
// faults.
class HeadStore {
 public:
  virtual ~HeadStore() = default;
  // nullopt before the first Write (genesis).
  virtual absl::StatusOr<std::optional<HeadTable>> Read() = 0;
  virtual absl::Status Write(const HeadTable& t) = 0;
  // The owner term this store writes in (0: one node, no terms).
  virtual uint64_t Term() const { return 0; }
};

class TokenHeadStore final : public HeadStore {
 public:
  // The table under hsm::kFreshHeadsLabel, MACed by hsm::kFreshMacLabel.
  // `path`: hsm::AnchoredObject::Open's.
  static absl::StatusOr<std::unique_ptr<TokenHeadStore>> Open(
      std::shared_ptr<hsm::Pkcs11Hsm> token,
      hsm::AnchoredObject::Path path = hsm::AnchoredObject::Path::kUnknown);
  absl::StatusOr<std::optional<HeadTable>> Read() override;
  absl::Status Write(const HeadTable& t) override;
  // Whether heads are written in place (docs/rollback.md "Slots").
  hsm::AnchoredObject::Path path() const { return object_->path(); }
  void SetPathListener(hsm::AnchoredObject::PathListener l) {
    object_->SetPathListener(std::move(l));
  }

 private:
  explicit TokenHeadStore(std::unique_ptr<hsm::AnchoredObject> o)
      : object_(std::move(o)) {}
  std::unique_ptr<hsm::AnchoredObject> object_;
};

}  // namespace bkv::freshness

#endif  // BKV_FRESHNESS_HEAD_TABLE_H_
