#include "server/elected_owner.h"

#include "absl/strings/str_cat.h"
#include "crypto/hex.h"
#include "crypto/status_macros.h"
#include "server/log.h"

namespace bkv::server {
namespace {

constexpr char kKeysHint[] =
    "this node's token holds other vault keys than the cluster's (its own "
    "`hsm init`, not the clone): import the cloned keys (`hsm export`, "
    "`hsm import`) or make it endorser-only ([freshness] owner_candidate = "
    "false, and candidate=false in the members list: docs/operations.md "
    "\"Endorser-only members\")";

}  // namespace

// The records' store of one term, writing with the guard of the lease
// period serving it: set at the take-over and at a resume, each only after
// the previous period's calls returned (so each call writes with its own
// period's guard, refused once the key changed: finding 1).
class ElectedOwner::GuardSlot final : public storage::GuardedRecordStore {
 public:
  using GuardedRecordStore::GuardedRecordStore;
  void Set(storage::OwnerGuard g) {
    std::lock_guard<std::mutex> lock(mu_);
    guard_ = std::move(g);
  }

 protected:
  storage::OwnerGuard CurrentGuard() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return guard_;
  }

 private:
  mutable std::mutex mu_;
  storage::OwnerGuard guard_;  // guarded by mu_
};

ElectedOwner::Term::~Term() = default;

std::unique_ptr<ElectedOwner> ElectedOwner::Start(
    QuorumNode& quorum, storage::EtcdRecordStore& store, std::string key,
    freshness::FreshnessOptions fresh, KeyCheck keys) {
  std::unique_ptr<ElectedOwner> e(
      new ElectedOwner(quorum, store, std::move(fresh)));
  e->key_ = key;
  e->keys_ = std::move(keys);
  e->worker_ = std::thread([p = e.get()] { p->Work(); });
  OwnerLease::Options o;
  o.key = std::move(key);
  o.node_id = quorum.settings.node_id;
  o.ttl = quorum.settings.owner_lease_ttl;
  o.candidate = quorum.settings.owner_candidate;
  e->lease_ = OwnerLease::Create(
      store.client(), std::move(o),
      {[p = e.get()](const OwnerLease::Won& w) { p->Won(w); },
       [p = e.get()](const std::string& why) { p->Lost(why); },
       // Finding 10: one endorsement key must answer from one place.
       [p = e.get()] {
         p->quorum_.endorser->Suspend(
             "another process runs with this node's id and endorsement key "
             "(quorum_duplicate_node_id); this one no longer endorses");
       },
       [p = e.get()] { return p->MayCampaign(); },
       [p = e.get()] { p->quorum_.endorser->Resume(); }});
  e->lease_->Start();
  return e;
}

ElectedOwner::~ElectedOwner() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
  if (lease_) lease_->Stop();  // Lost, then the revoke
}

storage::OwnerGuard ElectedOwner::GuardOf(const OwnerLease::Won& won) const {
  return {key_, won.create_revision, won.lease};
}

void ElectedOwner::Won(const OwnerLease::Won& won) {
  std::lock_guard<std::mutex> lock(mu_);
  won_ = won;
  wanted_ = ++generation_;
  cv_.notify_all();
}

void ElectedOwner::Lost(const std::string& why) {
  std::shared_ptr<Period> old;
  bool eager;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++generation_;
    old = std::move(current_);
    if (old != nullptr) previous_ = old;
    if (old != nullptr && !old->term->no_resume) kept_ = old->term;
    eager = kept_ != nullptr;
  }
  // A term kept to resume: campaign first when the key is free.
  if (lease_ != nullptr) lease_->SetEager(eager);
  cv_.notify_all();
  PublishServing();
  if (old != nullptr) {
    Log("warn", "quorum_owner_stepped_down",
        {{"node_id", absl::StrCat(quorum_.settings.node_id)}, {"why", why}});
  }
  // This period's calls keep its guard: a late write of it can't land once
  // the key changed.
}

