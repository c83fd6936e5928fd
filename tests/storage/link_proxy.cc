#include "tests/storage/link_proxy.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace bkv::storage::testing {
namespace {

constexpr int kTickMs = 50;

int ConnectLoopback(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (fd >= 0 && connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// The sender an HTTP request names in `X-Server-From` (etcd's peer
// traffic), read without consuming it; "" for other traffic. Bounded: 8 KiB
// and one second.
std::string PeekSender(int fd) {
  constexpr std::string_view kHeader = "X-Server-From: ";
  char buf[8192];
  const absl::Time give_up = absl::Now() + absl::Seconds(1);
  while (absl::Now() < give_up) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, kTickMs) <= 0) continue;
    const ssize_t n = recv(fd, buf, sizeof(buf), MSG_PEEK);
    if (n <= 0) return "";
    const std::string_view head(buf, static_cast<size_t>(n));
    const size_t end = head.find("\r\n\r\n");
    if (end == std::string_view::npos &&
        n < static_cast<ssize_t>(sizeof(buf))) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      continue;
    }
    const size_t at = head.substr(0, end).find(kHeader);
    if (at == std::string_view::npos) return "";
    const std::string_view rest = head.substr(at + kHeader.size());
    return std::string(rest.substr(0, rest.find("\r\n")));
  }
  return "";
}

// Moves what `from` has to `to`; false at end of stream or error.
bool Forward(int from, int to) {
  char buf[65536];
  const ssize_t n = read(from, buf, sizeof(buf));
  if (n <= 0) return false;
  for (ssize_t done = 0; done < n;) {
    const ssize_t w = send(to, buf + done, n - done, MSG_NOSIGNAL);
    if (w <= 0) return false;
    done += w;
  }
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<LinkProxy>> LinkProxy::Start(int target_port) {
  std::unique_ptr<LinkProxy> p(new LinkProxy());
  p->target_port_ = target_port;
  p->listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (p->listen_fd_ < 0 ||
      bind(p->listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      listen(p->listen_fd_, 64) != 0 ||
      getsockname(p->listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    return absl::InternalError("link proxy: cannot listen on loopback");
  }
  p->port_ = ntohs(a.sin_port);
  p->acceptor_ = std::thread([raw = p.get()] { raw->AcceptLoop(); });
  return p;
}

LinkProxy::~LinkProxy() {
  stop_ = true;
  if (acceptor_.joinable()) acceptor_.join();
  std::vector<std::thread> pumps;
  {
    absl::MutexLock lock(&mu_);
    pumps.swap(pumps_);
  }
  for (auto& t : pumps) t.join();
  if (listen_fd_ >= 0) close(listen_fd_);
}

std::string LinkProxy::address() const {
  return absl::StrCat("127.0.0.1:", port_);
}

// Both return only once no forward is under way, so no byte crosses the
// link after the call (a test counts on a cut being in force at once).
void LinkProxy::Sever() {
  absl::MutexLock lock(&mu_);
  cut_all_ = true;
  mu_.Await(absl::Condition(this, &LinkProxy::Idle));
}

void LinkProxy::SeverFrom(const std::string& from) {
  absl::MutexLock lock(&mu_);
  cut_from_.insert(from);
  mu_.Await(absl::Condition(this, &LinkProxy::Idle));
}

void LinkProxy::Heal() {
  absl::MutexLock lock(&mu_);
  cut_all_ = false;
  cut_from_.clear();
}

bool LinkProxy::IsCut(const std::string& from) const {
  absl::MutexLock lock(&mu_);
  return CutLocked(from);
}

bool LinkProxy::CutLocked(const std::string& from) const {
  return cut_all_ || (!from.empty() && cut_from_.contains(from));
}

bool LinkProxy::BeginForward(const std::string& from) {
  absl::MutexLock lock(&mu_);
  if (CutLocked(from)) return false;
  ++forwarding_;
  return true;
}

void LinkProxy::EndForward() {
  absl::MutexLock lock(&mu_);
  --forwarding_;
}

void LinkProxy::AcceptLoop() {
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (poll(&p, 1, kTickMs) <= 0) continue;
    const int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    ++connections_;
    absl::MutexLock lock(&mu_);
    pumps_.emplace_back([this, client] { Pump(client); });
  }
}

// One connection until either side closes, the proxy stops, or a cut that
// held it silent heals. Each wait is one tick, so `stop_` is seen quickly
// (a send to a frozen peer gives up after a second).
void LinkProxy::Pump(int client) {
  const std::string from = PeekSender(client);
  const int upstream = ConnectLoopback(target_port_);
  const timeval send_timeout{1, 0};
  for (int fd : {client, upstream}) {
    if (fd >= 0) {
      setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send_timeout,
                 sizeof(send_timeout));
    }
  }
  bool held = false;
  while (upstream >= 0 && !stop_) {
    if (IsCut(from)) {
      held = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(kTickMs));
      continue;
    }
    if (held) break;  // healed: both sides reconnect afresh
    pollfd p[2] = {{client, POLLIN, 0}, {upstream, POLLIN, 0}};
    if (poll(p, 2, kTickMs) <= 0) continue;
    // A cut made while this pump waited in poll holds what arrived.
    if (!BeginForward(from)) continue;
    const bool open =
        (!(p[0].revents & (POLLIN | POLLHUP | POLLERR)) ||
         Forward(client, upstream)) &&
        (!(p[1].revents & (POLLIN | POLLHUP | POLLERR)) ||
         Forward(upstream, client));
    EndForward();
    if (!open) break;
  }
  if (upstream >= 0) close(upstream);
  close(client);
}

}  // namespace bkv::storage::testing
