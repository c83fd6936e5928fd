// A legacy set's first keyring (review #3) through the real bkv binary, on a
// file store and a WebDAV store (nginx): a key that does not open the set's
// objects never becomes its master key, a store with no backup is not
// migrated, and a keyring that vanishes after this client saw it is DataLoss
// with nothing written. Two slot changes at once (review #4): the later put
// is refused, never a silent undo of the other.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include "client/blob_store.h"
#include "client/cancel.h"
#include "client/cancellable_blob_store.h"
#include "client/cli/slot_command.h"
#include "client/client_state.h"
#include "client/key_slots.h"
#include "crypto/keyring.h"
#include "tests/client/cli_runner.h"
#include "tests/client/client_test_support.h"

namespace bkv {
namespace {

using ::bkv::testing::ForwardingBlobStore;
namespace fs = std::filesystem;

// Forwards to a real store; once the keyring has been read, runs
// `meanwhile` (another client's change) before the next operation: two
// slot changes interleaved as concurrent ones can be, deterministically.
class InterleavingStore : public BlobStore {
 public:
  // `reads`: how many keyring reads come before `meanwhile` is due.
  InterleavingStore(BlobStore& inner, std::function<void()> meanwhile,
                    int reads = 1)
      : inner_(inner), meanwhile_(std::move(meanwhile)), reads_(reads) {}
  absl::Status Put(std::string_view name, ByteSource& source) override {
    Before();
    return inner_.Put(name, source);
  }
  absl::Status Get(std::string_view name, const ByteSink& sink) override {
    Before();
    absl::Status s = inner_.Get(name, sink);
    if (name == Keyring::kObjectName) read_ = --reads_ <= 0;
    return s;
  }
  absl::StatusOr<std::vector<BlobInfo>> List() override {
    Before();
    return inner_.List();
  }
  absl::Status Delete(std::string_view name) override {
    Before();
    return inner_.Delete(name);
  }
  absl::StatusOr<BlobInfo> Stat(std::string_view name) override {
    Before();
    return inner_.Stat(name);
  }
  std::string url() const override { return inner_.url(); }

 private:
  void Before() {
    if (!read_ || !meanwhile_) return;
    auto run = std::move(meanwhile_);
    meanwhile_ = nullptr;
    run();
  }
  BlobStore& inner_;
  std::function<void()> meanwhile_;
  int reads_;
  bool read_ = false;
};

// Forwards to a real store; the keyring's put first runs `at_put`, then is
// forwarded, and with `lose_answer` a put the store applied reports
// Unavailable, as when a WebDAV MOVE's or S3 PUT's answer is lost.
class LostAnswerStore : public ForwardingBlobStore {
 public:
  LostAnswerStore(BlobStore& inner, std::function<void()> at_put,
                  bool lose_answer)
      : ForwardingBlobStore(inner),
        at_put_(std::move(at_put)),
        lose_(lose_answer) {}
  absl::Status Put(std::string_view name, ByteSource& source) override {
    if (name != Keyring::kObjectName) return inner_.Put(name, source);
    if (at_put_) at_put_();
    absl::Status s = inner_.Put(name, source);
    if (s.ok() && lose_) {
      return absl::UnavailableError("connection reset before the answer");
    }
    return s;
  }