bool ElectedOwner::PreviousDrained() const {
  std::lock_guard<std::mutex> lock(mu_);
  return previous_.expired();
}

bool ElectedOwner::Superseded(uint64_t generation) const {
  std::lock_guard<std::mutex> lock(mu_);
  return stopping_ || generation_ != generation || !lease_->Held();
}

// N = 3, never fenced, and this node's endorser still promised that term:
// no other member can have prepared since (its take-over needs this
// endorser), so the term's trees are the newest state (rollback.md, "The
// election's review").
std::shared_ptr<ElectedOwner::Term> ElectedOwner::Resumable() {
  std::shared_ptr<Term> t;
  {
    std::lock_guard<std::mutex> lock(mu_);
    t = std::move(kept_);
  }
  if (t == nullptr || t->no_resume || quorum_.others.size() != 2 ||
      t->heads->fenced() ||
      quorum_.endorser->State().promised_term() != t->heads->Term()) {
    return nullptr;
  }
  return t;
}

absl::Status ElectedOwner::DrainPrevious(uint64_t generation,
                                         absl::Time deadline) {
  while (!PreviousDrained()) {
    if (Superseded(generation) || absl::Now() > deadline) {
      return absl::UnavailableError(
          "a call of this node's previous term as owner did not return");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return absl::OkStatus();
}

// Whether a majority of the other members answers a read-only query (the
// recovery round's, signed, no promise): without one a Prepare could only
// raise the promises of those that answer, and with N = 3 that would keep
// the member that lapsed from resuming its term (finding 2).
bool ElectedOwner::OthersAnswer() const {
  auto ask = quorum_.endorser->AskRecovery();
  if (!ask.ok()) return false;
  struct Tally {
    std::mutex mu;
    std::condition_variable cv;
    size_t ok = 0, done = 0;
  };
  auto tally = std::make_shared<Tally>();
  for (const auto& peer : quorum_.others) {
    peer->Recover(*ask, [tally](absl::StatusOr<fresh::v1::RecoverResponse> r) {
      std::lock_guard<std::mutex> lock(tally->mu);
      ++tally->done;
      if (r.ok()) ++tally->ok;
      tally->cv.notify_all();
    });
  }
  const size_t need = quorum_.settings.members.quorum();
  const size_t n = quorum_.others.size();
  std::unique_lock<std::mutex> lock(tally->mu);
  tally->cv.wait_for(
      lock, absl::ToChronoMilliseconds(quorum_.settings.endorse_timeout),
      [&] { return tally->ok >= need || tally->done == n; });
  return tally->ok >= need;
}

// Finding 3 of the election's review: a member configured with another
// etcd prefix or cluster wins its own election. The quorum's store carries
// `<prefix>fresh/quorum` = the members digest (created by the first
// take-over over it); a winner whose store has another marker, or none
// while the chain was formed (this endorser holds a certificate) and the
// store holds no account, is on the wrong store: no Prepare goes out.
// Only reads: an absent marker where one may be made, or the list this one
// was carried from, is written by SettleQuorumMarker once the take-over has
// its majority (a minority, or a node formed from another members file,
// up alone first, must not fix the marker to its digest: budget3 review
// finding 3).
absl::StatusOr<ElectedOwner::MarkerStep> ElectedOwner::CheckQuorumMarker() {
  const std::string mine = HexEncode(quorum_.settings.members.digest());
  BKV_ASSIGN_OR_RETURN(std::optional<std::string> marker,
                       store_.ReadMarker("fresh/quorum"));
  if (!marker.has_value()) {
    BKV_ASSIGN_OR_RETURN(const bool accounts, store_.HoldsAccounts());
    if (accounts || !quorum_.endorser->State().has_newest_certificate()) {
      return MarkerStep::kCreate;
    }
  }
  if (marker == mine) return MarkerStep::kNone;
  const auto& from = quorum_.settings.carried_from;
  if (marker.has_value() && from && *marker == HexEncode(*from)) {
    return MarkerStep::kCarry;
  }
  return QuorumStoreMismatch(marker);
}

// After the majority: a create that finds another value (another winner
// made it meanwhile) is a mismatch like any other.
absl::Status ElectedOwner::SettleQuorumMarker(MarkerStep step) {
  if (step == MarkerStep::kCarry) return CarryQuorumMarker();
  if (step == MarkerStep::kNone) return absl::OkStatus();
  const std::string mine = HexEncode(quorum_.settings.members.digest());
  BKV_ASSIGN_OR_RETURN(std::string marker,
                       store_.CreateMarker("fresh/quorum", mine));
  if (marker != mine) return QuorumStoreMismatch(marker);
  return absl::OkStatus();
}

// A carry moved the members digest (cform review finding 3): the marker
// follows it, from the digest the hand-overs came from only, and only after
// a majority of the new list adopted the chain (budget review finding 3: a
// take-over that fails its majority must leave the marker to the list that
// serves). One compare-value Txn: a retry, or another winner of this list,
// finds it moved already.
absl::Status ElectedOwner::CarryQuorumMarker() {
  const std::string mine = HexEncode(quorum_.settings.members.digest());
  const std::string from = HexEncode(*quorum_.settings.carried_from);
  BKV_ASSIGN_OR_RETURN(std::string marker,
                       store_.ReplaceMarker("fresh/quorum", from, mine));
  if (marker != mine) return QuorumStoreMismatch(marker);
  Log("warn", "quorum_marker_carried", {{"from", from}, {"to", mine}});
  return absl::OkStatus();
}

absl::Status ElectedOwner::QuorumStoreMismatch(
    const std::optional<std::string>& marker) const {
  Log("error", "quorum_store_mismatch",
      {{"store", store_.Describe()},
       {"marker", marker.value_or("absent")},
       {"hint",
        "this node's etcd_endpoints or etcd_key_prefix is not the quorum's "
        "store (the chain is formed and this store has no quorum marker or "
        "another one): fix the config; an existing quorum without accounts "
        "gets the marker by `etcdctl put <prefix>fresh/quorum <cluster "
        "digest>`"}});
  return absl::FailedPreconditionError(
      "this node's etcd store is not the quorum's (quorum_store_mismatch)");
}

// Lease3 review finding 1: a member whose token holds other vault keys
// (its own `hsm init` instead of the clone) would take over, open no
// record and hold the lease with every shard stale. The store carries
// `<prefix>fresh/keycheck` = hsm::MakeKeyCheck of the cluster's keys
// (no key can be derived from it); a node whose keys don't verify it
// neither campaigns nor sends a Prepare. etcd is not trusted here: this
// guards against an operator's slip, and a forged marker only keeps nodes
// from campaigning while it is there.
absl::Status ElectedOwner::CheckKeyMarker(bool create) {
  BKV_ASSIGN_OR_RETURN(std::optional<std::string> marker,
                       store_.ReadMarker("fresh/keycheck"));
  if (!marker.has_value()) {
    if (!create) return absl::OkStatus();
    BKV_RETURN_IF_ERROR(KeysOpenARecord());
    BKV_ASSIGN_OR_RETURN(marker,
                         store_.CreateMarker("fresh/keycheck", keys_.mine));
  }
  if (absl::Status s = keys_.verify(*marker); !s.ok()) {
    LogSampled("error", "quorum_keys_mismatch", "quorum_keys_mismatch",
               {{"error", std::string(s.message())}, {"hint", kKeysHint}});
    return absl::FailedPreconditionError(absl::StrCat(
        "this node's vault keys are not the cluster's (quorum_keys_mismatch): ",
        kKeysHint));
  }
  return absl::OkStatus();
}

// Before the marker exists (a cluster older than it): the first record
// must open with this node's keys, or the marker would name wrong keys.
absl::Status ElectedOwner::KeysOpenARecord() {
  absl::Status opened = absl::OkStatus();
  BKV_RETURN_IF_ERROR(
      store_.ForEach([&](const storage::AccountKey&,
                         const absl::StatusOr<storage::v1::UserRecord>& r) {
        opened = r.status();
        return false;
      }));
  if (opened.ok()) return opened;
  LogSampled("error", "quorum_keys_mismatch", "quorum_keys_mismatch",
             {{"error", std::string(opened.message())}, {"hint", kKeysHint}});
  return absl::FailedPreconditionError(
      absl::StrCat("this node's vault keys cannot open the cluster's records "
                   "(quorum_keys_mismatch): ",
                   kKeysHint));
}

bool ElectedOwner::MayCampaign() {
  absl::Status s = CheckKeyMarker(false);
  return s.ok() || !absl::IsFailedPrecondition(s);
}

void ElectedOwner::WaitForQuorum(uint64_t generation, absl::string_view error) {
  Log("warn", "freshness_quorum_waiting",
      {{"error", std::string(error)},
       {"hint",
        "start the other members' vaults (a majority of the "
        "others must answer a take-over)"}});
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, std::chrono::seconds(1),
               [&] { return stopping_ || generation_ != generation; });
}

// Prepare, adopt, re-endorse and scan (FreshRecordStore::Open), retried
// while the lease is held and a majority of the others does not answer,
// bounded as a first start's.
absl::StatusOr<std::shared_ptr<ElectedOwner::Term>> ElectedOwner::TakeOver(
    uint64_t generation, const OwnerLease::Won& won) {
  auto term = std::make_shared<Term>();
  term->heads = MakeQuorumHeads(quorum_);
  term->slot = std::make_unique<GuardSlot>(store_);
  term->slot->Set(GuardOf(won));
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  // A call of the previous period writes with its own guard; waiting for
  // it keeps a late record of ours from racing this term's scan.
  if (absl::Status s = DrainPrevious(generation, deadline); !s.ok()) return s;
  BKV_ASSIGN_OR_RETURN(const MarkerStep marker, CheckQuorumMarker());
  // The key marker too is made only after the majority (below).
  if (absl::Status s = CheckKeyMarker(false); !s.ok()) return s;
  for (int round = 0;; ++round) {
    if (Superseded(generation)) {
      return absl::CancelledError("the lease ended during the take-over");
    }
    if (!OthersAnswer()) {
      // No Prepare goes out; after a few tries the lease goes to another.
      if (round >= 2) {
        return absl::UnavailableError(
            "a majority of the other members does not answer; no Prepare "
            "sent");
      }
      WaitForQuorum(generation,
                    "a majority of the other members does not answer");
      continue;
    }
    auto fresh = freshness::FreshRecordStore::Open(*term->slot, *term->heads,
                                                   fresh_options_);
    if (fresh.ok()) {
      term->fresh = *std::move(fresh);
      BKV_RETURN_IF_ERROR(SettleQuorumMarker(marker));
      BKV_RETURN_IF_ERROR(CheckKeyMarker(true));
      return term;
    }
    if (!absl::IsUnavailable(fresh.status()) || absl::Now() > deadline ||
        round >= 60) {
      return fresh.status();
    }
    WaitForQuorum(generation, fresh.status().message());
  }
}

void ElectedOwner::Work() {
  for (;;) {
    uint64_t generation;
    OwnerLease::Won won;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (!cv_.wait_for(lock, std::chrono::milliseconds(500),
                        [&] { return stopping_ || wanted_ != 0; })) {
        lock.unlock();
        WatchHeads();
        continue;
      }
      if (stopping_) return;
      generation = std::exchange(wanted_, 0);
      won = won_;
    }
    if (auto kept = Resumable(); kept != nullptr) {
      // Its earlier period's calls write with the earlier guard (refused);
      // the new guard only once they returned.
      if (DrainPrevious(generation, absl::Now() + absl::Seconds(60)).ok()) {
        kept->slot->Set(GuardOf(won));
        Serve(generation, won, std::move(kept), true);
        continue;
      }
    }
    lease_->SetEager(false);
    auto term = TakeOver(generation, won);
    if (!term.ok()) {
      if (!Superseded(generation)) {
        Log("error", "quorum_takeover_failed",
            {{"error", std::string(term.status().message())}});
        lease_->Resign(
            absl::StrCat("take-over failed: ", term.status().message()),
            won.win);
      }
      continue;
    }
    (*term)->heads->OnFenced([this, t = term->get()] {
      uint64_t win = 0;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (current_ != nullptr && current_->term.get() == t) {
          win = current_->win;
        }
      }
      if (win != 0) {
        lease_->Resign("fenced: another member took over in a later term", win);
      }
    });
    Serve(generation, won, *std::move(term), false);
  }
}

