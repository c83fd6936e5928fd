#include "freshness/quorum_head_store.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "crypto/status_macros.h"

namespace bkv::freshness {
namespace {

using fresh::v1::Certificate;
using fresh::v1::EndorseRequest;
using fresh::v1::EndorserState;
using fresh::v1::HeadRef;

// The answers of one round, gathered until `wanted` succeeded, every peer
// answered, or the deadline passed. Shared with the callbacks, which may
// outlive the round.
template <typename T>
class Round {
 public:
  Round(size_t peers, size_t wanted) : peers_(peers), wanted_(wanted) {}
  void Add(absl::StatusOr<T> r) {
    absl::MutexLock lock(&mu_);
    if (r.ok()) {
      ok_.push_back(*std::move(r));
    } else {
      errors_.push_back(r.status());
    }
  }
  // The successes so far (at least `wanted` unless time ran out) and the
  // failures.
  std::pair<std::vector<T>, std::vector<absl::Status>> Wait(
      absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return ok_.size() >= wanted_ || ok_.size() + errors_.size() >= peers_;
    };
    mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
    return {ok_, errors_};
  }

 private:
  const size_t peers_, wanted_;
  absl::Mutex mu_;
  std::vector<T> ok_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::Status> errors_ ABSL_GUARDED_BY(mu_);
};

std::string Describe(const std::vector<absl::Status>& errors) {
  return absl::StrJoin(errors, "; ",
                       [](std::string* out, const absl::Status& s) {
                         absl::StrAppend(out, s.message());
                       });
}

bool Newer(const HeadRef& a, const HeadRef& b) {
  return std::make_pair(a.term(), a.seq()) > std::make_pair(b.term(), b.seq());
}

}  // namespace

void LocalEndorserPeer::Endorse(const EndorseRequest& request,
                                EndorseDone done) {
  done(endorser_.Endorse(request));
}

void LocalEndorserPeer::Prepare(uint64_t term, PrepareDone done) {
  done(endorser_.Prepare(term));
}

absl::StatusOr<Certificate> QuorumHeadStore::EndorseRound(
    const EndorseRequest& request) {
  auto round = std::make_shared<Round<fresh::v1::Endorsement>>(
      peers_.size(), members_.quorum());
  for (const auto& peer : peers_) {
    peer->Endorse(request, [round](absl::StatusOr<fresh::v1::Endorsement> e) {
      round->Add(std::move(e));
    });
  }
  auto [endorsements, errors] = round->Wait(round_timeout_);
  for (const absl::Status& e : errors) {
    // A later owner exists: this node must stop extending the chain.
    if (absl::IsFailedPrecondition(e)) return e;
  }
  const std::string& next = request.next_table();
  BKV_ASSIGN_OR_RETURN(HeadTable table, ParseHeadsString(next));
  Certificate cert;
  HeadRef* head = cert.mutable_head();
  head->set_term(request.term());
  head->set_seq(table.seq);
  head->set_prev_digest(request.prev_digest());
  head->set_digest(DigestBytes(TableDigest(table)));
  for (auto& e : endorsements) *cert.add_endorsements() = std::move(e);
  if (endorsements.size() < members_.quorum() ||
      !VerifyCertificate(members_, cert).ok()) {
    return absl::UnavailableError(absl::StrCat(
        "only ", endorsements.size(), " of ", members_.all().size(),
        " endorsers signed head ", table.seq, " (a majority is ",
        members_.quorum(), "): ", Describe(errors),
        "; bring the missing vault nodes back (docs/operations.md \"When a "
        "majority of nodes is lost\")"));
  }
  return cert;
}

absl::StatusOr<std::vector<EndorserState>> QuorumHeadStore::PrepareRound(
    uint64_t term, uint64_t* highest_promised) {
  auto round =
      std::make_shared<Round<PrepareResult>>(peers_.size(), peers_.size());
  for (const auto& peer : peers_) {
    peer->Prepare(term, [round](absl::StatusOr<PrepareResult> r) {
      round->Add(std::move(r));
    });
  }
  auto [answers, errors] = round->Wait(round_timeout_);
  std::vector<EndorserState> granted;
  for (const PrepareResult& a : answers) {
    *highest_promised = std::max(*highest_promised, a.state.promised_term());
    if (a.granted) granted.push_back(a.state);
  }
  if (granted.size() >= members_.quorum()) return granted;
  return absl::UnavailableError(absl::StrCat(
      "taking over the freshness chain needs a majority (", members_.quorum(),
      " of ", members_.all().size(), ") to promise term ", term, "; ",
      granted.size(), " did. ", Describe(errors)));
}

// The take-over (docs/rollback.md "The owner: lease, term, take-over").
absl::StatusOr<std::optional<HeadTable>> QuorumHeadStore::Read() {
  uint64_t highest = term_;
  absl::StatusOr<std::vector<EndorserState>> granted =
      PrepareRound(highest + 1, &highest);
  if (!granted.ok()) granted = PrepareRound(highest + 1, &highest);
  if (!granted.ok()) return granted.status();
  term_ = highest;
  const EndorserState* adopted = &granted->front();
  std::optional<Certificate> newest;
  for (const EndorserState& s : *granted) {
    if (Newer(HeldHead(s), HeldHead(*adopted))) adopted = &s;
    if (s.has_newest_certificate() &&
        (!newest || Newer(s.newest_certificate().head(), newest->head()))) {
      newest = s.newest_certificate();
    }
  }
  if (adopted->held_table().empty()) return std::nullopt;  // genesis
  EndorseRequest request;
  request.set_term(term_);
  request.set_prev_digest(HeldHead(*adopted).prev_digest());
  if (newest && newest->head().digest() == request.prev_digest()) {
    *request.mutable_prev_certificate() = *newest;
  }
  request.set_next_table(adopted->held_table());
  BKV_ASSIGN_OR_RETURN(Certificate cert, EndorseRound(request));
  const std::string& t = adopted->held_table();
  BKV_ASSIGN_OR_RETURN(HeadTable table, ParseHeadsString(t));
  digest_ = cert.head().digest();
  cert_ = std::move(cert);
  return std::optional<HeadTable>(std::move(table));
}

absl::Status QuorumHeadStore::Write(const HeadTable& t) {
  EndorseRequest request;
  request.set_term(term_);
  request.set_prev_digest(digest_);
  if (cert_) *request.mutable_prev_certificate() = *cert_;
  request.set_next_table(EncodeHeadsString(t));
  BKV_ASSIGN_OR_RETURN(Certificate cert, EndorseRound(request));
  digest_ = cert.head().digest();
  cert_ = std::move(cert);
  return absl::OkStatus();
}

}  // namespace bkv::freshness
