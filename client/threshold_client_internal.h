#ifndef BKV_CLIENT_THRESHOLD_CLIENT_INTERNAL_H_
#define BKV_CLIENT_THRESHOLD_CLIENT_INTERNAL_H_

// Shared by threshold_client.cc (channels, status round, state),
// threshold_register.cc and threshold_recover.cc. Not installed.

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "bkv/vault/v1/vault.grpc.pb.h"
#include "client/grpc_status.h"
#include "client/threshold_client.h"
#include "client/vault_errors.h"
#include "crypto/ksf.h"
#include "crypto/opaque.h"
#include "crypto/shamir.h"

namespace bkv::client {

inline std::span<const uint8_t> AsBytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
template <typename T>
std::string AsString(const T& bytes) {
  return {bytes.begin(), bytes.end()};
}

// Wall-clock Unix ms, and one as "2026-12-03 14:31 UTC" for messages.
int64_t NowMs();
std::string UtcTime(int64_t unix_ms);

// A roll-forward record older than this whose version no realm committed is
// dropped, not completed (the realms' default pending_ttl; finding 15).
inline constexpr int64_t kRollForwardAgeMs = 10 * 60 * 1000;

// The realms accept registration epochs below this (realm_policy::kMaxEpoch
// is 2^63 - 1).
inline constexpr uint64_t kMaxEpoch = uint64_t{1} << 63;
// The most a realm's epoch may lie above the client's base
// (realm_policy::kMaxEpochJump).
inline constexpr uint64_t kMaxEpochJump = uint64_t{1} << 32;

// Runs f(0..n-1) on n threads and waits for all: one round to every realm.
template <typename F>
void Parallel(size_t n, F f) {
  std::vector<std::thread> threads;
  threads.reserve(n);
  for (size_t i = 0; i < n; ++i) threads.emplace_back([&f, i] { f(i); });
  for (auto& t : threads) t.join();
}

// A state file's name: a hash of the account, never the account itself.
std::string StateName(const char* what, const std::string& account);

// A migration's joining realms or the realms a repair readied, committed
// before the others (empty: every realm at once). docs/threshold.md, "Order".
using CommitFirst = std::vector<size_t>;

// One realm of the agreeing group through the counted round.
struct Leg {
  size_t position = 0;
  absl::Status status;  // its RecoverStart failed: nothing else happens
  vault::v1::ThresholdRecoverStartResponse start;
  bool verified = false;
  std::optional<opaque::ClientLoginFinish> finish;  // envelope opened
  std::optional<shamir::Share> share;               // released, checked
};

// Keyed BLAKE2b of `password` under `backup_key` (ThresholdRecovery::
// password_check): lets Repair refuse a password the recovery did not verify.
std::array<uint8_t, 32> PasswordCheck(const SecretBytes& backup_key,
                                      const SecretBytes& password);
// kConfig for an empty account (the realms would not check it; finding 5).
absl::Status CheckAccount(const std::string& account);

// The uncounted stop after a roll-forward found its registration replaced
// at every realm (rthr3 finding 3): `said` is RollForward's note.
absl::Status ReplacedError(absl::string_view said);
// `s` marked as "the password change may be in force" (see
// IsPasswordChangeUnknown).
absl::Status MarkPasswordChangeUnknown(absl::Status s);

struct ThresholdClient::Impl {
  Impl(threshold::RealmSet s, ThresholdOptions o, Argon2idKsf k)
      : set(std::move(s)),
        options(std::move(o)),
        registration_ksf(std::move(k)) {}

  threshold::RealmSet set;
  ThresholdOptions options;
  Argon2idKsf registration_ksf;
  std::vector<std::unique_ptr<vault::v1::Vault::Stub>> stubs;  // by position

  opaque::Config Config() const;
  const std::string& IdOf(size_t realm) const { return set.realms()[realm].id; }

  // One RPC to one realm with that realm's token; errors converted once
  // (FromGrpc) and marked with the call kind.
  template <typename Req, typename Resp>
  absl::Status Call(size_t realm, const char* name, VaultCall kind,
                    grpc::Status (vault::v1::Vault::Stub::*rpc)(
                        grpc::ClientContext*, const Req&, Resp*),
                    const Req& req, Resp* resp) const {
    if (options.before_call) options.before_call(IdOf(realm), name);
    grpc::ClientContext ctx;
    if (options.account_token) {
      ctx.AddMetadata("authorization",
                      "Bearer " + options.account_token(IdOf(realm)));
    }
    ctx.set_deadline(std::chrono::system_clock::now() + options.vault.timeout);
    const grpc::Status s = (stubs[realm].get()->*rpc)(&ctx, req, resp);
    return MarkVaultCall(FromGrpc(s, ctx, set.realms()[realm].endpoint), kind);
  }