// Finding 4 of the election's review: an owner whose head writes keep
// failing (no majority reachable from it, a failing token) keeps the lease
// alive but serves nobody. Health NOT_SERVING from the first failure
// without a success since; after 3 × endorse_timeout of that it resigns,
// so another member can try.
void ElectedOwner::WatchHeads() {
  std::shared_ptr<Period> p = Current();
  bool changed = false, resign = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const freshness::QuorumHeadStore::Stats st =
        p ? p->term->heads->stats() : freshness::QuorumHeadStore::Stats{};
    if (p.get() != watched_.lock().get() || st.writes != watched_writes_) {
      watched_ = p;
      watched_writes_ = st.writes;
      watched_failures_ = st.write_failures;
      stall_since_.reset();
      changed = stalled_;
      stalled_ = false;
    } else if (st.write_failures != watched_failures_) {
      if (!stall_since_) stall_since_ = absl::Now();
      changed = !stalled_;
      stalled_ = true;
      resign =
          absl::Now() - *stall_since_ >= 3 * quorum_.settings.endorse_timeout;
      // Stalled: no eager resume of this term; let another member try.
      if (resign && p != nullptr) p->term->no_resume = true;
    }
  }
  if (changed) PublishServing();
  if (resign) {
    Log("error", "quorum_owner_stalled",
        {{"node_id", absl::StrCat(quorum_.settings.node_id)},
         {"hint",
          "no head write was certified for 3 endorse timeouts: check this "
          "node's peer connections and token; stepping down"}});
    lease_->Resign("no head write certified (no majority or token failure)",
                   p->win);
  }
}

