#ifndef BKV_STORAGE_ETCD_WRITE_OUTCOME_H_
#define BKV_STORAGE_ETCD_WRITE_OUTCOME_H_

// What a guarded etcd write means when its guard failed: the rule that
// settles an ambiguous send (a timeout after the request may have reached
// etcd) by re-reading, never by assuming failure. Pure, so it is tested on
// its own (tests/storage/etcd_write_outcome_test.cc).

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "storage/account_check.h"

namespace bkv::storage {

struct GuardedWrite {
  uint64_t expected_version = 0;  // the caller's expected version
  uint64_t written_version = 0;   // CAS: the new version; Delete: expected
  // CAS: the exact sealed value written (unique: the seal has a random
  // nonce). nullopt: a Delete.
  std::optional<std::string> record_value;
};

// `now` is the account as the failed Txn's failure branch read it, in the
// same revision as the guard's check. `ambiguous`: an earlier send of this
// same Txn may have committed (its answer was lost). Returns OK iff this
// write did commit; kAborted if it certainly did not (re-read, retry);
// kUnavailable "outcome unknown" if it can't be told (it may have committed
// and been overwritten since); kDataLoss if `now` is tampered with.
absl::Status SettleFailedGuard(const AccountKey& key, const GuardedWrite& write,
                               bool ambiguous, const RawAccount& now);

// kUnavailable for a write etcd did not confirm (retries exhausted after an
// ambiguous send): it may have been applied.
absl::Status OutcomeUnknown(const AccountKey& key, absl::string_view detail);

// kAborted: the account is not at the expected version.
absl::Status VersionMismatch(const AccountKey& key, const AccountState& state,
                             uint64_t expected);

}  // namespace bkv::storage

#endif  // BKV_STORAGE_ETCD_WRITE_OUTCOME_H_
