#ifndef BKV_TESTS_STORAGE_LINK_PROXY_H_
#define BKV_TESTS_STORAGE_LINK_PROXY_H_

// A TCP proxy on loopback standing for one network link, which a test can
// cut and heal: a cut link passes no byte either way and keeps its
// connections open and silent, as a dropped route does (peers notice only
// by their own timeouts), and new connections are accepted but go nowhere.
// Healing closes the connections held silent, so both sides reconnect.
//
// etcd's peer traffic names its sender (HTTP header `X-Server-From: <member
// id in hex>`), so one proxy in front of a member's peer port can cut the
// link from one other member only.

#include <atomic>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace bkv::storage::testing {

class LinkProxy {
 public:
  // Forwards 127.0.0.1:port() to `target_port` on 127.0.0.1.
  static absl::StatusOr<std::unique_ptr<LinkProxy>> Start(int target_port);
  ~LinkProxy();
  LinkProxy(const LinkProxy&) = delete;
  LinkProxy& operator=(const LinkProxy&) = delete;

  int port() const { return port_; }
  std::string address() const;

  // Cuts every connection, or only those whose request names `from` as
  // its sender; in force when the call returns.
  void Sever();
  void SeverFrom(const std::string& from);
  // Restores the link; the connections held silent are closed.
  void Heal();
  // Connections accepted so far (a test can check traffic went through).
  int connections() const { return connections_.load(); }

 private:
  struct Conn;
  LinkProxy() = default;
  void AcceptLoop();
  void Pump(int client);
  bool IsCut(const std::string& from) const;
  bool CutLocked(const std::string& from) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A pump forwards only between these, never while a cut is in force.
  bool BeginForward(const std::string& from);
  void EndForward();
  bool Idle() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return forwarding_ == 0;
  }

  int listen_fd_ = -1, port_ = 0, target_port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::atomic<uint64_t> heals_{0};
  mutable absl::Mutex mu_;
  bool cut_all_ ABSL_GUARDED_BY(mu_) = false;
  std::set<std::string> cut_from_ ABSL_GUARDED_BY(mu_);
  int forwarding_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread acceptor_;
  std::vector<std::thread> pumps_ ABSL_GUARDED_BY(mu_);
};

}  // namespace bkv::storage::testing

#endif  // BKV_TESTS_STORAGE_LINK_PROXY_H_
