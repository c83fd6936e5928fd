#include "freshness/reanchor.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "crypto/status_macros.h"

namespace bkv::freshness {
namespace {

// Each shard's root twice: as start-up would check it (an uncommitted write
// counts as its parent) and with every record as it is.
struct Scan {
  std::vector<ShardTree> checked, as_is;
  std::vector<uint64_t> records;
  uint64_t unreadable = 0;
  uint64_t max_tag = 0;
};

absl::StatusOr<Scan> ScanStore(const storage::RecordStore& store,
                               uint32_t shards, uint64_t seq) {
  Scan scan;
  scan.checked.resize(shards);
  scan.as_is.resize(shards);
  scan.records.resize(shards);
  BKV_RETURN_IF_ERROR(
      store.ForEach([&](const AccountKey& key,
                        const absl::StatusOr<storage::v1::UserRecord>& r) {
        if (!r.ok()) {
          ++scan.unreadable;
          return true;
        }
        const uint32_t s = ShardOf(key, shards);
        scan.max_tag = std::max(scan.max_tag, r->fresh_tag());
        std::optional<LeafValue> own;
        if (!r->fresh_tombstone()) {
          own = LeafValue{RecordDigest(key, *r), r->version()};
          ++scan.records[s];
        }
        scan.as_is[s].Set(key, own);
        if (r->fresh_tag() <= seq) {
          scan.checked[s].Set(key, own);
        } else if (r->fresh_parent().size() == 32) {
          LeafValue parent;
          std::copy_n(r->fresh_parent().begin(), 32, parent.digest.begin());
          scan.checked[s].Set(key, parent);
        }
        return true;
      }));
  return scan;
}

// Form3 review finding 1: the refusal names the way out.
absl::Status Spent(uint32_t s, const ShardHead& head) {
  return absl::FailedPreconditionError(absl::StrCat(
      "shard ", s, " was re-anchored ", head.epoch,
      " times and has no re-anchor left in its life ([freshness] "
      "reanchor_budget, fixed when the heads were created): another one "
      "would leave its accounts no attempts. Restore the store's latest "
      "state instead; a quorum of 3 members spends one at each replacement "
      "below the carry bound: there the way out is 5 members, not --force. "
      "--force accepts that every ACTIVE account of the shard is "
      "left 0 attempts (users re-register with proof from outside; "
      "docs/operations.md \"Replacing a node\")"));
}

}  // namespace

ShardHead ReanchoredHead(const ShardHead& was, uint32_t max_attempts,
                         uint32_t ceremonies) {
  ShardHead now = was;
  ++now.epoch;
  const uint32_t left = std::min(was.ceremonies_left, ceremonies);
  const bool spent = left == 0;
  now.cap = spent ? 0 : max_attempts;
  now.ceremonies_left = spent ? 0 : left - 1;
  return now;
}

absl::Status CheckMaxAttempts(uint32_t max_attempts, int64_t attempt_limit) {
  if (max_attempts >= 1 && max_attempts < attempt_limit) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--max-attempts ", max_attempts,
                   " must be at least 1 and below the "
                   "attempt limit (",
                   attempt_limit,
                   "): a re-anchor never restores a "
                   "full budget"));
}

// The table to start from, after checking the options against it.
absl::StatusOr<HeadTable> StartingTable(HeadStore& heads,
                                        const ReanchorOptions& options) {
  if (options.max_attempts == 0) {
    return absl::InvalidArgumentError(
        "--max-attempts must be at least 1 (0 would lock every account; "
        "delete records instead)");
  }
  BKV_ASSIGN_OR_RETURN(std::optional<HeadTable> table, heads.Read());
  if (table.has_value() == options.genesis) {
    return absl::FailedPreconditionError(
        options.genesis
            ? "the token already holds freshness heads: --genesis is only "
              "for a token that has none"
            : "the token holds no freshness heads yet: the vault creates "
              "them at its first start on an empty store; over a store "
              "with records, pass --genesis");
  }
  if (options.genesis) {
    if (options.ceremonies == 0) {
      return absl::InvalidArgumentError(
          "reanchor_budget must be at least 1: the genesis over records is "
          "itself a re-anchor");
    }
    table.emplace();
    // Every root differs: all chosen.
    table->shards.resize(options.shards,
                         {.ceremonies_left = options.ceremonies});
  }
  if (table->shards.size() != options.shards) {
    return absl::FailedPreconditionError(
        absl::StrCat("the token's heads cover ", table->shards.size(),
                     " shards, not ", options.shards));
  }
  // Budget review finding 5: a ceremony starts only from a table in range.
  BKV_RETURN_IF_ERROR(CheckHeadRanges(*table, {}));
  for (uint32_t s : options.only) {
    if (s >= options.shards) {
      return absl::InvalidArgumentError(absl::StrCat(
          "shard ", s, " does not exist (0 to ", options.shards - 1, ")"));
    }
  }
  return *std::move(table);
}

absl::StatusOr<ReanchorReport> Reanchor(const storage::RecordStore& store,
                                        HeadStore& heads,
                                        const ReanchorOptions& options) {
  BKV_ASSIGN_OR_RETURN(const HeadTable table, StartingTable(heads, options));
  BKV_ASSIGN_OR_RETURN(Scan scan, ScanStore(store, options.shards, table.seq));
  if (scan.unreadable > 0 && !options.accept_unreadable) {
    return absl::FailedPreconditionError(absl::StrCat(
        scan.unreadable,
        " records can't be read (tampered with or another sealing key); "
        "re-anchoring would leave them out and their accounts could be "
        "registered again without proof. Restore a store whose records "
        "read, or pass --accept-unreadable to accept that"));
  }
  ReanchorReport report;
  report.unreadable = scan.unreadable;
  HeadTable next = table;
  for (uint32_t s = 0; s < options.shards; ++s) {
    ShardHead& head = next.shards[s];
    const bool proven = scan.checked[s].Root() == head.root;
    const bool moved = scan.as_is[s].Root() != head.root;
    const bool named = options.only.empty()
                           ? !proven
                           : std::find(options.only.begin(), options.only.end(),
                                       s) != options.only.end();
    const bool rolls = options.cap_rolled_forward && proven && moved;
    // Budget review finding 7: a proven shard is never refused on or
    // forced to 0 for its roll-forward alone; kept as certified, it reads
    // stale (unavailable, nothing lost) until the officer names it.
    if (!named && rolls && head.ceremonies_left == 0) {
      report.kept_spent.push_back(s);
      continue;
    }
    const bool chosen = named || rolls;
    if (!chosen && !proven) continue;  // stays stale
    head.root = scan.as_is[s].Root();
    if (!chosen) continue;  // proven: rolled forward only
    if (head.ceremonies_left == 0 && !options.force) return Spent(s, head);
    head = ReanchoredHead(head, options.max_attempts, options.ceremonies);
    report.shards.push_back(
        {s, scan.records[s], head.epoch, head.cap, head.ceremonies_left});
  }
  next.format = 0x02;
  next.seq = std::max(table.seq, scan.max_tag) + 1;
  BKV_RETURN_IF_ERROR(heads.Write(next));
  report.seq = next.seq;
  return report;
}

}  // namespace bkv::freshness
