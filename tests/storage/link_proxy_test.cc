// The cut link the cluster tests rely on: once Sever/SeverFrom returns, no
// byte sent afterwards crosses. (A cut that took effect up to one poll tick
// later let a write through to a cut-off etcd member: a CI failure.)

#include "tests/storage/link_proxy.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace bkv::storage::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// Each record: the sender's letter, padding, and a sequence number.
constexpr size_t kRecord = 16;

int Loopback(int port, bool listen_on_it) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  auto* sa = reinterpret_cast<sockaddr*>(&a);
  const bool ok = listen_on_it ? bind(fd, sa, sizeof(a)) == 0 &&
                                     listen(fd, 16) == 0
                               : connect(fd, sa, sizeof(a)) == 0;
  if (!ok) {
    close(fd);
    return -1;
  }
  return fd;
}

int PortOf(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

// Accepts connections and records, per sender letter, the highest sequence
// number that arrived. Bounded by its owner's lifetime.
class Sink {
 public:
  Sink() : fd_(Loopback(0, true)), thread_([this] { Run(); }) {}
  ~Sink() {
    stop_ = true;
    thread_.join();
    close(fd_);
  }
  int port() const { return PortOf(fd_); }
  int64_t Highest(char sender) {
    absl::MutexLock lock(&mu_);
    auto it = highest_.find(sender);
    return it == highest_.end() ? -1 : it->second;
  }

 private:
  struct Conn {
    int fd;
    bool past_header = false;
    std::string buf;
  };
  void Run() {
    std::vector<Conn> conns;
    while (!stop_) {
      std::vector<pollfd> p{{fd_, POLLIN, 0}};
      for (const Conn& c : conns) p.push_back({c.fd, POLLIN, 0});
      if (poll(p.data(), p.size(), 20) <= 0) continue;
      if (p[0].revents & POLLIN) {
        conns.push_back({accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC), false, {}});
      }
      for (size_t i = 1; i < p.size(); ++i) {
        if (p[i].revents & POLLIN) Read(conns[i - 1]);
      }
    }
    for (const Conn& c : conns) close(c.fd);
  }
  void Read(Conn& c) {
    char buf[4096];
    const ssize_t n = read(c.fd, buf, sizeof(buf));
    if (n <= 0) return;
    c.buf.append(buf, static_cast<size_t>(n));
    if (!c.past_header) {
      const size_t end = c.buf.find("\r\n\r\n");
      if (end == std::string::npos) return;
      c.buf.erase(0, end + 4);
      c.past_header = true;
    }
    absl::MutexLock lock(&mu_);
    for (; c.buf.size() >= kRecord; c.buf.erase(0, kRecord)) {
      int64_t seq;
      std::memcpy(&seq, c.buf.data() + 8, sizeof(seq));
      int64_t& h = highest_.try_emplace(c.buf[0], -1).first->second;
      h = std::max(h, seq);
    }
  }

  const int fd_;
  std::atomic<bool> stop_{false};
  absl::Mutex mu_;
  std::map<char, int64_t> highest_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

// Sends records through the proxy as fast as the link takes them, for at
// most `run`; `next` is the sequence number the next record will carry.
class Sender {
 public:
  Sender(int proxy_port, char letter, milliseconds run)
      : fd_(Loopback(proxy_port, false)), letter_(letter) {
    const std::string head =
        std::string("POST /raft HTTP/1.1\r\nX-Server-From: ") + letter +
        "\r\n\r\n";
    if (fd_ >= 0) send(fd_, head.data(), head.size(), MSG_NOSIGNAL);
    thread_ = std::thread([this, run] { Run(run); });
  }
  ~Sender() {
    thread_.join();
    close(fd_);
  }
  int64_t next() const { return next_.load(); }

 private:
  void Run(milliseconds run) {
    const auto until = Clock::now() + run;
    while (fd_ >= 0 && Clock::now() < until) {
      char rec[kRecord] = {letter_};
      const int64_t seq = next_.fetch_add(1);
      std::memcpy(rec + 8, &seq, sizeof(seq));
      // Non-blocking: a held link fills the buffers; drop and go on.
      send(fd_, rec, sizeof(rec), MSG_NOSIGNAL | MSG_DONTWAIT);
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }

  const int fd_;
  const char letter_;
  std::atomic<int64_t> next_{0};
  std::thread thread_;
};

// Waits (bounded) until `sink` has seen records from `sender`.
bool Flowing(Sink& sink, char sender) {
  for (int i = 0; i < 200 && sink.Highest(sender) < 0; ++i) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  return sink.Highest(sender) >= 0;
}

TEST(LinkProxyTest, NothingSentAfterSeverReturnsCrossesTheLink) {
  Sink sink;
  auto proxy = LinkProxy::Start(sink.port());
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  Sender a((*proxy)->port(), 'a', milliseconds(1500));
  ASSERT_TRUE(Flowing(sink, 'a'));
  (*proxy)->Sever();
  const int64_t first_after_cut = a.next();
  std::this_thread::sleep_for(milliseconds(500));
  EXPECT_LT(sink.Highest('a'), first_after_cut)
      << "a record sent after Sever returned crossed the link";
}

TEST(LinkProxyTest, SeverFromCutsOnlyThatSender) {
  Sink sink;
  auto proxy = LinkProxy::Start(sink.port());
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  Sender a((*proxy)->port(), 'a', milliseconds(1500));
  Sender b((*proxy)->port(), 'b', milliseconds(1500));
  ASSERT_TRUE(Flowing(sink, 'a') && Flowing(sink, 'b'));
  (*proxy)->SeverFrom("a");
  const int64_t a_after_cut = a.next(), b_after_cut = b.next();
  std::this_thread::sleep_for(milliseconds(500));
  EXPECT_LT(sink.Highest('a'), a_after_cut);
  EXPECT_GT(sink.Highest('b'), b_after_cut) << "the other sender was cut too";
}

}  // namespace
}  // namespace bkv::storage::testing