void ElectedOwner::Serve(uint64_t generation, const OwnerLease::Won& won,
                         std::shared_ptr<Term> term, bool resumed) {
  const uint64_t t = term->heads->Term();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || generation_ != generation || !lease_->Held()) {
      if (resumed) kept_ = std::move(term);  // still resumable next win
      return;
    }
    current_ = std::make_shared<Period>(Period{std::move(term), won.win});
    if (resumed) ++resumes_;
  }
  PublishServing();
  Log("info", resumed ? "quorum_owner_resumed" : "quorum_owner_serving",
      {{"node_id", absl::StrCat(quorum_.settings.node_id)},
       {"term", absl::StrCat(t)}});
}

std::shared_ptr<ElectedOwner::Period> ElectedOwner::Current() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (current_ == nullptr || !lease_->Held()) return nullptr;
  return current_;
}

void ElectedOwner::PublishServing() {
  std::lock_guard<std::mutex> serving(serving_mu_);
  bool now;
  {
    std::lock_guard<std::mutex> lock(mu_);
    now = current_ != nullptr && !stalled_;
  }
  if (published_ == now || !on_serving_) return;
  published_ = now;
  on_serving_(now);
}

void ElectedOwner::OnServing(std::function<void(bool serving)> f) {
  {
    std::lock_guard<std::mutex> serving(serving_mu_);
    on_serving_ = std::move(f);
    published_.reset();
  }
  PublishServing();
}

