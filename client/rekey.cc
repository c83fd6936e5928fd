#include "client/rekey.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "client/repo/repository.h"
#include "crypto/secret_bytes.h"
#include "crypto/status_macros.h"

namespace bkv {
namespace {

// Restores snapshot `snap` of `old_repo` to scratch and backs it up into
// `to` under `key`, as the same source at the same time.
absl::Status Replay(Repository& old_repo, const SnapshotInfo& snap,
                    BlobStore& to, const BackupKey& key,
                    const std::string& scratch) {
  const std::string tree = scratch + "/tree";
  std::error_code ec;
  std::filesystem::remove_all(tree, ec);
  BKV_RETURN_IF_ERROR(old_repo.Restore(snap.id, "", tree).status());
  RepoOptions o;
  o.create = true;
  o.record_source = snap.source;
  o.record_time_ms = snap.time_ms;
  BKV_ASSIGN_OR_RETURN(auto repo, Repository::Open(to, key, o));
  absl::Status s = repo->Backup(tree).status();
  std::filesystem::remove_all(tree, ec);
  return s;
}

}  // namespace

absl::Status RekeyablePasskeyCheck(const SlotSecret& opened_with) {
  if (opened_with.type != SlotType::kPasskey) return absl::OkStatus();
  // The same credential and salt would open the old keyring too, and the
  // client evaluates whatever salt the served keyring names.
  return absl::FailedPreconditionError(
      "a rekey cannot keep a passkey slot: the same passkey would still open "
      "the old keyring. Rekey with the 64-digit key (--key-file, a fresh one "
      "is written to --out) or the vault password, then enrol a NEW passkey "
      "(bkv slot add passkey) and delete the old one on the authenticator");
}

absl::StatusOr<RekeyReport> Rekey(BlobStore& from,
                                  const SlotSecret& opened_with, BlobStore& to,
                                  const SlotSecret& fresh,
                                  const std::string& scratch,
                                  const std::string& state_dir,
                                  bool* keyring_written) {
  BKV_RETURN_IF_ERROR(RekeyablePasskeyCheck(opened_with));
  if (fresh.type != opened_with.type ||
      ConstantTimeEquals(fresh.secret.Reveal(), opened_with.secret.Reveal())) {
    return absl::InvalidArgumentError(
        "rekey: the new slot needs a fresh secret of the kind that opened "
        "the old set");
  }
  KeySlots old_slots(from, {state_dir});
  BKV_ASSIGN_OR_RETURN(auto opened, old_slots.UnlockSlot(opened_with));
  // A migrated set's first slot wraps the master key under itself: carried
  // over, it would hand the new master to whoever kept the old one.
  if (ConstantTimeEquals(opened_with.secret.Reveal(),
                         opened.first.secret().Reveal())) {
    return absl::FailedPreconditionError(
        "this secret is the old master key itself (the set's key from before "
        "key slots), so it must not open the new set: add a recovery key or "
        "a passkey (bkv slot add), rekey with that one; the old key is then "
        "retired");
  }
  BKV_ASSIGN_OR_RETURN(bool v2, Repository::Exists(from));
  if (!v2) {
    return absl::UnimplementedError(
        "bkv rekey handles v2 repositories; a single-stream (v1) set is "
        "rekeyed by restoring it and backing it up into a new store");
  }
  BKV_ASSIGN_OR_RETURN(auto objects, to.List());
  if (!objects.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("rekey writes a new set: ", to.url(), " must be empty"));
  }
  RekeyReport report;
  BKV_ASSIGN_OR_RETURN(auto all, old_slots.List());
  for (SlotInfo& s : all) {
    if (s.id != opened.second.id) report.dropped.push_back(std::move(s));
  }
  RepoOptions ro;
  ro.state_dir = state_dir;
  BKV_ASSIGN_OR_RETURN(auto old_repo, Repository::Open(from, opened.first, ro));
  BKV_ASSIGN_OR_RETURN(auto snaps, old_repo->Snapshots());
  const BackupKey master = BackupKey::Generate();
  // The keyring first: an interrupted rekey leaves a store that opens with
  // the fresh secret and holds the snapshots replayed so far.
  KeySlots new_slots(to, {state_dir});
  BKV_RETURN_IF_ERROR(
      new_slots.CreateKeyring(master, opened.second, fresh, /*new_set=*/true));
  if (keyring_written != nullptr) *keyring_written = true;
  for (const SnapshotInfo& snap : snaps) {
    BKV_RETURN_IF_ERROR(Replay(*old_repo, snap, to, master, scratch));
    ++report.snapshots;
  }
  report.kept = opened.second;
  return report;
}

}  // namespace bkv
