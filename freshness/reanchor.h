#ifndef BKV_FRESHNESS_REANCHOR_H_
#define BKV_FRESHNESS_REANCHOR_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "freshness/head_table.h"
#include "storage/record_store.h"

namespace bkv::freshness {

struct ReanchorOptions {
  uint32_t shards = 16;        // the deployment's shard count
  std::vector<uint32_t> only;  // empty: every stale shard
  uint32_t max_attempts = 2;   // K: the cap on re-anchored records
};

struct ReanchoredShard {
  uint32_t shard = 0;
  uint64_t records = 0;  // live records now anchored, all capped at `cap`
  uint32_t epoch = 0;
  uint32_t cap = 0;
};

struct ReanchorReport {
  std::vector<ReanchoredShard> shards;
  uint64_t unreadable = 0;  // records the store could not open (left out)
  uint64_t seq = 0;         // the head written
};

// The disaster-recovery step (docs/rollback.md "Disaster recovery"), with
// the vault stopped and the security officer already proven by the caller:
// takes the chosen shards' records as the store holds them, writes their
// roots with epoch + 1 and cap = min(K, the previous cap), so every record
// written before now reads with at most K attempts left. Proven shards are
// rolled forward as at start-up and keep their epoch. Never raises a
// counter: LOCKED stays locked, and a capped record never gains attempts.
absl::StatusOr<ReanchorReport> Reanchor(const storage::RecordStore& store,
                                        HeadStore& heads,
                                        const ReanchorOptions& options);

}  // namespace bkv::freshness

#endif  // BKV_FRESHNESS_REANCHOR_H_
