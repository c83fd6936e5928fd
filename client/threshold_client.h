#ifndef BKV_CLIENT_THRESHOLD_CLIENT_H_
#define BKV_CLIENT_THRESHOLD_CLIENT_H_

// The threshold (realm) client of the SDK: registration at all n realms of a
// realm set and recovery through any t of them (docs/threshold.md, "The
// client"). One gRPC channel per realm; each realm's identity key is pinned
// through the realm set; each call carries that realm's own account token
// (aud = realm id). n = 1 is the same code path.
//
// Trust rules (docs/threshold.md): an uncounted status round first; KE1 only
// to the realms that agree on one registration; every DLEQ proof verified
// before any KE3; each released share checked against its commitment; a
// misbehaving realm is a kRealmFault naming it, never a wrong password; the
// newest (epoch, commitment) is remembered in the state directory, so a
// dropped commit cannot bring back a replaced registration.
// Thread-compatible: one call at a time per client (the background rotation
// is waited for by the next call).

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/realm_set_file.h"
#include "client/threshold_plan.h"
#include "client/vault_client.h"
#include "crypto/realm_set.h"
#include "crypto/secret_bytes.h"

namespace bkv::client {

struct ThresholdOptions {
  // Transport and KSF settings shared by every realm: tls, tls_root_certs,
  // insecure_plaintext, timeout, opaque_context, ksf, min_ksf, max_ksf.
  // address, failover_addresses, server_public_key and account_token are
  // ignored (the realm set and `account_token` below replace them).
  VaultOptions vault;
  // The token for one realm (its aud must be that realm id). Called from
  // the SDK's threads, also by the background rotation after Recover
  // returned: it must stay usable for the client's lifetime.
  std::function<std::string(const std::string& realm_id)> account_token;
  // Where the newest (epoch, commitment) and an unfinished commit are kept;
  // empty: neither (docs/threshold.md, "Roll-forward store").
  std::string state_dir;
  // Re-register with fresh shares after each successful recovery.
  bool rotate = true;
  // Called before every RPC with the realm id and the RPC name, from the
  // SDK's per-realm threads (so possibly concurrently, and by the background
  // rotation after Recover returned); for tracing. May be empty.
  std::function<void(const std::string& realm_id, std::string_view rpc)>
      before_call;
  // The realm-set file's `retired` lines (LoadRealmSetFile fills them): when
  // this client is the NEW set of a Migrate, a realm of the old set named
  // here (same id and key) need not answer; one that does not is reported
  // in ThresholdMigration::retired, not not_deleted (docs/threshold.md, "A
  // realm that left for good"). None may be a realm of this set.
  std::vector<RetiredRealm> retired;
};

struct ThresholdRegistration {
  uint64_t epoch = 0;
  Commitment commitment{};
  uint32_t per_realm_limit = 0;  // G
  // ChangePassword only: realms that did not take this version although it
  // is in force (committed at t or more), and why; empty otherwise.
  std::vector<RealmFault> lagging;
};

struct ThresholdRecovery {
  SecretBytes backup_key;
  // The lowest attempts_remaining among the agreeing realms before this
  // (successful) try; each try spends one at every realm of the group.
  uint32_t attempts_remaining_before = 0;
  std::vector<RealmFault> faults;   // realms excluded, recovery went on
  std::vector<std::string> proofs;  // by realm position; "" if none
  uint64_t epoch = 0;               // the registration recovered from
  Commitment commitment{};          // its commitment (the proofs name it)
  // A keyed digest (backup key) of the password this recovery verified:
  // Repair refuses any other password (docs/threshold.md, "Repair").
  std::array<uint8_t, 32> password_check{};
  // Taken before the KE3 round that minted the proofs, on the monotonic
  // clock (a wall clock set back must not make old proofs look young):
  // Repair's proof age (rthr finding 3; rthr3: before, not after, KE3).
  std::chrono::steady_clock::time_point recovered_at;
  // RealmSetDigest of the set it came from: Repair refuses another set's
  // (its proofs are by that set's positions).
  std::array<uint8_t, 32> realm_set{};
  // Realms not ACTIVE on it with attempts left (LOCKED, no record, another
  // version, silent), with what they were: until Repair (or a rotation)
  // brings them back, the set survives one failure fewer per realm.
  std::vector<RealmFault> lagging;
  // A rotation (fresh shares, repairing lagging realms first) now runs on
  // the client's background thread; WaitForRotation() reports how it ended.
  // Otherwise `rotation` says why none was started (OK when disabled).
  bool rotation_started = false;
  absl::Status rotation;
  // An unfinished registration this call completed first, or dropped as too
  // old (docs/threshold.md, "Roll-forward age"); "" when none.
  std::string rolled_forward;
};

// How a background rotation ended (ThresholdClient::WaitForRotation).
struct ThresholdRotation {
  // OK: every realm holds the new one. kRealmDegraded: a lagging realm could
  // not be readied, nothing registered (docs/threshold.md, "Repair").
  absl::Status status;
  ThresholdRegistration registration;  // the fresh registration, when OK
  std::vector<std::string> repaired;   // realm ids brought back, when OK
};

struct ThresholdRepair {
  std::vector<std::string> repaired;  // realm ids brought back
  // The fresh version at all n; empty when nothing needed repair.
  std::optional<ThresholdRegistration> registration;
};

// How a realm-set replacement ended (ThresholdClient::Migrate).
struct ThresholdMigration {
  ThresholdRegistration registration;  // the version on the new set
  // An earlier run got past its Commits: nothing recovered or counted now.
  bool resumed = false;
  // The old set's lowest remaining attempts before the recovery (0 when
  // resumed), and its realms excluded during it.
  uint32_t attempts_remaining_before = 0;
  std::vector<RealmFault> faults;
  std::vector<RealmFault> lagging;  // new realms not (yet) on it
  // Realms that left the set: record deleted, or still holding the replaced
  // registration and why: a security state (docs/threshold.md, "When C
  // cannot be deleted"), not a warning.
  std::vector<std::string> deleted;
  std::vector<RealmFault> not_deleted;
  // Realms that left and that the new set's file lists as retired (their
  // token destroyed), which did not answer: not waited for, and not the
  // security state of not_deleted. Also said in `note`.
  std::vector<RealmFault> retired;
  // For the user ("" when none): what step 1's roll-forward completed, and
  // MigrationNote's text.
  std::string note;
  // What step 1's roll-forward completed alone ("" when nothing): the CLI
  // prints MigrationNote before the password and this after.
  std::string rolled_forward;
  // The joining realms whose LOCKED record was deleted, and why that
  // matters ("" when none); also in `note`.
  std::string locked_deleted;
};

// A ChangePassword error after which either password may be in force: the
// same call again completes or settles it (docs/threshold.md, "Password
// change"; C BKV_VAULT_PASSWORD_CHANGE_UNKNOWN, CLI exit 17).
bool IsPasswordChangeUnknown(const absl::Status& s);

class ThresholdClient {
 public:
  static absl::StatusOr<std::unique_ptr<ThresholdClient>> Create(
      threshold::RealmSet realms, ThresholdOptions options);
  ~ThresholdClient();