 private:
  std::function<void()> at_put_;
  bool lose_;
};

BackupKey KeyFrom(const std::string& path) {
  std::ifstream f(path);
  std::string text((std::istreambuf_iterator<char>(f)), {});
  auto key = BackupKey::Parse(text.substr(0, text.find('\n')));
  EXPECT_TRUE(key.ok()) << key.status();
  return key.ok() ? *std::move(key) : BackupKey::Generate();
}

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

// Review #4: client A adds a slot while client B (the real bkv) removes
// one. A's put would undo B's removal (the removed slot back); A re-reads
// the keyring right before its put and refuses, nothing written.
TEST_P(SlotStoreTest, ConcurrentSlotChangeIsRefusedNotUndone) {
  const std::string url = Url("race");
  ASSERT_EQ(Run({"backup", dir_ / "src", "--to", url, "--key-file", Key("k1")})
                .exit_code,
            0);
  ASSERT_EQ(AddKey(url, "k1", "k2").exit_code, 0);
  auto store = OpenBlobStore(url);
  ASSERT_TRUE(store.ok()) << store.status();
  const BackupKey k1 = KeyFrom(Key("k1")), k2 = KeyFrom(Key("k2"));
  KeySlots probe(**store, {});
  auto k2_slot = probe.UnlockSlot(SlotSecret::RecoveryKey(k2));
  ASSERT_TRUE(k2_slot.ok()) << k2_slot.status();
  const std::string k2_id = SlotIdHex(k2_slot->second.id);
  CliRun removed;
  // Due after the add's second keyring read (its unlock, then the read of
  // the change itself): right before the re-read that precedes its put.
  InterleavingStore racing(
      **store,
      [&] {
        removed = Run(
            {"slot", "remove", k2_id, "--from", url, "--key-file", Key("k1")});
      },
      /*reads=*/2);
  // Through the CLI's own add (review finding 7): a real --out key file.
  SlotCommandOptions o;
  o.action = SlotCommandOptions::Action::kAdd;
  o.add_type = SlotType::kRecoveryKey;
  o.new_key_file = Key("k4");
  o.state_dir = dir_ / "state-a";
  const SecretSource opened = [&]() -> absl::StatusOr<SlotSecret> {
    return SlotSecret::RecoveryKey(k1);
  };
  const NewSecretSource no_vault = []() -> absl::StatusOr<NewSlotSecret> {
    return absl::UnimplementedError("no vault here");
  };
  absl::Status added = RunSlotCommand(racing, o, opened, no_vault);
  ASSERT_EQ(removed.exit_code, 0) << removed.err;
  // The add lost the race once, then applied itself on top of B's change
  // with the key in hand (before: Aborted, the key file deleted, "run it
  // again"). B's removal stands: k2 opens nothing; k4 opens the set.
  EXPECT_TRUE(added.ok()) << added;
  KeySlots check(**store, {});
  EXPECT_FALSE(check.Unlock(SlotSecret::RecoveryKey(k2)).ok());
  ASSERT_TRUE(fs::exists(Key("k4")));
  EXPECT_TRUE(check.Unlock(SlotSecret::RecoveryKey(KeyFrom(Key("k4")))).ok());
}

// Review #4: a keyring that changes under a slot change but keeps its
// generation (forked or forged) is DataLoss, and is not overwritten.
TEST_P(SlotStoreTest, SameGenerationOtherContentIsDataLoss) {
  const std::string url = Url("fork");
  ASSERT_EQ(Run({"backup", dir_ / "src", "--to", url, "--key-file", Key("k1")})
                .exit_code,
            0);
  ASSERT_EQ(AddKey(url, "k1", "k2").exit_code, 0);
  auto store = OpenBlobStore(url);
  ASSERT_TRUE(store.ok()) << store.status();
  std::vector<uint8_t> forked;
  InterleavingStore racing(**store, [&] {
    auto bytes = GetBytes(**store, Keyring::kObjectName, 1 << 20);
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    forked = *bytes;
    forked.back() ^= 1;  // its MAC: same generation, other content
    ASSERT_TRUE(PutBytes(**store, Keyring::kObjectName, forked).ok());
  });
  KeySlots a(racing, {dir_ / "state-a"});
  auto added = a.Add(SlotSecret::RecoveryKey(KeyFrom(Key("k1"))),
                     SlotSecret::RecoveryKey(BackupKey::Generate()), {});
  EXPECT_EQ(added.status().code(), absl::StatusCode::kDataLoss)
      << added.status();
  EXPECT_NE(added.status().message().find("claim one generation"),
            std::string::npos)
      << added.status();
  auto now = GetBytes(**store, Keyring::kObjectName, 1 << 20);
  ASSERT_TRUE(now.ok()) << now.status();
  EXPECT_EQ(*now, forked);
}

// Review #2's generation bound: a keyring claiming a generation more than
// 2^32 past the one this client saw is refused as forged (it would lock out
// every genuine later keyring), before its MAC is even checked.
TEST_P(SlotStoreTest, ImplausibleGenerationJumpIsRefused) {
  const std::string url = Url("jump");
  ASSERT_EQ(Run({"backup", dir_ / "src", "--to", url, "--key-file", Key("k1")})
                .exit_code,
            0);
  ASSERT_EQ(AddKey(url, "k1", "k2").exit_code, 0);  // remembers generation 1
  auto store = OpenBlobStore(url);
  ASSERT_TRUE(store.ok()) << store.status();
  auto bytes = GetBytes(**store, Keyring::kObjectName, 1 << 20);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  constexpr size_t kGenerationAt = 8 + 2 + 16;  // magic, format, set id
  std::vector<uint8_t> forged = *bytes;
  forged[kGenerationAt + 3] = 0x02;  // + 2^33 (big-endian u64)
  ASSERT_TRUE(PutBytes(**store, Keyring::kObjectName, forged).ok());
  CliRun r = Run(
      {"restore", "--from", url, "--to", dir_ / "r", "--key-file", Key("k2")});
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_NE(r.err.find("implausibly far"), std::string::npos) << r.err;
  // One step on is fine: the genuine keyring opens again.
  ASSERT_TRUE(PutBytes(**store, Keyring::kObjectName, *bytes).ok());
  EXPECT_EQ(Run({"restore", "--from", url, "--to", dir_ / "r", "--key-file",
                 Key("k2")})
                .exit_code,
            0);
}

// Review finding 3: `slot add` took its new secret back on any keyring put
// error, even when the store held the new slot (a lost answer; the client's
// state failing after the put), leaving a slot whose key file was deleted.
TEST_P(SlotStoreTest, AmbiguousPutKeepsTheNewSecret) {
  const std::string url = Url("lost");
  ASSERT_EQ(Run({"backup", dir_ / "src", "--to", url, "--key-file", Key("k1")})
                .exit_code,
            0);
  ASSERT_EQ(AddKey(url, "k1", "k2").exit_code, 0);
  auto store = OpenBlobStore(url);
  ASSERT_TRUE(store.ok()) << store.status();
  const SecretSource opened = [&]() -> absl::StatusOr<SlotSecret> {
    return SlotSecret::RecoveryKey(KeyFrom(Key("k1")));
  };
  const NewSecretSource no_vault = []() -> absl::StatusOr<NewSlotSecret> {
    return absl::UnimplementedError("no vault here");
  };
  SlotCommandOptions o;
  o.action = SlotCommandOptions::Action::kAdd;
  o.add_type = SlotType::kRecoveryKey;
  // The put landed but its answer was lost: the re-read settles it.
  o.new_key_file = Key("k3");
  o.state_dir = dir_ / "state";
  LostAnswerStore lost(**store, nullptr, /*lose_answer=*/true);
  absl::Status s = RunSlotCommand(lost, o, opened, no_vault);
  EXPECT_TRUE(s.ok()) << s;
  ASSERT_TRUE(fs::exists(Key("k3")));
  KeySlots check(**store, {});
  EXPECT_TRUE(check.Unlock(SlotSecret::RecoveryKey(KeyFrom(Key("k3")))).ok());
  // The put landed, then the client's state could not be written.
  o.new_key_file = Key("k4");
  o.state_dir = dir_ / "state-b";
  LostAnswerStore stateless(
      **store,
      [&] {
        fs::rename(dir_ / "state-b", dir_ / "state-b.away");
        std::ofstream(dir_ / "state-b") << "not a directory";
      },
      /*lose_answer=*/false);
  s = RunSlotCommand(stateless, o, opened, no_vault);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("keep the new key in"), std::string::npos) << s;
  ASSERT_TRUE(fs::exists(Key("k4")));
  EXPECT_TRUE(check.Unlock(SlotSecret::RecoveryKey(KeyFrom(Key("k4")))).ok());
}

// Review finding 4: an interrupt (the CLI's SIGINT/SIGTERM watcher cancels
// the command's token) stops the keyring put mid-transfer. Such a put never
// becomes visible, so the new key file is taken back and the same command
// then runs again; before, the re-read through the stopped store failed and
// the key file (opening nothing) stayed, blocking the rerun.
TEST_P(SlotStoreTest, InterruptedSlotAddLeavesNothingBehind) {
  const std::string url = Url("stopped");
  ASSERT_EQ(Run({"backup", dir_ / "src", "--to", url, "--key-file", Key("k1")})
                .exit_code,
            0);
  ASSERT_EQ(AddKey(url, "k1", "k2").exit_code, 0);
  auto store = OpenBlobStore(url);
  ASSERT_TRUE(store.ok()) << store.status();
  CancelToken interrupt;
  LostAnswerStore signalled(**store, [&] { interrupt.Cancel(); },
                            /*lose_answer=*/false);
  CancellableBlobStore stoppable(signalled);
  stoppable.set_call(&interrupt);
  const SecretSource opened = [&]() -> absl::StatusOr<SlotSecret> {
    return SlotSecret::RecoveryKey(KeyFrom(Key("k1")));
  };
  const NewSecretSource no_vault = []() -> absl::StatusOr<NewSlotSecret> {
    return absl::UnimplementedError("no vault here");
  };
  SlotCommandOptions o;
  o.action = SlotCommandOptions::Action::kAdd;
  o.add_type = SlotType::kRecoveryKey;
  o.new_key_file = Key("k3");
  o.state_dir = dir_ / "state";
  absl::Status s = RunSlotCommand(stoppable, o, opened, no_vault);
  EXPECT_EQ(s.code(), absl::StatusCode::kCancelled) << s;
  EXPECT_FALSE(fs::exists(Key("k3"))) << s;
  KeySlots check(**store, {});
  auto listed = check.List();
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(listed->size(), 2u);  // k1's and k2's: nothing added
  CliRun again = AddKey(url, "k1", "k3");
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_TRUE(check.Unlock(SlotSecret::RecoveryKey(KeyFrom(Key("k3")))).ok());
}

// Review finding 10: a keyring that changed under a slot change into a
// higher generation NOT sealed by the set's master key is forged, not
// "another client changed a slot; run again".
TEST_P(SlotStoreTest, ForgedNewerKeyringUnderASlotChangeIsDataLoss) {
  const std::string url = Url("forged");
  ASSERT_EQ(Run({"backup", dir_ / "src", "--to", url, "--key-file", Key("k1")})
                .exit_code,
            0);
  ASSERT_EQ(AddKey(url, "k1", "k2").exit_code, 0);
  auto store = OpenBlobStore(url);
  ASSERT_TRUE(store.ok()) << store.status();
  InterleavingStore racing(**store, [&] {
    auto bytes = GetBytes(**store, Keyring::kObjectName, 1 << 20);
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    auto ring = Keyring::Decode(*bytes);
    ASSERT_TRUE(ring.ok()) << ring.status();
    auto forged = ring->Encode(SecretBytes::Random(32));  // generation + 1
    ASSERT_TRUE(forged.ok()) << forged.status();
    ASSERT_TRUE(PutBytes(**store, Keyring::kObjectName, *forged).ok());
  });
  KeySlots a(racing, {dir_ / "state-a"});
  auto added = a.Add(SlotSecret::RecoveryKey(KeyFrom(Key("k1"))),
                     SlotSecret::RecoveryKey(BackupKey::Generate()), {});
  EXPECT_EQ(added.status().code(), absl::StatusCode::kDataLoss)
      << added.status();
}

// Review finding 10: two commands on one device remember a keyring
// generation in either order; the counter keeps the higher one.
TEST(ClientStateTest, RememberMaxNeverLowersTheCounter) {
  testing::TempDir dir;
  ASSERT_TRUE(RememberMax(dir.path(), "keyring-x.gen", 6).ok());
  ASSERT_TRUE(RememberMax(dir.path(), "keyring-x.gen", 5).ok());
  EXPECT_EQ(RecallCounter(dir.path(), "keyring-x.gen"), 6u);
  ASSERT_TRUE(RememberMax(dir.path(), "keyring-x.gen", 7).ok());
  EXPECT_EQ(RecallCounter(dir.path(), "keyring-x.gen"), 7u);
}

INSTANTIATE_TEST_SUITE_P(Stores, SlotStoreTest,
                         ::testing::Values("file", "webdav"));

}  // namespace
}  // namespace bkv
