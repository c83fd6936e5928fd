#ifndef BKV_TESTS_STORAGE_ETCD_CLUSTER_H_
#define BKV_TESTS_STORAGE_ETCD_CLUSTER_H_

// A real etcd cluster (Debian's etcd-server) on loopback for tests and
// benchmarks: its own ports and temporary directory, killed and removed on
// destruction, so tests may run in parallel. Members can be SIGKILLed,
// frozen (SIGSTOP), thawed and restarted to inject faults.

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "etcd/etcdserver/etcdserverpb/rpc.pb.h"
#include "tests/storage/link_proxy.h"
#include "tests/storage/test_util.h"

namespace bkv::storage::testing {

// CA, member and client certificates made with the openssl CLI, plus a
// second, unrelated CA and client pair (wrong TLS material).
struct TlsFiles {
  std::string ca_crt, server_crt, server_key, client_crt, client_key;
  std::string other_ca_crt, other_client_crt, other_client_key;
};
absl::StatusOr<TlsFiles> MakeTlsFiles(const std::string& dir);

class EtcdCluster {
 public:
  struct Options {
    int members = 3;
    // Serve clients over TLS with --client-cert-auth (peers stay plaintext
    // on loopback).
    const TlsFiles* tls = nullptr;
    // --quota-backend-bytes; 0: etcd's default (2 GiB).
    int64_t quota_bytes = 0;
    // Peer traffic through one LinkProxy per member, so links between
    // members can be cut (CutOff).
    bool peer_proxies = false;
  };
  // Starts the members and waits (bounded) until they have a leader.
  static absl::StatusOr<std::unique_ptr<EtcdCluster>> Start(Options options);
  ~EtcdCluster();

  // host:port of each member's client URL.
  std::vector<std::string> Endpoints() const;
  int size() const { return static_cast<int>(members_.size()); }

  // The member that is leader now, by asking each running member; bounded
  // wait for an election.
  absl::StatusOr<int> Leader(absl::Duration wait = absl::Seconds(15)) const;

  void Kill(int i);             // SIGKILL and reap
  // SIGSTOP, in force (every thread stopped) when it returns OK.
  absl::Status Freeze(int i);
  void Thaw(int i);             // SIGCONT
  bool Stopped(int i) const;    // every thread of member i stopped
  absl::Status Restart(int i);  // after Kill: same data directory
  // Bytes of member i's database in use (etcd's dbSizeInUse).
  absl::StatusOr<int64_t> DbSizeInUse(int i) const;
  // Waits (bounded) until every running member agrees on a leader.
  absl::Status WaitForLeader(absl::Duration wait = absl::Seconds(15)) const;
  int client_port(int i) const { return members_[i].client_port; }

  // With peer_proxies: cuts every peer link between member i and the
  // others, both ways (the member keeps running and serving its clients'
  // connections); HealPeerLinks restores all.
  absl::Status CutOff(int i);
  void HealPeerLinks();

 private:
  struct Member {
    std::string name, data_dir, log, client_url, peer_url;
    std::string advertised_peer_url;  // the proxy's, with peer_proxies
    std::unique_ptr<LinkProxy> peer_proxy;
    int client_port = 0;
    pid_t pid = -1;
    bool frozen = false;
  };
  EtcdCluster() = default;
  static absl::StatusOr<std::unique_ptr<EtcdCluster>> TryStart(Options options);
  absl::Status Spawn(Member& m);
  // Member i's answer to etcd's Maintenance.Status.
  absl::StatusOr<etcdserverpb::StatusResponse> Status(int i) const;

  Options options_;
  TempDir dir_;
  std::string initial_cluster_, token_;
  std::vector<Member> members_;
};

}  // namespace bkv::storage::testing

#endif  // BKV_TESTS_STORAGE_ETCD_CLUSTER_H_
