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
  // Re-anchor although some records can't be read (they are left out: their
  // accounts read as absent).
  bool accept_unreadable = false;
  // Re-anchor a shard whose budget is spent: its cap becomes 0, every ACTIVE
  // account in it reads with no attempts left.
  bool force = false;
  // Create the heads over a store that already holds records (the vault
  // refuses to start on one without them): every shard as if re-anchored.
  bool genesis = false;
  // B, the lifetime budget a genesis table starts with ([freshness]
  // reanchor_budget); the genesis itself spends one.
  uint32_t ceremonies = kDefaultCeremonies;
  // Quorum decisions: a proven shard whose root would move (records rolled
  // forward) is re-anchored too, since the other members can check only
  // that a kept shard keeps its certified root (cform review finding 4);
  // with no ceremony left it is kept instead (budget review finding 7).
  bool cap_rolled_forward = false;
};

// What one ceremony makes of a shard's head, root aside (docs/rollback.md
// "The lifetime budget"): epoch + 1, cap K and one ceremony fewer; with
// none left (spent), cap 0 and still none. The cap never shrinks with the
// count, and nothing here raises `ceremonies_left`, so a shard gives at
// most B ceremonies of K guesses in its life. A table written under a
// larger B (an upgrade, a lowered setting) counts as min(left, B): a lower
// B spends, it never refuses (budget3 review finding 1).
ShardHead ReanchoredHead(const ShardHead& was, uint32_t max_attempts,
                         uint32_t ceremonies);

// K is at least 1 and below the attempt limit: a re-anchor never gives a
// full budget back (issue 12). InvalidArgument naming the bound otherwise.
absl::Status CheckMaxAttempts(uint32_t max_attempts, int64_t attempt_limit);

struct ReanchoredShard {
  uint32_t shard = 0;
  uint64_t records = 0;  // live records now anchored, all capped at `cap`
  uint32_t epoch = 0;
  uint32_t cap = 0;
  uint32_t ceremonies_left = 0;  // after this one
};

struct ReanchorReport {
  std::vector<ReanchoredShard> shards;
  uint64_t unreadable = 0;  // records the store could not open (left out)
  uint64_t seq = 0;         // the head written
  // Quorum decisions: proven shards with rolled-forward writes and no
  // ceremony left, kept at their certified head (budget review finding 7).
  std::vector<uint32_t> kept_spent;
};

// The disaster-recovery step (docs/rollback.md "Disaster recovery"), with
// the vault stopped and the security officer already proven by the caller:
// takes the chosen shards' records as the store holds them, writes their
// roots as ReanchoredHead() says, so every record written before now reads
// with at most K attempts left (and no pending request). Refuses if records
// are unreadable (unless accept_unreadable) or a chosen shard has no
// ceremony left (unless force). Writes the table in the current format. Proven
// shards are rolled forward as at start-up and keep their epoch. Never raises a
// counter: LOCKED stays locked, and a capped record never gains attempts.
absl::StatusOr<ReanchorReport> Reanchor(const storage::RecordStore& store,
                                        HeadStore& heads,
                                        const ReanchorOptions& options);

}  // namespace bkv::freshness

#endif  // BKV_FRESHNESS_REANCHOR_H_
