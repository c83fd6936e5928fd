#ifndef BKV_FRESHNESS_ENDORSEMENT_H_
#define BKV_FRESHNESS_ENDORSEMENT_H_

// The quorum's statements, certificates and the endorser's rules
// (docs/rollback.md "Quorum across nodes"). The signed statement:
//
//   +----------------------+--------------+---------+---------+---------+
//   | "bkv.fresh.endorse.  | members      | node id | term    | seq     |
//   |  v1" (20 bytes)      | digest (32)  | u32     | u64     | u64     |
//   +----------------------+--------------+---------+---------+---------+
//   | prev digest (32) | table digest (32) |            all big-endian
//   +------------------+-------------------+

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "bkv/fresh/v1/endorse.pb.h"
#include "freshness/head_table.h"
#include "hsm/anchored_object.h"
#include "hsm/endorsement_key.h"

namespace bkv::freshness {

// SHA-256("bkv.fresh.table.v1" || EncodeHeads(t)).
Digest TableDigest(const HeadTable& t);

struct Member {
  uint32_t id = 0;
  hsm::EndorsementKey::PublicKey key{};
  std::string peer_address;  // host:port of its Endorser service
  // May propose terms (own the chain); false: endorser-only, its requests
  // are refused (docs/rollback.md "Candidacy in the members list").
  bool candidate = true;
};

// The status payload of a request refused because a non-candidate signed
// it (value: its node id).
inline constexpr absl::string_view kNotCandidatePayload =
    "type.bkv/fresh.not_candidate";

// The members list the security officer fixed in every token (`cluster
// form`). Its digest covers ids, keys and, when any member is not a
// candidate, every member's candidacy (not addresses), goes into every
// statement, so a node formed with another list can't count.
class Members {
 public:
  // Ids distinct, keys distinct, 1 to 64 members, at least one candidate.
  static absl::StatusOr<Members> Create(std::vector<Member> members);
  // One member per line: `<id> <64 hex digits> <host:port>
  // [candidate=true|false]` (no field: a candidate); `#` comments.
  static absl::StatusOr<Members> Parse(absl::string_view text);
  std::string Encode() const;  // Parse's format

  // The same list continuing from `base`, the certified head carried over
  // from the previous list (`cluster form --carry`): its digest covers the
  // base too, and VerifyCertificate accepts the base without signatures.
  Members WithBase(const fresh::v1::HeadRef& base) const;
  const std::optional<fresh::v1::HeadRef>& base() const { return base_; }

  // What every statement carries: ids, keys and the base.
  const Digest& digest() const { return digest_; }
  // Ids and keys only: what a members file gives.
  const Digest& list_digest() const { return list_digest_; }
  size_t quorum() const { return members_.size() / 2 + 1; }
  // Answers of other members a recovering endorser needs: N - quorum + 1
  // meets every majority without counting itself (docs/rollback.md
  // "Endorser recovery round"); 0 for a single member.
  size_t recovery_quorum() const {
    return members_.size() == 1 ? 0 : members_.size() - quorum() + 1;
  }
  const std::vector<Member>& all() const { return members_; }
  const Member* Find(uint32_t id) const;
  // Ids of the members that may propose, ascending (never empty).
  const std::vector<uint32_t>& candidates() const { return candidates_; }
  // Some member is marked `candidate=false` (the v2 digest); false for a
  // list that marks none, where `owner_candidate` is only local.
  bool marks_candidacy() const { return candidates_.size() != members_.size(); }