namespace {

absl::Status NotHeld() {
  return NotOwnerError(
      "this vault node does not hold the quorum's owner lease (another member "
      "owns the chain, or an election is under way); retry on another node");
}

}  // namespace

absl::Status ElectedOwner::Checked(absl::Status s, const Period& p) const {
  if (s.GetPayload(freshness::kSupersededPayload).has_value()) {
    // A later owner's record (finding 8): already "not the owner"; this
    // term is over, so no resume of it either.
    p.term->no_resume = true;
    lease_->Resign("a record of a later owner's term was read", p.win);
    return s;
  }
  auto guard = s.GetPayload(storage::kOwnerGuardPayload);
  if (!guard.has_value()) return s;
  lease_->Resign("the etcd owner guard refused a record write", p.win);
  // An earlier send may have committed: no detail, so the attempt is
  // ATTEMPT_UNSPECIFIED (finding 5), never "not counted".
  if (*guard == storage::kOwnerGuardAmbiguous) {
    return absl::UnavailableError(s.message());
  }
  return NotOwnerError(s.message());
}

absl::StatusOr<storage::v1::UserRecord> ElectedOwner::Get(
    std::string_view account_id) const {
  auto t = Current();
  if (t == nullptr) return NotHeld();
  return Checked(t->term->fresh->Get(account_id), *t);
}

