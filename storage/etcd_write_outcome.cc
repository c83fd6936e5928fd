#include "storage/etcd_write_outcome.h"

#include "absl/strings/str_cat.h"

namespace bkv::storage {

absl::Status VersionMismatch(const AccountKey& key, const AccountState& state,
                             uint64_t expected) {
  return absl::AbortedError(
      absl::StrCat("record for account key ", AccountKeyHex(key),
                   " is at version ", state.live ? state.version : 0,
                   " (0: none), not ", expected, ": re-read and retry"));
}

absl::Status OutcomeUnknown(const AccountKey& key, absl::string_view detail) {
  return absl::UnavailableError(absl::StrCat(
      "etcd did not confirm the write to account key ", AccountKeyHex(key),
      "; it may have been applied: re-read before acting on it (", detail,
      ")"));
}

absl::Status SettleFailedGuard(const AccountKey& key, const GuardedWrite& write,
                               bool ambiguous, const RawAccount& now) {
  const bool is_delete = !write.record_value.has_value();
  if (ambiguous && !is_delete && now.record == write.record_value) {
    return absl::OkStatus();  // our exact bytes: an earlier send committed
  }
  absl::StatusOr<AccountState> state = CheckAccount(key, now);
  if (!state.ok()) return state.status();
  if (ambiguous) {
    // Deleted at exactly this version: only this delete (or an identical
    // one from another node) can have done it.
    if (is_delete && !state->live &&
        state->high_water == write.written_version) {
      return absl::OkStatus();
    }
    // Versions only grow, and one version is written by one Txn only.
    // Below ours: ours never committed. Our version live with other bytes:
    // not ours either. Otherwise ours may have committed and been
    // superseded (deleted, or overwritten by a later version).
    const bool other_at_ours =
        !is_delete && state->live && state->version == write.written_version;
    if (state->high_water >= write.written_version && !other_at_ours &&
        !(is_delete && state->high_water == write.written_version)) {
      return OutcomeUnknown(key, "a later write followed it");
    }
  }
  return VersionMismatch(key, *state, write.expected_version);
}

}  // namespace bkv::storage
