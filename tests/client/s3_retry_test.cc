// Fault injection for the S3 store's retry policy: a loopback HTTP server
// that answers 503 a given number of times before it answers 200. (The store
// itself is tested against s3rver in store_test.cc.)
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>

#include "client/blob_store.h"

namespace bkv {
namespace {

using ::testing::HasSubstr;

class FlakyServer {
 public:
  explicit FlakyServer(int failures) : failures_(failures) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    socklen_t len = sizeof(addr);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    listen(fd_, 8);
    thread_ = std::thread([this] { Serve(); });
  }
  ~FlakyServer() {
    stop_ = true;
    thread_.join();
    close(fd_);
  }
  int port() const { return port_; }
  int requests() const { return requests_; }

 private:
  void Serve() {
    // Bounded: at most 20 connections or until stopped.
    for (int i = 0; i < 20 && !stop_; ++i) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) {
        --i;
        continue;
      }
      int c = accept(fd_, nullptr, nullptr);
      std::string req;
      char buf[4096];
      // Read headers and a small body (Content-Length bytes).
      while (req.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = read(c, buf, sizeof(buf));
        if (n <= 0) break;
        req.append(buf, n);
      }
      size_t body = 0;
      if (size_t p2 = req.find("Content-Length: "); p2 != std::string::npos) {
        body = std::stoul(req.substr(p2 + 16));
      }
      size_t have = req.size() - req.find("\r\n\r\n") - 4;
      while (have < body) {
        ssize_t n = read(c, buf, sizeof(buf));
        if (n <= 0) break;
        have += n;
      }
      const bool fail = requests_++ < failures_;
      const std::string resp =
          fail ? "HTTP/1.1 503 Service Unavailable\r\nContent-Length: "
                 "9\r\nConnection: close\r\n\r\nSlow Down"
               : "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: "
                 "close\r\n\r\n";
      (void)!write(c, resp.data(), resp.size());
      close(c);
    }
  }

  int fd_;
  int port_ = 0;
  const int failures_;
  std::atomic<int> requests_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

std::unique_ptr<BlobStore> Open(int port, int attempts) {
  setenv("AWS_ACCESS_KEY_ID", "id", 1);
  setenv("AWS_SECRET_ACCESS_KEY", "secret", 1);
  BlobStoreOptions o;
  o.max_attempts = attempts;
  o.retry_base_delay_ms = 5;
  return *OpenBlobStore("s3://b/p?endpoint=http://127.0.0.1:" +
                            std::to_string(port) + "&region=us-east-1",
                        o);
}

TEST(S3RetryTest, RetriesServerErrorsThenSucceeds) {
  FlakyServer server(2);
  auto store = Open(server.port(), 4);
  std::vector<uint8_t> data(100, 7);
  absl::Status s = PutBytes(*store, "obj", data);
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(server.requests(), 3);
}

TEST(S3RetryTest, GivesUpAfterMaxAttemptsNamingTheCause) {
  FlakyServer server(10);
  auto store = Open(server.port(), 3);
  absl::Status s = store->Delete("obj");
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(s.message()), HasSubstr("HTTP 503"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("Slow Down"));
  EXPECT_EQ(server.requests(), 3);
}

}  // namespace
}  // namespace bkv
