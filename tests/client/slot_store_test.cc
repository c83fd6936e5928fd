// A legacy set's first keyring (review #3) through the real bkv binary, on a
// file store and a WebDAV store (nginx): a key that does not open the set's
// objects never becomes its master key, a store with no backup is not
// migrated, and a keyring that vanishes after this client saw it is DataLoss
// with nothing written.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "client/blob_store.h"
#include "crypto/keyring.h"
#include "tests/client/cli_runner.h"
#include "tests/client/client_test_support.h"

namespace bkv {
namespace {

namespace fs = std::filesystem;

class SlotStoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    env_ = testing::ServersEnv();
    if (GetParam() != "file") {
      ASSERT_FALSE(env_.empty()) << "servers.env missing: run through ctest";
    }
    setenv("BKV_STATE_DIR", (dir_ / "state").c_str(), 1);
    fs::create_directories(dir_ / "src");
    std::ofstream(dir_ / "src/notes.txt") << std::string(50'000, 'n');
    ASSERT_EQ(Run({"key", "new", "--out", Key("k1")}).exit_code, 0);
    ASSERT_EQ(Run({"key", "new", "--out", Key("other")}).exit_code, 0);
  }
  std::string Key(const std::string& name) { return dir_ / name; }
  std::string Url(const std::string& suffix) {
    return testing::StoreUrlForTest(GetParam(), env_, dir_.path(), suffix);
  }
  CliRun Run(std::vector<std::string> args) {
    return Bkv(args, "", dir_.path());
  }
  CliRun AddKey(const std::string& url, const std::string& opener,
                const std::string& out) {
    return Run({"slot", "add", "recovery-key", "--from", url, "--key-file",
                Key(opener), "--out", Key(out)});
  }
  // Whether the store at `url` holds a keyring object (asked directly).
  bool HasKeyring(const std::string& url) {
    auto store = OpenBlobStore(url);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() && (*store)->Stat(Keyring::kObjectName).ok();
  }

  std::map<std::string, std::string> env_;
  testing::TempDir dir_;
};

TEST_P(SlotStoreTest, AnotherSetsKeyNeverBecomesTheMasterKey) {
  const std::string v2 = Url("v2"), v1 = Url("v1"), empty = Url("empty");
  ASSERT_EQ(Run({"backup", dir_ / "src", "--to", v2, "--key-file", Key("k1")})
                .exit_code,
            0);
  ASSERT_EQ(Run({"backup", dir_ / "src", "--to", v1, "--key-file", Key("k1"),
                 "--format", "1"})
                .exit_code,
            0);
  for (const std::string& url : {v2, v1}) {
    CliRun wrong = AddKey(url, "other", "k-wrong");
    EXPECT_EQ(wrong.exit_code, 3) << wrong.err;
    EXPECT_NE(wrong.err.find("cannot become the set's master key"),
              std::string::npos)
        << wrong.err;
    EXPECT_FALSE(HasKeyring(url)) << url;
    EXPECT_FALSE(fs::exists(Key("k-wrong")));
  }
  {  // a store with an object but neither a repository nor a v1 set
    auto store = OpenBlobStore(empty);
    ASSERT_TRUE(store.ok()) << store.status();
    const std::string text = "not a backup";
    ASSERT_TRUE(
        PutBytes(**store, "readme",
                 {reinterpret_cast<const uint8_t*>(text.data()), text.size()})
            .ok());
  }
  CliRun none = AddKey(empty, "k1", "k-empty");
  EXPECT_NE(none.exit_code, 0);
  EXPECT_NE(none.err.find("holds no backup"), std::string::npos) << none.err;
  EXPECT_FALSE(HasKeyring(empty));
  EXPECT_FALSE(fs::exists(Key("k-empty")));
  // The set's own key migrates it, and the new slot opens it.
  for (const std::string& url : {v2, v1}) {
    const std::string out = url == v2 ? "k-v2" : "k-v1";
    CliRun ok = AddKey(url, "k1", out);
    ASSERT_EQ(ok.exit_code, 0) << ok.err;
    EXPECT_TRUE(HasKeyring(url));
    CliRun restore = Run({"restore", "--from", url, "--to", dir_ / ("r-" + out),
                          "--key-file", Key(out)});
    EXPECT_EQ(restore.exit_code, 0) << restore.err;
  }
}

TEST_P(SlotStoreTest, KeyringGoneAfterItWasSeenIsDataLossNothingWritten) {
  const std::string url = Url("set");
  ASSERT_EQ(Run({"backup", dir_ / "src", "--to", url, "--key-file", Key("k1")})
                .exit_code,
            0);
  ASSERT_EQ(AddKey(url, "k1", "k2").exit_code, 0);
  auto store = OpenBlobStore(url);
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->Delete(Keyring::kObjectName).ok());
  // The legacy key opened the set once; now it must not re-migrate it.
  CliRun add = AddKey(url, "k1", "k3");
  EXPECT_EQ(add.exit_code, 4) << add.err;
  EXPECT_NE(add.err.find("has no keyring, but this client saw"),
            std::string::npos)
      << add.err;
  EXPECT_FALSE(HasKeyring(url));
  EXPECT_FALSE(fs::exists(Key("k3")));
  EXPECT_EQ(Run({"slot", "list", "--from", url}).exit_code, 4);
  EXPECT_EQ(Run({"restore", "--from", url, "--to", dir_ / "r", "--key-file",
                 Key("k1")})
                .exit_code,
            4);
  EXPECT_FALSE(HasKeyring(url));
}

INSTANTIATE_TEST_SUITE_P(Stores, SlotStoreTest,
                         ::testing::Values("file", "webdav"));

}  // namespace
}  // namespace bkv
