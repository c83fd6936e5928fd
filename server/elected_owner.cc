#include "server/elected_owner.h"

#include "absl/strings/str_cat.h"
#include "server/log.h"

namespace bkv::server {

std::unique_ptr<ElectedOwner> ElectedOwner::Start(
    QuorumNode& quorum, storage::EtcdRecordStore& store, std::string key,
    freshness::FreshnessOptions fresh) {
  std::unique_ptr<ElectedOwner> e(
      new ElectedOwner(quorum, store, std::move(fresh)));
  e->key_ = key;
  e->worker_ = std::thread([p = e.get()] { p->Work(); });
  OwnerLease::Options o{std::move(key), quorum.settings.node_id,
                        quorum.settings.owner_lease_ttl};
  e->lease_ = OwnerLease::Create(
      store.client(), std::move(o),
      {[p = e.get()](int64_t rev) { p->Won(rev); },
       [p = e.get()](const std::string& why) { p->Lost(why); }});
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
  if (lease_) lease_->Stop();  // Lost, then the revoke: failover at once
}

void ElectedOwner::Won(int64_t create_revision) {
  // Before the take-over's scan: no write of an earlier owner lands after it.
  store_.SetOwnerGuard(key_, create_revision);
  std::lock_guard<std::mutex> lock(mu_);
  wanted_ = ++generation_;
  cv_.notify_all();
}

void ElectedOwner::Lost(const std::string& why) {
  std::shared_ptr<Term> old;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++generation_;
    old = std::move(current_);
    if (old != nullptr) previous_ = old;
  }
  cv_.notify_all();
  PublishServing();
  if (old != nullptr) {
    Log("warn", "quorum_owner_stepped_down",
        {{"node_id", absl::StrCat(quorum_.settings.node_id)}, {"why", why}});
  }
  // The guard stays: a late write of this term must not land.
}

bool ElectedOwner::PreviousDrained() const {
  std::lock_guard<std::mutex> lock(mu_);
  return previous_.expired();
}

bool ElectedOwner::Superseded(uint64_t generation) const {
  std::lock_guard<std::mutex> lock(mu_);
  return stopping_ || generation_ != generation || !lease_->Held();
}

// Prepare, adopt, re-endorse and scan (FreshRecordStore::Open), retried
// while the lease is held and a majority of the others does not answer,
// bounded as a first start's.
absl::StatusOr<std::shared_ptr<ElectedOwner::Term>> ElectedOwner::TakeOver(
    uint64_t generation) {
  auto term = std::make_shared<Term>();
  term->heads = MakeQuorumHeads(quorum_);
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  // A call of the previous term still inside its store would write under
  // this term's owner guard: the take-over's scan comes after it.
  while (!PreviousDrained()) {
    if (Superseded(generation) || absl::Now() > deadline) {
      return absl::UnavailableError(
          "a call of this node's previous term as owner did not return");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  for (int round = 0;; ++round) {
    if (Superseded(generation)) {
      return absl::CancelledError("the lease ended during the take-over");
    }
    auto fresh =
        freshness::FreshRecordStore::Open(store_, *term->heads, fresh_options_);
    if (fresh.ok()) {
      term->fresh = *std::move(fresh);
      return term;
    }
    if (!absl::IsUnavailable(fresh.status()) || absl::Now() > deadline ||
        round >= 60) {
      return fresh.status();
    }
    Log("warn", "freshness_quorum_waiting",
        {{"error", std::string(fresh.status().message())},
         {"hint",
          "start the other members' vaults (a majority of the "
          "others must answer a take-over)"}});
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(1),
                 [&] { return stopping_ || generation_ != generation; });
  }
}

void ElectedOwner::Work() {
  for (;;) {
    uint64_t generation;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || wanted_ != 0; });
      if (stopping_) return;
      generation = std::exchange(wanted_, 0);
    }
    auto term = TakeOver(generation);
    if (!term.ok()) {
      if (!Superseded(generation)) {
        Log("error", "quorum_takeover_failed",
            {{"error", std::string(term.status().message())}});
        lease_->Resign(
            absl::StrCat("take-over failed: ", term.status().message()));
      }
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_ || generation_ != generation || !lease_->Held()) continue;
      current_ = *term;
    }
    (*term)->heads->OnFenced([this] {
      lease_->Resign("fenced: another member took over in a later term");
    });
    PublishServing();
    Log("info", "quorum_owner_serving",
        {{"node_id", absl::StrCat(quorum_.settings.node_id)},
         {"term", absl::StrCat((*term)->heads->Term())}});
  }
}

std::shared_ptr<ElectedOwner::Term> ElectedOwner::Current() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (current_ == nullptr || !lease_->Held()) return nullptr;
  return current_;
}

void ElectedOwner::PublishServing() {
  std::lock_guard<std::mutex> serving(serving_mu_);
  bool now;
  {
    std::lock_guard<std::mutex> lock(mu_);
    now = current_ != nullptr;
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

absl::Status ElectedOwner::Checked(absl::Status s) const {
  if (!s.GetPayload(storage::kOwnerGuardPayload).has_value()) return s;
  lease_->Resign("the etcd owner guard refused a record write");
  return NotOwnerError(s.message());
}

absl::StatusOr<storage::v1::UserRecord> ElectedOwner::Get(
    std::string_view account_id) const {
  auto t = Current();
  if (t == nullptr) return NotHeld();
  return Checked(t->fresh->Get(account_id));
}

absl::StatusOr<uint64_t> ElectedOwner::CompareAndSwap(
    std::string_view account_id, uint64_t expected_version,
    const storage::v1::UserRecord& next) {
  auto t = Current();
  if (t == nullptr) return NotHeld();
  return Checked(t->fresh->CompareAndSwap(account_id, expected_version, next));
}

absl::Status ElectedOwner::Delete(std::string_view account_id,
                                  uint64_t expected_version) {
  auto t = Current();
  if (t == nullptr) return NotHeld();
  return Checked(t->fresh->Delete(account_id, expected_version));
}

absl::Status ElectedOwner::Shred(std::string_view account_id) {
  auto t = Current();
  if (t == nullptr) return NotHeld();
  return Checked(t->fresh->Shred(account_id));
}

absl::Status ElectedOwner::SyncBarrier(std::string_view account_id) {
  auto t = Current();
  if (t == nullptr) return NotHeld();
  return Checked(t->fresh->SyncBarrier(account_id));
}

absl::StatusOr<uint64_t> ElectedOwner::Count() const {
  auto t = Current();
  if (t == nullptr) return NotHeld();
  return t->fresh->Count();
}

absl::Status ElectedOwner::ForEach(Visitor visit) const {
  auto t = Current();
  if (t == nullptr) return NotHeld();
  return t->fresh->ForEach(std::move(visit));
}

void ElectedOwner::RenderMetrics(std::string& out) const {
  auto t = Current();
  quorum_.RenderMetrics(out, t ? t->heads.get() : nullptr);
}

std::optional<freshness::FreshnessStats> ElectedOwner::FreshStats() const {
  auto t = Current();
  if (t == nullptr) return std::nullopt;
  return t->fresh->Stats();
}

}  // namespace bkv::server
