#include "freshness/quorum_head_store.h"

#include <algorithm>
#include <atomic>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "crypto/hex.h"
#include "crypto/status_macros.h"
#include "freshness/round.h"

namespace bkv::freshness {
namespace {

using fresh::v1::Certificate;
using fresh::v1::EndorseRequest;
using fresh::v1::EndorseResponse;
using fresh::v1::EndorserState;
using fresh::v1::HeadRef;
using fresh::v1::PrepareResponse;

std::string Describe(const std::vector<absl::Status>& errors) {
  return absl::StrJoin(errors, "; ",
                       [](std::string* out, const absl::Status& s) {
                         absl::StrAppend(out, s.message());
                       });
}

bool Newer(const HeadRef& a, const HeadRef& b) {
  return std::make_pair(a.term(), a.seq()) > std::make_pair(b.term(), b.seq());
}

// A signed refusal's promised term, or 0 when it is absent or forged
// (review finding 7: only a member's signature fences).
uint64_t PromisedBy(const Members& members, const fresh::v1::Refusal& r) {
  return VerifyRefusal(members, r).ok() ? r.promised_term() : 0;
}

HeadRef HeadOf(const EndorseRequest& request, const HeadTable& table) {
  HeadRef head;
  head.set_term(request.term());
  head.set_seq(table.seq);
  head.set_prev_digest(request.prev_digest());
  head.set_digest(DigestBytes(TableDigest(table)));
  return head;
}

// The newest committed certificate among the granted answers whose table
// matches it; DataLoss when two differ at one (term, seq) (a member signed
// twice).
absl::StatusOr<const EndorserState*> NewestCommitted(
    const Members& members, const std::vector<EndorserState>& granted) {
  const EndorserState* best = nullptr;
  for (const EndorserState& s : granted) {
    const Certificate& c = s.newest_certificate();
    auto table = ParseHeadsString(s.certified_table());
    if (!s.has_newest_certificate() || !table.ok() ||
        DigestBytes(TableDigest(*table)) != c.head().digest() ||
        !VerifyCertificate(members, c).ok()) {
      continue;
    }
    const HeadRef* b = best ? &best->newest_certificate().head() : nullptr;
    if (b && !Newer(c.head(), *b) && !Newer(*b, c.head()) &&
        b->digest() != c.head().digest()) {
      return absl::DataLossError(absl::StrCat(
          "two certified heads at term ", b->term(), " seq ", b->seq(),
          " differ: a member signed twice; stop and investigate "
          "(docs/rollback.md \"Quorum across nodes\")"));
    }
    if (!b || Newer(c.head(), *b)) best = &s;
  }
  return best;
}

}  // namespace

void LocalEndorserPeer::Endorse(const EndorseRequest& request,
                                EndorseDone done) {
  done(endorser_.Endorse(request));
}

void LocalEndorserPeer::Prepare(const fresh::v1::PrepareRequest& request,
                                PrepareDone done) {
  done(endorser_.Prepare(request));
}

void LocalEndorserPeer::Recover(const fresh::v1::RecoverRequest& request,
                                RecoverDone done) {
  done(endorser_.AnswerRecovery(request));
}

void LocalEndorserPeer::Commit(const fresh::v1::CommitRequest& request,
                               CommitDone done) {
  absl::Status s = endorser_.Commit(request);
  if (!s.ok()) return done(s);
  done(fresh::v1::CommitResponse());
}

absl::StatusOr<Certificate> QuorumHeadStore::EndorseRound(
    const EndorseRequest& request) {
  BKV_ASSIGN_OR_RETURN(HeadTable table, ParseHeadsString(request.next_table()));
  Certificate cert;
  *cert.mutable_head() = HeadOf(request, table);
  auto round = std::make_shared<Round<fresh::v1::Endorsement>>(
      peers_.size(), members_.quorum());
  const uint64_t term = term_;
  for (const auto& peer : peers_) {
    // Each answer is checked as it arrives: only valid signatures count,
    // only a signed higher promise fences.
    peer->Endorse(request, [round, head = cert.head(), term,
                            &members =
                                members_](absl::StatusOr<EndorseResponse> r) {
      const fresh::v1::Endorsement& e =
          r.ok() ? r->endorsement() : fresh::v1::Endorsement();
      if (!r.ok()) {
        round->Add(0, absl::UnavailableError(r.status().message()));
      } else if (PromisedBy(members, r->refusal()) > term) {
        round->Add(0, absl::FailedPreconditionError(absl::StrCat(
                          "fenced: node ", r->refusal().node_id(),
                          " promised term ", r->refusal().promised_term())));
      } else if (absl::Status v = VerifyEndorsement(members, head, e);
                 !v.ok()) {
        round->Add(0, absl::UnavailableError(v.message()));
      } else {
        round->Add(e.node_id(), e);
      }
    });
  }
  auto [endorsements, errors] = round->Wait(round_timeout_);
  for (const absl::Status& e : errors) {
    // A later owner exists: this node must stop extending the chain.
    if (absl::IsFailedPrecondition(e)) return e;
  }
  for (auto& e : endorsements) *cert.add_endorsements() = std::move(e);
  if (endorsements.size() < members_.quorum()) {
    return absl::UnavailableError(absl::StrCat(
        "only ", endorsements.size(), " of ", members_.all().size(),
        " endorsers signed head ", table.seq, " (a majority is ",
        members_.quorum(), "): ", Describe(errors),
        "; bring the missing vault nodes back (docs/operations.md \"When a "
        "majority of nodes is lost\")"));
  }
  return cert;
}

absl::Status QuorumHeadStore::CommitRound(const Certificate& cert,
                                          const std::string& table) {
  fresh::v1::CommitRequest request;
  *request.mutable_certificate() = cert;
  request.set_table(table);
  auto round = std::make_shared<Round<bool>>(peers_.size(), members_.quorum());
  for (size_t i = 0; i < peers_.size(); ++i) {
    peers_[i]->Commit(request, [round, i](auto r) {
      round->Add(i, r.ok() ? absl::StatusOr<bool>(true) : r.status());
    });
  }
  auto [ok, errors] = round->Wait(round_timeout_);
  if (ok.size() >= members_.quorum()) return absl::OkStatus();
  return absl::UnavailableError(
      absl::StrCat("head ", cert.head().seq(), " is certified but only ",
                   ok.size(), " endorsers kept the certificate (a majority is ",
                   members_.quorum(), "): ", Describe(errors)));
}

// Review finding 1 (issue 12): the promises that count are the OTHER
// members'. This node's token comes off the same disk as the records it is
// about to vouch for, so a restored copy of both would otherwise need only
// one lagging member to adopt an old head. Its own answer is still adopted
// from (its certificate verifies), it just does not count.
absl::StatusOr<std::vector<EndorserState>> QuorumHeadStore::PrepareRound(
    uint64_t term, uint64_t* highest_promised) {
  BKV_ASSIGN_OR_RETURN(fresh::v1::PrepareRequest request,
                       self_.SignPrepare(term));
  using Grant = std::pair<bool, EndorserState>;  // {from another member, ..}
  auto round = std::make_shared<Round<Grant>>(peers_.size(), peers_.size());
  auto highest = std::make_shared<std::atomic<uint64_t>>(0);
  const size_t self = peers_.size() - 1;  // the local peer is last
  for (size_t i = 0; i < peers_.size(); ++i) {
    peers_[i]->Prepare(request, [round, highest, i, self, &members = members_](
                                    absl::StatusOr<PrepareResponse> r) {
      if (r.ok() && r->granted()) {
        return round->Add(i, Grant{i != self, r->state()});
      }
      uint64_t p = r.ok() ? PromisedBy(members, r->refusal()) : 0;
      uint64_t seen = highest->load();
      while (p > seen && !highest->compare_exchange_weak(seen, p)) {
      }
      round->Add(i,
                 r.ok() ? absl::AbortedError("promise refused") : r.status());
    });
  }
  auto [grants, errors] = round->Wait(round_timeout_);
  *highest_promised = std::max(*highest_promised, highest->load());
  std::vector<EndorserState> granted;
  size_t others = 0;
  for (auto& [other, state] : grants) {
    others += other ? 1 : 0;
    granted.push_back(std::move(state));
  }
  if (others >= members_.quorum()) return granted;
  return absl::UnavailableError(absl::StrCat(
      "taking over the freshness chain needs a majority (", members_.quorum(),
      " of ", members_.all().size(), ") of the OTHER members to promise term ",
      term, " (this node's own token can't vouch for its own disk); ", others,
      " did. ", Describe(errors)));
}

// Quorum review finding 8: genesis only where no member holds a
// certificate at all. One that no longer verifies means the members list
// changed under a chain (an edited list instead of `cluster form`).
absl::Status QuorumHeadStore::NoChainHeld(
    const std::vector<EndorserState>& granted) const {
  for (const EndorserState& s : granted) {
    if (!s.has_newest_certificate()) continue;
    return absl::FailedPreconditionError(absl::StrCat(
        "a member holds a certificate (seq ",
        s.newest_certificate().head().seq(),
        ") that does not verify under members digest ",
        HexEncode(members_.digest()),
        ": the chain exists under another members list; never start over "
        "from genesis: form the list with `bkv-vault cluster form` "
        "(docs/operations.md \"Replacing a node\")"));
  }
  return absl::OkStatus();
}

// The take-over (docs/rollback.md "The owner: lease, term, take-over"):
// only a head whose certificate was committed is adopted (review finding 2).
absl::StatusOr<std::optional<HeadTable>> QuorumHeadStore::Read() {
  auto table = TakeOver();
  (table.ok() ? takeovers_ : takeover_failures_)++;
  return table;
}

absl::StatusOr<std::optional<HeadTable>> QuorumHeadStore::TakeOver() {
  uint64_t highest = term_, term = 0;
  absl::StatusOr<std::vector<EndorserState>> granted =
      absl::UnavailableError("no promise asked");
  // Twice at most: a second time above a signed higher promise heard in the
  // first (granted or not: writing below it would only be fenced).
  for (int i = 0; i < 2 && (!granted.ok() || highest > term); ++i) {
    BKV_ASSIGN_OR_RETURN(
        term, NextTermOf(members_, self_.node_id(), std::max(highest, term)));
    granted = PrepareRound(term, &highest);
  }
  if (!granted.ok()) return granted.status();
  term_ = term;
  BKV_ASSIGN_OR_RETURN(const EndorserState* adopted,
                       NewestCommitted(members_, *granted));
  if (adopted == nullptr) {
    BKV_RETURN_IF_ERROR(NoChainHeld(*granted));
    return std::nullopt;  // nothing was committed
  }
  const Certificate& cert = adopted->newest_certificate();
  EndorseRequest request;
  request.set_term(term_);
  request.set_prev_digest(cert.head().prev_digest());
  *request.mutable_prev_certificate() = cert;
  request.set_next_table(adopted->certified_table());
  BKV_ASSIGN_OR_RETURN(HeadTable table,
                       ParseHeadsString(adopted->certified_table()));
  BKV_RETURN_IF_ERROR(Propose(std::move(request)));
  return std::optional<HeadTable>(std::move(table));
}

absl::Status QuorumHeadStore::Propose(EndorseRequest request) {
  BKV_RETURN_IF_ERROR(self_.SignRequest(request));
  BKV_ASSIGN_OR_RETURN(Certificate cert, EndorseRound(request));
  BKV_RETURN_IF_ERROR(CommitRound(cert, request.next_table()));
  digest_ = cert.head().digest();
  cert_ = std::move(cert);
  in_flight_.reset();
  return absl::OkStatus();
}

absl::Status QuorumHeadStore::Write(const HeadTable& t) {
  EndorseRequest request;
  request.set_term(term_);
  request.set_prev_digest(digest_);
  if (cert_) *request.mutable_prev_certificate() = *cert_;
  request.set_next_table(EncodeHeadsString(t));
  // Review finding 3: an endorser that signed the table in flight signs no
  // other table at its place.
  if (in_flight_ && *in_flight_ != request.next_table()) {
    return absl::InternalError(
        absl::StrCat("head ", t.seq,
                     " differs from the table in flight; the owner must "
                     "re-propose the same table until it is certified"));
  }
  in_flight_ = request.next_table();
  absl::Status s = Propose(std::move(request));
  (s.ok() ? writes_ : write_failures_)++;
  if (absl::IsFailedPrecondition(s) && !fenced_.exchange(true)) {
    absl::MutexLock lock(&on_fenced_mu_);
    if (on_fenced_) on_fenced_();
  }
  return s;
}

void QuorumHeadStore::OnFenced(std::function<void()> f) {
  absl::MutexLock lock(&on_fenced_mu_);
  on_fenced_ = std::move(f);
  if (fenced_.load() && on_fenced_) on_fenced_();
}

}  // namespace bkv::freshness