  // GetVaultInfo at each realm of `positions` not yet checked by this
  // client, before anything counted or prepared: protocol 3, its realm id
  // and key the pinned ones, OPAQUE context and server identity ours. A
  // mismatch is kConfig naming the realm; a realm that does not answer is
  // left unchecked (unavailable: its next call fails too).
  absl::Status CheckRealms(const std::vector<size_t>& positions) const;
  mutable std::mutex checked_mu;
  mutable std::vector<bool> checked;  // by position, under checked_mu

  // The uncounted status round, all n realms in parallel. Every v3 request
  // names `account`; a realm refuses it unless it is the token's subject.
  std::vector<StatusAnswer> StatusRound(const std::string& account) const;

  // Newest (epoch, commitment) memory and the roll-forward record.
  Newest RecallNewest(const std::string& account) const;
  // kConfig naming the newest memory's file when it holds an epoch no realm
  // accepts (edited or corrupt: every realm would be blamed for it, tsdk
  // finding 8). Checked before the memory is used, nothing sent.
  absl::Status CheckNewest(const std::string& account) const;
  absl::Status RememberNewest(const std::string& account, uint64_t epoch,
                              const Commitment& commitment) const;
  // `first`: the Commit order, kept in the record so that every
  // RollForward of it follows it (review of rset3, finding 5).
  absl::Status SavePendingCommit(const std::string& account,
                                 const std::vector<uint8_t>& descriptor,
                                 const SecretBytes& commit_secret,
                                 const CommitFirst& first = {}) const;
  // Re-sends a remembered unfinished commit to every realm; OK when there is
  // none or it completed (then the record is removed). A record older than
  // kRollForwardAge whose version no realm committed is dropped unsent
  // (review finding 15). `said`: what happened, for the user ("" when
  // nothing was re-sent or dropped). The Commit order is the record's own
  // (SavePendingCommit). `replaced`: set when every realm answered that
  // another registration replaced it and none committed it in this call:
  // the password in force is the one before it (rthr3 finding 3).
  absl::Status RollForward(const std::string& account,
                           std::string* said = nullptr,
                           bool* replaced = nullptr) const;
  // The descriptor of the roll-forward record waiting for `account`, if a
  // readable one does (any realm set's).
  std::optional<threshold::Descriptor> PendingCommit(
      const std::string& account) const;
  // Whether some realm committed `d`: the newest memory is at its epoch, or
  // (one free status round) a realm is ACTIVE on its commitment.
  bool CommittedSomewhere(const std::string& account,
                          const threshold::Descriptor& d) const;
  // How the realms answered a Commit round.
  struct CommitTally {
    int committed = 0;            // answered OK
    std::vector<size_t> unheard;  // no answer, or another failure
    std::vector<size_t> expired;  // STATE_EXPIRED (replaced there)
  };
  // Commit to every realm; OK only when all n answered OK. `first`: empty,
  // all n in parallel; else those (a migration's joiners, the realms a
  // repair readied) in parallel, then, once each said OK, the others in
  // parallel: a cut round leaves a version at t (docs/threshold.md, "Order";
  // rthr3 finding 1).
  absl::Status CommitEverywhere(const std::string& account,
                                const threshold::Descriptor& d,
                                const SecretBytes& commit_secret,
                                CommitTally* tally = nullptr,
                                const CommitFirst& first = {}) const;
  // CommitEverywhere's sending (it raises the newest memory at an OK of a
  // realm not in `first`: in a migration, a kept realm's; review of rset3,
  // finding 1). True when a realm of the first wave said STATE_EXPIRED: the
  // version can never be at every joiner, the rest is not sent (finding 6).
  bool SendCommits(const vault::v1::ThresholdRegisterCommitRequest& req,
                   const CommitFirst& first,
                   std::vector<absl::Status>& results) const;
  // Rewrites the roll-forward record of this registration (its
  // commit_secret): without its Commit order once the first wave committed,
  // marked in force once t realms committed it (merge review 1, 2).
  absl::Status UpdateCommitRecord(const std::string& account,
                                  const SecretBytes& commit_secret,
                                  bool order_done, bool in_force) const;
  std::vector<size_t> AllPositions() const;

