#include "server/owner_lease.h"

#include <time.h>

#include "absl/random/random.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/log.h"

namespace bkv::server {
namespace {

int64_t BootNanos() {
  timespec ts{};
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

OwnerLease::Options WithClock(OwnerLease::Options o) {
  if (!o.now) o.now = BootNanos;
  return o;
}

}  // namespace

OwnerLease::OwnerLease(storage::EtcdClient& etcd, Options options,
                       Callbacks callbacks)
    : etcd_(etcd),
      options_(WithClock(std::move(options))),
      cb_(std::move(callbacks)) {}

std::unique_ptr<OwnerLease> OwnerLease::Create(storage::EtcdClient& etcd,
                                               Options options,
                                               Callbacks callbacks) {
  return std::unique_ptr<OwnerLease>(
      new OwnerLease(etcd, std::move(options), std::move(callbacks)));
}

void OwnerLease::Start() {
  // A nonce per process tells this node's previous incarnation (its key
  // expires within one TTL) from another process with the same id.
  value_ = absl::StrCat(options_.node_id, "/",
                        absl::Hex(absl::Uniform<uint64_t>(absl::BitGen())));
  thread_ = std::thread([this] { Run(); });
}

void OwnerLease::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

bool OwnerLease::Held() const {
  const int64_t until = held_until_.load();
  return until != 0 && Now() < until;
}

void OwnerLease::Resign(const std::string& why, uint64_t win) {
  absl::MutexLock lock(&mu_);
  // Only the held lease of that win can be given up (a late resign of an
  // earlier period must not cut a later one: finding 1 of the review).
  if (held_until_.load() == 0 || win != win_.load() || !resigned_.empty()) {
    return;
  }
  resigned_ = why.empty() ? "resigned" : why;
}

void OwnerLease::Hold(int64_t sent_ns, int64_t granted_s) {
  // Stopping before etcd is always safe; trusting a huge grant is not.
  const int64_t ttl_s = std::min(granted_s, absl::ToInt64Seconds(options_.ttl));
  held_until_.store(sent_ns + ttl_s * 1'000'000'000 * 5 / 6);
}

void OwnerLease::CheckDuplicate(const std::string& value) {
  const std::string mine = absl::StrCat(options_.node_id, "/");
  const int64_t now = Now();
  if (!absl::StartsWith(value, mine) || value == value_) {
    duplicate_since_.reset();
    ClearDuplicate(now);
    return;
  }
  clear_since_.reset();
  if (!duplicate_since_) duplicate_since_ = now;
  // A crashed previous incarnation's key lives one TTL, two across an etcd
  // leader change (which renews every lease): 3 TTLs is another process.
  if (now - *duplicate_since_ <= 3 * absl::ToInt64Nanoseconds(options_.ttl)) {
    return;
  }
  if (!duplicate_seen_.exchange(true) && cb_.duplicate) cb_.duplicate();
  LogSampled("error", "quorum_duplicate_node_id", "quorum_duplicate_node_id",
             {{"node_id", absl::StrCat(options_.node_id)},
              {"holder", value},
              {"hint",
               "another process runs with this node's id (a copied data_dir "
               "or token); two processes with one endorsement key can fork "
               "the chain, so this one stopped endorsing and campaigning: "
               "stop the process you don't keep; restart this one if it is "
               "the one you keep"}});
}

void OwnerLease::ClearDuplicate(int64_t now) {
  if (!duplicate_seen_.load()) return;
  if (!clear_since_) clear_since_ = now;
  if (now - *clear_since_ <= 3 * absl::ToInt64Nanoseconds(options_.ttl)) {
    return;
  }
  clear_since_.reset();
  duplicate_seen_.store(false);
  if (cb_.cleared) cb_.cleared();
  Log("warn", "quorum_duplicate_node_id_cleared",
      {{"node_id", absl::StrCat(options_.node_id)},
       {"note",
        "no other process has held the owner key under this node's id for "
        "3 TTLs: this one endorses and campaigns again (the key's value is "
        "not signed, so it alone can't switch a node off for good)"}});
}

bool OwnerLease::Pause(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopping_ || !resigned_.empty();
  };
  mu_.AwaitWithTimeout(absl::Condition(&woken), d);
  return !stopping_;
}

absl::StatusOr<std::optional<std::string>> OwnerLease::Holder() {
  etcdserverpb::RangeRequest req;
  req.set_key(options_.key);
  etcdserverpb::RangeResponse resp;
  absl::Status s = etcd_.Range(req, &resp, nullptr, options_.ttl / 3);
  if (!s.ok()) return s;
  if (resp.kvs_size() == 0) return std::nullopt;
  return resp.kvs(0).value();
}

absl::StatusOr<int64_t> OwnerLease::Campaign() {
  const int64_t sent = Now();
  auto grant =
      etcd_.LeaseGrant(absl::ToInt64Seconds(options_.ttl), options_.ttl / 3);
  if (!grant.ok()) return grant.status();
  lease_ = grant->id();
  // Create-if-absent: only one member's Txn can create the key.
  etcdserverpb::TxnRequest txn;
  etcdserverpb::Compare* c = txn.add_compare();
  c->set_key(options_.key);
  c->set_target(etcdserverpb::Compare::CREATE);
  c->set_result(etcdserverpb::Compare::EQUAL);
  c->set_create_revision(0);
  auto* put = txn.add_success()->mutable_request_put();
  put->set_key(options_.key);
  put->set_value(value_);
  put->set_lease(lease_);
  txn.add_failure()->mutable_request_range()->set_key(options_.key);
  etcdserverpb::TxnResponse resp;
  absl::Status s = etcd_.Txn(txn, &resp, nullptr, options_.ttl / 3);
  int64_t created = 0;
  if (s.ok() && resp.succeeded()) {
    created = resp.header().revision();
  } else if (s.ok() && resp.responses_size() == 1 &&
             resp.responses(0).response_range().kvs_size() == 1 &&
             resp.responses(0).response_range().kvs(0).lease() == lease_) {
    // A resend after the first send created it: ours.
    created = resp.responses(0).response_range().kvs(0).create_revision();
  }
  if (created == 0) {
    etcd_.LeaseRevoke(lease_, options_.ttl / 3).IgnoreError();
    lease_ = 0;
    if (!s.ok()) return s;
    return 0;
  }
  Hold(sent, grant->ttl());
  return created;
}

std::string OwnerLease::KeepAlive() {
  for (;;) {
    const absl::Duration left = absl::Nanoseconds(held_until_.load() - Now());
    if (!Pause(std::min(options_.ttl / 3, left))) return "shutting down";
    {
      absl::MutexLock lock(&mu_);
      if (!resigned_.empty()) return resigned_;
    }
    if (!Held()) {
      return "no keep-alive answered within the lease's TTL (local clock)";
    }
    const int64_t sent = Now();
    auto r = etcd_.LeaseKeepAlive(lease_, options_.ttl / 3);
    if (r.ok() && r->ttl() <= 0) return "etcd no longer has the lease";
    if (r.ok()) Hold(sent, r->ttl());
    // A failed keep-alive is retried at the next tick while the lease is
    // held; the local deadline ends it.
  }
}

void OwnerLease::Run() {
  const std::string node = absl::StrCat(options_.node_id);
  bool absent_before = false;
  while (Pause(absl::ZeroDuration())) {
    absl::Duration backoff = options_.ttl / 3;
    auto holder = Holder();
    if (holder.ok()) CheckDuplicate(holder->value_or(""));
    const bool absent = holder.ok() && !holder->has_value();
    // A non-candidate, or a node whose id another process uses, only
    // follows.
    const bool may = options_.candidate && !duplicate_seen_.load();
    bool campaign = may && absent && (absent_before || eager_.load());
    if (campaign && cb_.may_campaign && !cb_.may_campaign()) campaign = false;
    absent_before = absent && !campaign;
    if (campaign) {
      auto created = Campaign();
      if (created.ok() && *created != 0) {
        Log("info", "quorum_owner_lease_won",
            {{"node_id", node},
             {"key", options_.key},
             {"create_revision", absl::StrCat(*created)},
             {"ttl_s", absl::StrCat(absl::ToInt64Seconds(options_.ttl))}});
        cb_.won({*created, lease_, ++win_});
        const std::string why = KeepAlive();
        held_until_.store(0);
        cb_.lost(why);
        Log("warn", "quorum_owner_lease_lost",
            {{"node_id", node}, {"why", why}});
        etcd_.LeaseRevoke(lease_, options_.ttl / 3).IgnoreError();
        lease_ = 0;
        absl::MutexLock lock(&mu_);
        // Resigned (fenced, take-over failed): let another member win.
        if (!resigned_.empty()) backoff = options_.ttl;
        resigned_.clear();
      } else if (!created.ok()) {
        LogSampled("warn", "quorum_owner_lease_unavailable",
                   "quorum_owner_lease_unavailable",
                   {{"error", std::string(created.status().message())}});
      }
    } else if (!holder.ok()) {
      LogSampled("warn", "quorum_owner_lease_unavailable",
                 "quorum_owner_lease_unavailable",
                 {{"error", std::string(holder.status().message())}});
    }
    if (!Pause(backoff)) break;
  }
}

}  // namespace bkv::server
