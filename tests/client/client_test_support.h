#ifndef BKV_TESTS_CLIENT_CLIENT_TEST_SUPPORT_H_
#define BKV_TESTS_CLIENT_CLIENT_TEST_SUPPORT_H_

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "client/blob_store.h"

namespace bkv::testing {

// A fresh directory under $TMPDIR, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "bkv-client-XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const {
    return path_ + "/" + name;
  }

 private:
  std::string path_;
};

inline std::vector<uint8_t> RandomBytes(size_t n, uint32_t seed = 1) {
  std::mt19937 gen(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(gen());
  return v;
}

inline void WriteFile(const std::string& path, std::span<const uint8_t> data) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(data.data()), data.size());
}

inline std::vector<uint8_t> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// Files and directories directly or indirectly under `dir`.
inline std::vector<std::string> Listing(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator();
       it.increment(ec)) {
    out.push_back(std::filesystem::relative(it->path(), dir).string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The servers started by tests/servers/servers.sh (ctest fixture).
inline std::map<std::string, std::string> ServersEnv() {
  std::map<std::string, std::string> env;
#ifdef BKV_TEST_SERVERS_ENV
  std::ifstream in(BKV_TEST_SERVERS_ENV);
  std::string line;
  while (std::getline(in, line)) {
    const size_t eq = line.find('=');
    if (eq != std::string::npos) env[line.substr(0, eq)] = line.substr(eq + 1);
  }
#endif
  return env;
}

// For tests run against every store: exports the servers' credentials
// (S3, WebDAV) and returns the URL of store `kind` ("file", "callback",
// "s3" or "webdav") for a name unique to the running test, `dir` (its own
// temp dir) and `suffix`; file stores live under `dir`.
inline std::string StoreUrlForTest(const std::string& kind,
                                   std::map<std::string, std::string>& env,
                                   const std::string& dir,
                                   const std::string& suffix) {
  setenv("AWS_ACCESS_KEY_ID", env["BKV_TEST_S3_ACCESS_KEY"].c_str(), 1);
  setenv("AWS_SECRET_ACCESS_KEY", env["BKV_TEST_S3_SECRET_KEY"].c_str(), 1);
  setenv("BKV_WEBDAV_USER", env["BKV_TEST_WEBDAV_USER"].c_str(), 1);
  setenv("BKV_WEBDAV_PASSWORD", env["BKV_TEST_WEBDAV_PASSWORD"].c_str(), 1);
  std::string id = "t-";
  for (char c : std::string(
           ::testing::UnitTest::GetInstance()->current_test_info()->name())) {
    id += std::isalnum(static_cast<unsigned char>(c)) ? c : '-';
  }
  // The temp dir's unique name too: a repeated or parallel run of the same
  // test must not find the previous run's objects on the shared servers.
  id += "-" + std::filesystem::path(dir).filename().string() + "-" + suffix;
  if (kind == "file") return "file://" + dir + "/" + id;
  if (kind == "callback") return "callback://" + dir + "/" + id;
  if (kind == "s3") {
    return "s3://" + env["BKV_TEST_S3_BUCKET"] + "/" + id +
           "?endpoint=" + env["BKV_TEST_S3_ENDPOINT"] + "&region=us-east-1";
  }
  return "webdav://" + env["BKV_TEST_WEBDAV_HOSTPORT"] + "/sets/" + id;
}

// Forwards every call to a real store; a test's fault-injecting store
// overrides only the calls it changes.
class ForwardingBlobStore : public BlobStore {
 public:
  explicit ForwardingBlobStore(BlobStore& inner) : inner_(inner) {}
  absl::Status Put(std::string_view name, ByteSource& source) override {
    return inner_.Put(name, source);
  }
  absl::Status PutIfAbsent(std::string_view name, ByteSource& source) override {
    return inner_.PutIfAbsent(name, source);
  }
  absl::Status Get(std::string_view name, const ByteSink& sink) override {
    return inner_.Get(name, sink);
  }
  absl::StatusOr<std::vector<BlobInfo>> List() override {
    return inner_.List();
  }
  absl::Status Delete(std::string_view name) override {
    return inner_.Delete(name);
  }
  absl::StatusOr<BlobInfo> Stat(std::string_view name) override {
    return inner_.Stat(name);
  }
  std::string url() const override { return inner_.url(); }

 protected:
  BlobStore& inner_;
};

// A BlobStore whose Put fails after `fail_after` bytes for objects other
// than the manifest, as a crash or a dropped connection would.
class FailingBlobStore final : public ForwardingBlobStore {
 public:
  FailingBlobStore(BlobStore& inner, uint64_t fail_after)
      : ForwardingBlobStore(inner), fail_after_(fail_after) {}

  absl::Status Put(std::string_view name, ByteSource& source) override {
    if (name == "latest") return inner_.Put(name, source);
    Limited limited(source, fail_after_);
    return inner_.Put(name, limited);
  }

 private:
  class Limited final : public ByteSource {
   public:
    Limited(ByteSource& in, uint64_t left) : in_(in), left_(left) {}
    absl::StatusOr<size_t> Read(std::span<uint8_t> out) override {
      if (left_ == 0) {
        return absl::UnavailableError("injected failure: connection lost");
      }
      auto n = in_.Read(out.first(std::min<uint64_t>(out.size(), left_)));
      if (n.ok()) left_ -= *n;
      return n;
    }

   private:
    ByteSource& in_;
    uint64_t left_;
  };
  uint64_t fail_after_;
};

}  // namespace bkv::testing

#endif  // BKV_TESTS_CLIENT_CLIENT_TEST_SUPPORT_H_