  // Registers `backup_key` behind `password` at all n realms (two phases:
  // every realm prepares, then every realm commits). Replacing an active
  // registration needs each realm's proof (`proofs`, by position, from
  // Recover) or a due reset there. A commit that did not reach every realm
  // is rolled forward by the next Register, Recover or Plan.
  absl::StatusOr<ThresholdRegistration> Register(
      const std::string& account, const SecretBytes& password,
      const SecretBytes& backup_key,
      const std::vector<std::string>& proofs = {});
  // Spends one attempt at each realm of the agreeing group. Returns once the
  // key is unwrapped; the rotation, when due, runs after it in the
  // background (docs/threshold.md, "Rotation off the critical path").
  absl::StatusOr<ThresholdRecovery> Recover(const std::string& account,
                                            const SecretBytes& password);
  // After a successful `recovered` (without rotation, within the proofs'
  // lifetime), with the password that recovery verified (another one is
  // kConfig, nothing sent; a repair never changes the password): brings back
  // every realm not ACTIVE on the recovered version (Delete at a LOCKED one,
  // RequestReset at one on another version), then registers a fresh version at
  // all n with the recovery's proofs (docs/threshold.md, "Repair of a LOCKED or
  // lagging realm"). A realm that cannot be readied now is kRealmDegraded
  // naming it; nothing is registered then. Nothing to repair: OK, no
  // registration.
  absl::StatusOr<ThresholdRepair> Repair(const std::string& account,
                                         const SecretBytes& password,
                                         const ThresholdRecovery& recovered);
  // Stores the same backup key behind `new_password`: a recovery with
  // `old_password` (counted like any), then a fresh version at all n with
  // the recovery's proofs, repairing a lagging realm first
  // (docs/threshold.md, "Password change"). OK: the new password is in
  // force; `lagging` names the realms that did not take it (committed at t
  // or more, not at all n). IsPasswordChangeUnknown(error): its Commits
  // began and a realm's answer is missing, or an earlier cut change was
  // completed first (the message says which): call again with the same
  // passwords (nothing counted). Any other error: nothing changed, the old
  // password stays in force (rthr3 finding 4).
  absl::StatusOr<ThresholdRegistration> ChangePassword(
      const std::string& account, const SecretBytes& old_password,
      const SecretBytes& new_password);
  // Called on the client of the NEW realm set with the client of the old
  // one: recovers through `from` (counted), registers the key under the same
  // password at every new realm, verifies it by a free status round, calls
  // deletes the record at the realms that left (each must give its proof in
  // the recovery: kRealmDegraded before anything is prepared otherwise),
  // then calls `switch_set` (the app's: make the new set its realm-set file;
  // may be empty). Both clients must have the same, non-empty state_dir
  // (kConfig otherwise). A run whose
  // registration already reached the new set resumes after it
  // (docs/threshold.md, "Replacing a realm set").
  absl::StatusOr<ThresholdMigration> Migrate(
      const std::string& account, const SecretBytes& password,
      ThresholdClient& from, const std::function<absl::Status()>& switch_set);
  // Waits for the background rotation and says how it ended (a failure
  // leaves the key unaffected; the next recovery rotates again); nullopt
  // when none was started since the last wait. Register, Recover, Repair,
  // Plan and the destructor wait for it first.
  std::optional<ThresholdRotation> WaitForRotation();
  // Rolls an unfinished commit forward, then the uncounted status round and
  // its plan (what Recover would do). Like Recover, stops (kStaleRegistration,
  // said once) when the commit was replaced at every realm.
  absl::StatusOr<RecoveryPlan> Plan(const std::string& account);

  const threshold::RealmSet& realms() const;

  struct Impl;  // client/threshold_client_internal.h; not part of the API

 private:
  explicit ThresholdClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// What Migrate(from -> to) will put in ThresholdMigration::note, known
// before anything is sent so a caller can show it before asking for the
// password ("" when none; review of rset, finding 3).
std::string MigrationNote(const threshold::RealmSet& from,
                          const threshold::RealmSet& to);

}  // namespace bkv::client

#endif  // BKV_CLIENT_THRESHOLD_CLIENT_H_