  // What a registration's Commit round reached, also when Register failed:
  // in force once t or more realms committed (registration.lagging: the
  // others and why). Default: nothing committed.
  struct Reached {
    ThresholdRegistration registration;
    bool in_force = false;
    // The Commits began (commit_secret left this process) and a realm's
    // answer is missing: it may be in force, or become so by a roll-forward.
    bool unknown = false;
  };
  // Called after every Prepare was accepted, before the roll-forward record
  // and the Commits: an error stops the registration there, nothing
  // committed (rthr3 finding 2).
  using BeforeCommit = std::function<absl::Status()>;
  // `first`: positions prepared and committed before the others (the
  // realms a repair just readied, a migration's joiners): a refusal there
  // leaves nothing pending elsewhere, where it would block the next try for
  // pending_ttl (realm3 review finding 7), and CommitEverywhere keeps that
  // order (rthr3 finding 1, docs/threshold.md "Order"). `dealt`: told the new
  // commitment once dealt, before any Prepare (a migration's journal); its
  // failure stops the registration there.
  absl::StatusOr<ThresholdRegistration> Register(
      const std::string& account, const SecretBytes& password,
      const SecretBytes& backup_key, const std::vector<std::string>& proofs,
      const Commitment& previous, const CommitFirst& first = {},
      const std::function<absl::Status(const Commitment&)>& dealt = nullptr,
      Reached* reached = nullptr,
      const BeforeCommit& before_commit = nullptr) const;
  // `answers`: the status round the recovery planned from, for the rotation.
  absl::StatusOr<ThresholdRecovery> Recover(
      const std::string& account, const SecretBytes& password,
      std::vector<StatusAnswer>& answers) const;
  // Repair (client/threshold_repair.cc). The realms not ACTIVE on
  // `commitment` with attempts left, and what they are.
  std::vector<RealmFault> Lagging(const std::vector<StatusAnswer>& answers,
                                  const Commitment& commitment) const;
  // Makes every realm accept a Prepare of a fresh version after a recovery
  // of `commitment`: Delete where LOCKED, RequestReset where ACTIVE on
  // another version; a realm on `commitment` needs its proof. Fills
  // `repaired` with the lagging realms now ready; kRealmDegraded ("<what>:
  // realm-a is LOCKED and refused Delete ...") naming those that are not,
  // and then nothing may be registered (a Prepare refused at one realm
  // would block the others for pending_ttl).
  // `epoch`: the recovered version's; a realm ahead of it gets nothing
  // while its version is in progress. `abandoned`: the commitments of the
  // abandoned versions ahead that are being reset.
  absl::Status ReadyEveryRealm(
      const std::string& account, const std::vector<StatusAnswer>& answers,
      const Commitment& commitment, uint64_t epoch,
      const std::vector<std::string>& proofs, absl::string_view what,
      std::vector<std::string>& repaired,
      std::set<std::string>* abandoned = nullptr) const;
  // A realm ACTIVE on another version: behind the recovered one, ahead and
  // in progress (nothing is sent there), or ahead and abandoned (reset like
  // one behind; docs/threshold.md, "Repair of a LOCKED or lagging realm").
  enum class Other { kBehind, kInProgress, kAbandoned };
  std::string ReadyOne(const std::string& account, size_t i,
                       const StatusAnswer& a, const Commitment& commitment,
                       uint64_t epoch, Other other,
                       const std::vector<std::string>& proofs) const;
  // ReadyEveryRealm, then a fresh version at all n: the rotation's and
  // Repair's one path.
  ThresholdRotation ReadyAndRegister(
      const std::string& account, const SecretBytes& password,
      const SecretBytes& backup_key, const std::vector<std::string>& proofs,
      const Commitment& commitment, uint64_t epoch,
      const std::vector<StatusAnswer>& answers, absl::string_view what,
      Reached* reached = nullptr) const;
  // Steps 10-11: raises the newest memory, then decides whether a rotation
  // is due (out.rotation_started) or why not (out.rotation: the memory
  // failed). Whether every realm can take it is the rotation's own first
  // step (ReadyEveryRealm), off the critical path.
  void RememberAndPlanRotation(const std::string& account,
                               ThresholdRecovery& out) const;

  // The background rotation (docs/threshold.md, "Rotation off the critical
  // path"): ReadyAndRegister with copies of the password, key, proofs and
  // status answers on one thread. Touched only from the caller's thread
  // (one call at a time); `rotation_result` is written by the thread and
  // read after the join.
  void StartRotation(const std::string& account, const SecretBytes& password,
                     const ThresholdRecovery& recovered,
                     std::vector<StatusAnswer> answers);
  void JoinRotation();
  std::thread rotation_thread;
  std::optional<ThresholdRotation> rotation_result;
  // Migrate's parts (client/threshold_migrate.cc).
  // Deletes the record at realm `i` of this (old) set, with its proof, or
  // once a reset is due (`may_reset`: this device knows the new version is
  // the newest). "" when gone, else why not; `silent` (optional) is set when
  // the realm gave no answer of its own to the Delete.
  std::string Retire(const std::string& account, size_t i,
                     const std::string& proof, bool may_reset,
                     bool* silent = nullptr) const;
  // Steps 6-10 after the KE1 round: fills out.backup_key and out.proofs.
  absl::Status FinishRound(const std::string& account,
                           const opaque::OpaqueClient& opaque,
                           const RecoveryPlan& plan,
                           const opaque::ThresholdLoginStart& login,
                           std::vector<Leg>& legs,
                           std::vector<RealmFault>& faults,
                           ThresholdRecovery& out) const;
};

}  // namespace bkv::client

#endif  // BKV_CLIENT_THRESHOLD_CLIENT_INTERNAL_H_