 private:
  Members(std::vector<Member> m, const Digest& d);
  std::vector<Member> members_;
  std::vector<uint32_t> candidates_;
  Digest digest_;
  Digest list_digest_;
  std::optional<fresh::v1::HeadRef> base_;
};

std::vector<uint8_t> Statement(const Digest& members, uint32_t node,
                               const fresh::v1::HeadRef& head);

// One proposer per term: term t belongs to candidates()[t % k], so two
// owners never propose in the same term and a non-candidate never does.
uint32_t ProposerOf(const Members& members, uint64_t term);
// The smallest term above `above` that `node` proposes; OutOfRange when the
// term space is spent or `node` is not a candidate.
absl::StatusOr<uint64_t> NextTermOf(const Members& members, uint32_t node,
                                    uint64_t above);
// What a proposer signs: "bkv.fresh.request.v1" || members digest || kind
// (1 Endorse, 2 Prepare) || term || prev digest || SHA-256(next table).
std::vector<uint8_t> RequestStatement(const Digest& members,
                                      const fresh::v1::EndorseRequest& r);
std::vector<uint8_t> PrepareStatement(const Digest& members, uint64_t term);
// "bkv.fresh.refuse.v1" || members digest || node || promised term.
std::vector<uint8_t> RefusalStatement(const Digest& members, uint32_t node,
                                      uint64_t promised);
// What a recovering node signs: "bkv.fresh.request.v1" || members digest ||
// kind 3 || node || nonce.
std::vector<uint8_t> RecoverAskStatement(const Digest& members, uint32_t node,
                                         const std::string& nonce);
// What an answerer signs: "bkv.fresh.recover.v1" || members digest ||
// answerer || requester || nonce || promised || certificate's term, seq,
// prev digest, digest (zeros without one).
std::vector<uint8_t> RecoverAnswerStatement(
    const Digest& members, uint32_t requester, const std::string& nonce,
    const fresh::v1::RecoverResponse& answer);
// OK iff `p` is the proposer-signed request (Prepare or Endorse) of `term`
// by ProposerOf(term): what set an endorser's promise to `term`.
absl::Status VerifyPromiseProof(const Members& members, uint64_t term,
                                const fresh::v1::PromiseProof& p);
// A term or seq may step at most this far above the current one (review
// finding 5: no jump to the end of the number space).
inline constexpr uint64_t kMaxStep = uint64_t{1} << 32;

// OK iff `e` is a member's valid signature over `head`.
absl::Status VerifyEndorsement(const Members& members,
                               const fresh::v1::HeadRef& head,
                               const fresh::v1::Endorsement& e);
absl::Status VerifyRefusal(const Members& members, const fresh::v1::Refusal& r);

// OK iff endorsements of a majority of distinct members, each valid over
// `c.head`, or `c` is the members' base without endorsements;
// InvalidArgument naming what is wrong otherwise.
absl::Status VerifyCertificate(const Members& members,
                               const fresh::v1::Certificate& c);

// The held head as the HeadRef it was signed as (seq 0, zero digests when
// nothing is held).
fresh::v1::HeadRef HeldHead(const fresh::v1::EndorserState& s);

// The endorser's rules, pure. On acceptance: the state to store before
// answering, and `signed_head` is the HeadRef to sign. PermissionDenied for
// a request not signed by its term's proposer or a change of epochs or caps;
// FailedPrecondition "fenced" for a term below the promised one; Aborted
// (naming what is held) for a head that is not a successor; InvalidArgument
// for garbage or a term/seq beyond kMaxStep.
// `limits`: this node's B and K, which a first table (nothing held yet)
// must keep to (CheckHeadRanges; budget review finding 5).
absl::StatusOr<fresh::v1::EndorserState> DecideEndorse(
    const Members& members, const fresh::v1::EndorserState& state,
    const fresh::v1::EndorseRequest& request, fresh::v1::HeadRef* signed_head,
    const HeadLimits& limits = {});
// A take-over's promise: FailedPrecondition unless `term` is above the
// promised one; PermissionDenied and InvalidArgument as above.
absl::StatusOr<fresh::v1::EndorserState> DecidePrepare(
    const Members& members, const fresh::v1::EndorserState& state,
    const fresh::v1::PrepareRequest& request);
// The commit step: keeps a valid certificate newer than the committed one,
// with its table. InvalidArgument for anything else.
absl::StatusOr<fresh::v1::EndorserState> DecideCommit(
    const Members& members, const fresh::v1::EndorserState& state,
    const fresh::v1::CommitRequest& request);

// The recovery round's outcome: `state` raised to the highest promise and
// the newest valid certificate (held too, when newer than the held head) of
// at least members.recovery_quorum() valid answers to `nonce` from distinct
// other members. Unavailable (how many answered) with fewer; DataLoss for
// two certificates at one (term, seq) with different digests. A promise
// above the own one and the adopted certificate's term counts only with a
// valid proof (VerifyPromiseProof) within kMaxStep; otherwise the answer is
// not counted and why is appended to `refused` (evidence against a member).
absl::StatusOr<fresh::v1::EndorserState> DecideRecovery(
    const Members& members, uint32_t self,
    const fresh::v1::EndorserState& state, const std::string& nonce,
    const std::vector<fresh::v1::RecoverResponse>& answers,
    std::vector<std::string>* refused = nullptr,
    std::optional<size_t> needed = std::nullopt);

// One node's endorser: the rules over the state in its token, signing with
// its endorsement key. The state is in the token before any answer leaves.
// Thread-safe (one decision at a time).
class Endorser {
 public:
  // Opens the state in the token, recovering (below). FailedPrecondition,
  // naming the operator's path, when the state object is gone.
  static absl::StatusOr<std::unique_ptr<Endorser>> Open(
      std::shared_ptr<hsm::Pkcs11Hsm> token, Members members, uint32_t node_id);
  // Genesis (`cluster keygen`, `cluster reset-state`): an empty state object
  // in the token. AlreadyExists when it has one.
  static absl::Status CreateState(std::shared_ptr<hsm::Pkcs11Hsm> token);
  // The security officer's carry to a new members list (`cluster form
  // --carry`): `state` replaces whatever the token holds.
  static absl::Status InstallState(std::shared_ptr<hsm::Pkcs11Hsm> token,
                                   const fresh::v1::EndorserState& state);

