#ifndef BKV_SERVER_OWNER_LEASE_H_
#define BKV_SERVER_OWNER_LEASE_H_

// Who of a quorum over etcd tries to own the head chain (docs/rollback.md
// "Election"): one thread follows `<prefix>fresh/owner`, campaigns when it
// is absent (LeaseGrant, then a create-if-absent Txn of the key with the
// lease, value = node id), keeps the lease alive every TTL/3 and holds it,
// locally, until TTL·5/6 after sending the last keep-alive etcd answered,
// so it stops before etcd can expire it. The lease decides only who tries:
// the term fences (a second holder can't fork the chain).
//
// Thread-safe. `won` and `lost` run on the lease's thread, in turn: `won`
// must return at once (start the take-over elsewhere); `lost` runs when the
// lease is lost or resigned, before it is revoked, and must stop serving.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "storage/etcd_client.h"

namespace bkv::server {

class OwnerLease {
 public:
  struct Options {
    std::string key;  // <prefix>fresh/owner
    uint32_t node_id = 0;
    absl::Duration ttl = absl::Seconds(5);
    // Nanoseconds on the clock the local deadline is measured on; empty:
    // CLOCK_BOOTTIME, which counts a suspend as etcd's timer does (finding
    // 8). Tests inject one.
    std::function<int64_t()> now;
    // false: follow only, never campaign (`[freshness] owner_candidate`,
    // finding 7): an endorser-only member.
    bool candidate = true;
  };
  // One lease period: the key's create revision and lease, and which win
  // of this process it is (1, 2, ...), for Resign.
  struct Won {
    int64_t create_revision = 0;
    int64_t lease = 0;
    uint64_t win = 0;
  };
  struct Callbacks {
    std::function<void(const Won& won)> won;
    std::function<void(const std::string& why)> lost;
    // On the lease's thread, when another process is seen holding the key
    // under this node's id for 3 TTLs (then this node does not campaign),
    // and `cleared` once that evidence has been gone for 3 TTLs (the
    // value is unsigned: an etcd writer can forge it, lease3 review
    // finding 2, so it must not switch a node off for good).
    std::function<void()> duplicate;
    // Asked before each campaign when set: false keeps this node from
    // campaigning this time (its vault keys are not the cluster's).
    std::function<bool()> may_campaign;
    std::function<void()> cleared;
  };

  // `etcd` must outlive the lease. Nothing runs before Start.
  static std::unique_ptr<OwnerLease> Create(storage::EtcdClient& etcd,
                                            Options options,
                                            Callbacks callbacks);
  // Starts following (once).
  void Start();
  // Steps down (lost runs), revokes the lease so another member can win at
  // once, and stops; idempotent. The destructor stops too.
  void Stop();
  ~OwnerLease() { Stop(); }

  // Whether this node holds the lease now, by its local clock (BOOTTIME).
  bool Held() const;
  // Gives the lease of win `win` up (fenced, a take-over that failed, the
  // owner guard refused a write): `lost` runs on the lease's thread, the
  // lease is revoked, and the node waits one TTL before it campaigns again.
  // Ignored unless `win` is the period held now: a late resign of an
  // earlier period never ends a later one. Never blocks.
  void Resign(const std::string& why, uint64_t win);
  // Another process held the key under this node's id for longer than 3
  // TTLs (a copied data_dir or token: finding 10 of the election's review);
  // stays true.
  bool duplicate_seen() const { return duplicate_seen_.load(); }
  // Lease periods won so far.
  uint64_t wins() const { return win_.load(); }
  // Eager: campaign as soon as the key is absent. Otherwise only once it
  // was absent at two follows in a row (TTL/3 apart), so a node that can
  // resume its unfenced term (finding 2) wins first after a brief lapse.
  void SetEager(bool eager) { eager_.store(eager); }

 private:
  OwnerLease(storage::EtcdClient& etcd, Options options, Callbacks callbacks);
  void Run();
  // The key's holder's value, or nullopt when the key is absent.
  absl::StatusOr<std::optional<std::string>> Holder();
  // A lease and the key: its create revision, or 0 if another node won.
  absl::StatusOr<int64_t> Campaign();
  // Keeps the lease alive until it is lost; says why.
  std::string KeepAlive();
  // Held until `sent` + ttl·5/6 (the 1/6 covers clock rate differences),
  // ttl the smaller of etcd's `granted_s` and the TTL asked for.
  void Hold(int64_t sent_ns, int64_t granted_s);
  int64_t Now() const { return options_.now(); }
  // Logs another process holding the key with this node's id (a copied
  // data_dir or token) once that lasted longer than 3 TTLs; lifts it once
  // the key showed no such holder for 3 TTLs. `value` "" = no holder.
  void CheckDuplicate(const std::string& value);
  void ClearDuplicate(int64_t now);
  // Waits `d` or until stopped or resigned; false once stopping.
  bool Pause(absl::Duration d);

  storage::EtcdClient& etcd_;
  const Options options_;
  const Callbacks cb_;
  int64_t lease_ = 0;  // the lease thread's
  // The key's value while held: "<node id>/<nonce of this process>".
  std::string value_;
  std::optional<int64_t> duplicate_since_;  // Now() when first seen
  std::optional<int64_t> clear_since_;      // Now() when last gone
  std::atomic<uint64_t> win_{0};
  // Now() until which the lease is held; 0 while not held.
  std::atomic<int64_t> held_until_{0};
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::string resigned_ ABSL_GUARDED_BY(mu_);  // why, "" = not resigned
  std::atomic<bool> duplicate_seen_{false};
  std::atomic<bool> eager_{false};
  std::thread thread_;
};

}  // namespace bkv::server

#endif  // BKV_SERVER_OWNER_LEASE_H_