absl::StatusOr<uint64_t> ElectedOwner::CompareAndSwap(
    std::string_view account_id, uint64_t expected_version,
    const storage::v1::UserRecord& next) {
  auto t = Current();
  if (t == nullptr) return NotHeld();
  return Checked(
      t->term->fresh->CompareAndSwap(account_id, expected_version, next), *t);
}

absl::Status ElectedOwner::Delete(std::string_view account_id,
                                  uint64_t expected_version) {
  auto t = Current();
  if (t == nullptr) return NotHeld();
  return Checked(t->term->fresh->Delete(account_id, expected_version), *t);
}

absl::Status ElectedOwner::Shred(std::string_view account_id) {
  auto t = Current();
  if (t == nullptr) return NotHeld();
  return Checked(t->term->fresh->Shred(account_id), *t);
}

absl::Status ElectedOwner::SyncBarrier(std::string_view account_id) {
  auto t = Current();
  if (t == nullptr) return NotHeld();
  return Checked(t->term->fresh->SyncBarrier(account_id), *t);
}

absl::StatusOr<uint64_t> ElectedOwner::Count() const {
  auto t = Current();
  if (t == nullptr) return NotHeld();
  return t->term->fresh->Count();
}

absl::Status ElectedOwner::ForEach(Visitor visit) const {
  auto t = Current();
  if (t == nullptr) return NotHeld();
  return t->term->fresh->ForEach(std::move(visit));
}

void ElectedOwner::RenderMetrics(std::string& out) const {
  auto t = Current();
  quorum_.RenderMetrics(out, t ? t->term->heads.get() : nullptr);
  uint64_t resumes;
  {
    std::lock_guard<std::mutex> lock(mu_);
    resumes = resumes_;
  }
  absl::StrAppend(
      &out,
      "# HELP bkv_freshness_quorum_lease_wins_total Owner lease periods this "
      "node won (each a take-over or a resume).\n# TYPE "
      "bkv_freshness_quorum_lease_wins_total counter\n"
      "bkv_freshness_quorum_lease_wins_total ",
      lease_->wins(),
      "\n# HELP bkv_freshness_quorum_resumes_total Wins that served on in the "
      "term held before a brief lapse, without a take-over.\n# TYPE "
      "bkv_freshness_quorum_resumes_total counter\n"
      "bkv_freshness_quorum_resumes_total ",
      resumes,
      "\n# HELP bkv_freshness_quorum_duplicate_node_id 1: another process "
      "holds the owner key under this node's id.\n# TYPE "
      "bkv_freshness_quorum_duplicate_node_id gauge\n"
      "bkv_freshness_quorum_duplicate_node_id ",
      lease_->duplicate_seen() ? 1 : 0, "\n");
}

std::optional<freshness::FreshnessStats> ElectedOwner::FreshStats() const {
  auto t = Current();
  if (t == nullptr) return std::nullopt;
  return t->term->fresh->Stats();
}

}  // namespace bkv::server