  // After Open the stored state is untrusted (a restored or power-lost
  // token): Endorse and Prepare answer Unavailable until FinishRecovery
  // succeeded (docs/rollback.md "Endorser recovery round").
  bool recovering() const;
  // The query to every other member: a fresh nonce, signed.
  absl::StatusOr<fresh::v1::RecoverRequest> AskRecovery() const;
  // Another member's query, answered from the stored state (also while
  // recovering: a cold start). PermissionDenied unless a member signed it.
  absl::StatusOr<fresh::v1::RecoverResponse> AnswerRecovery(
      const fresh::v1::RecoverRequest& request) const;
  // DecideRecovery over the answers to `asked`; on success the raised state
  // is in the token and the endorser answers again.
  absl::Status FinishRecovery(
      const fresh::v1::RecoverRequest& asked,
      const std::vector<fresh::v1::RecoverResponse>& answers,
      std::vector<std::string>* refused = nullptr);
  // The security officer's override (`cluster recover --accept-fewer`,
  // recovery review finding 2): as FinishRecovery with at least one valid
  // answer instead of recovery_quorum(); the state is marked
  // officer_recovered, so the next Open trusts it once.
  absl::Status AcceptFewer(
      const fresh::v1::RecoverRequest& asked,
      const std::vector<fresh::v1::RecoverResponse>& answers,
      std::vector<std::string>* refused);
  // Endorse and Prepare answer kUnavailable `why` (unsigned: no proposer
  // reads it as a fence) until Resume: another process answers with this
  // node's key (finding 10 of the election's review). Idempotent; the
  // first `why` stays.
  void Suspend(const std::string& why);
  void Resume();
  // This open consumed an officer_recovered mark (it did not recover).
  bool officer_recovered() const { return officer_recovered_; }

  // A fenced request gets a signed refusal instead of an endorsement.
  absl::StatusOr<fresh::v1::EndorseResponse> Endorse(
      const fresh::v1::EndorseRequest& request);
  // Token failures are errors; a refused promise is granted = false with a
  // signed refusal and no state.
  absl::StatusOr<fresh::v1::PrepareResponse> Prepare(
      const fresh::v1::PrepareRequest& request);
  absl::Status Commit(const fresh::v1::CommitRequest& request);
  // As this node proposes (the owner's side).
  absl::Status SignRequest(fresh::v1::EndorseRequest& request) const;
  absl::StatusOr<fresh::v1::PrepareRequest> SignPrepare(uint64_t term) const;
  fresh::v1::EndorserState State() const;
  // Writes of the state to the token since Open (wear; /metrics).
  uint64_t state_writes() const { return state_writes_.load(); }
  // Token signatures made for recovery answers (a replayed query reuses its
  // answer: recovery review finding 8; /metrics).
  uint64_t recover_signatures() const { return recover_signatures_.load(); }
  uint32_t node_id() const { return node_id_; }
  const Members& members() const { return members_; }
  // This node's B and K: a first table out of their range is refused
  // (default: B kMaxCeremonies, the configurable maximum; caps unbounded).
  void set_reanchor_limits(HeadLimits limits) {
    absl::MutexLock lock(&mu_);
    limits_ = limits;
  }

 private:
  Endorser(std::unique_ptr<hsm::AnchoredObject> object,
           std::unique_ptr<hsm::EndorsementKey> key, Members members,
           uint32_t node_id, fresh::v1::EndorserState state)
      : object_(std::move(object)),
        key_(std::move(key)),
        members_(std::move(members)),
        node_id_(node_id),
        state_(std::move(state)),
        recovering_(members_.recovery_quorum() > 0) {}
  absl::Status Store(const fresh::v1::EndorserState& next)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::string> Sign(const std::vector<uint8_t>& m) const;
  absl::StatusOr<fresh::v1::Refusal> Refuse() const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::unique_ptr<hsm::AnchoredObject> object_;
  const std::unique_ptr<hsm::EndorsementKey> key_;
  const Members members_;
  const uint32_t node_id_;
  mutable absl::Mutex mu_;
  fresh::v1::EndorserState state_ ABSL_GUARDED_BY(mu_);
  bool recovering_ ABSL_GUARDED_BY(mu_);
  std::string suspended_ ABSL_GUARDED_BY(mu_);  // "" = answering
  HeadLimits limits_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> state_writes_{0};
  // Answers already signed, by requester and nonce (bounded per requester):
  // a replayed query costs no further token signature.
  static constexpr size_t kAnswersKept = 1024;
  mutable absl::Mutex answers_mu_;
  mutable std::map<
      uint32_t, std::deque<std::pair<std::string, fresh::v1::RecoverResponse>>>
      answers_ ABSL_GUARDED_BY(answers_mu_);
  mutable std::atomic<uint64_t> recover_signatures_{0};
  bool officer_recovered_ = false;
};

}  // namespace bkv::freshness

#endif  // BKV_FRESHNESS_ENDORSEMENT_H_
