#ifndef BKV_STORAGE_ETCD_CLIENT_H_
#define BKV_STORAGE_ETCD_CLIENT_H_

// Internal to the etcd back end, its tests and the quorum's owner lease
// (server/owner_lease.h): one gRPC channel per etcd member, deadlines on
// every call, failover to the next member on a transport or leadership
// error. Callers see absl::Status only.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"

namespace bkv::storage {

struct EtcdClientOptions {
  std::vector<std::string> endpoints;  // host:port of each member
  // PEM contents; all empty with `insecure` for a plaintext loopback cluster.
  std::string ca_pem, cert_pem, key_pem;
  bool insecure = false;
  absl::Duration call_timeout = absl::Seconds(2);
  absl::Duration op_timeout = absl::Seconds(10);
};

// How a call ended, beyond its status: whether any attempt may have been
// applied although the call did not succeed (no answer came back, or etcd
// applied a write and then reported its space quota exceeded).
struct CallInfo {
  bool ambiguous = false;
};

class EtcdClient {
 public:
  static absl::StatusOr<std::unique_ptr<EtcdClient>> Create(
      EtcdClientOptions options);

  // Each call is retried on the next member until one answers or op_timeout
  // passes; only idempotent requests (reads, compare-guarded Txns, Compact,
  // constant puts) may go through here. Linearizable reads.
  absl::Status Range(const etcdserverpb::RangeRequest& req,
                     etcdserverpb::RangeResponse* resp, CallInfo* info);
  absl::Status Txn(const etcdserverpb::TxnRequest& req,
                   etcdserverpb::TxnResponse* resp, CallInfo* info);
  // The same within `timeout` in all instead of op_timeout (the owner
  // lease's calls, bounded by a fraction of its TTL).
  absl::Status Range(const etcdserverpb::RangeRequest& req,
                     etcdserverpb::RangeResponse* resp, CallInfo* info,
                     absl::Duration timeout);
  absl::Status Txn(const etcdserverpb::TxnRequest& req,
                   etcdserverpb::TxnResponse* resp, CallInfo* info,
                   absl::Duration timeout);
  absl::Status Compact(const etcdserverpb::CompactionRequest& req,
                       etcdserverpb::CompactionResponse* resp, CallInfo* info);

  // Leases (docs/rollback.md "Election"), each retried on other members
  // within `timeout` in all. A grant resent after a lost answer grants a
  // second lease that nothing uses and that expires by itself.
  // LeaseKeepAlive sends one request on the stream and reads one answer:
  // TTL 0 in it means the lease is gone. LeaseRevoke of a lease etcd no
  // longer has is OK.
  absl::StatusOr<etcdserverpb::LeaseGrantResponse> LeaseGrant(
      int64_t ttl_s, absl::Duration timeout);
  absl::StatusOr<etcdserverpb::LeaseKeepAliveResponse> LeaseKeepAlive(
      int64_t id, absl::Duration timeout);
  absl::Status LeaseRevoke(int64_t id, absl::Duration timeout);

  // Asks every member for its status (one call each, no retry): kUnavailable
  // naming each member's error if none answers, kFailedPrecondition if the
  // members belong to different clusters or are not etcd. Returns the
  // cluster's id.
  absl::StatusOr<uint64_t> Probe();

  const std::vector<std::string>& endpoints() const {
    return options_.endpoints;
  }
  // gRPC calls sent so far (every attempt counts): etcd round trips.
  uint64_t round_trips() const { return round_trips_.load(); }

 private:
  struct Member {
    std::string endpoint;
    std::unique_ptr<etcdserverpb::KV::Stub> kv;
    std::unique_ptr<etcdserverpb::Maintenance::Stub> maintenance;
    std::unique_ptr<etcdserverpb::Lease::Stub> lease;
  };
  explicit EtcdClient(EtcdClientOptions options)
      : options_(std::move(options)) {}

  template <typename Call>
  absl::Status WithFailover(const char* op, Call call, CallInfo* info) {
    return WithFailover(op, call, info, options_.op_timeout);
  }
  template <typename Call>
  absl::Status WithFailover(const char* op, Call call, CallInfo* info,
                            absl::Duration op_timeout);

  // One unary call of the Lease service (`rpc`), retried on other members.
  template <typename Req, typename Resp>
  absl::Status LeaseCall(const char* op,
                         grpc::Status (etcdserverpb::Lease::Stub::*rpc)(
                             grpc::ClientContext*, const Req&, Resp*),
                         const Req& req, Resp* resp, absl::Duration timeout) {
    return WithFailover(
        op,
        [&](Member& m, grpc::ClientContext* ctx) {
          return ((*m.lease).*rpc)(ctx, req, resp);
        },
        nullptr, timeout);
  }

  EtcdClientOptions options_;
  std::vector<Member> members_;
  std::atomic<size_t> preferred_{0};
  std::atomic<uint64_t> round_trips_{0};
};

}  // namespace bkv::storage

#endif  // BKV_STORAGE_ETCD_CLIENT_H_
