// The bkv CLI end to end with a file:// store, as a user runs it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>

#include "tests/client/client_test_support.h"

namespace bkv {
namespace {

using ::bkv::testing::RandomBytes;
using ::bkv::testing::ReadFile;
using ::bkv::testing::TempDir;
using ::bkv::testing::WriteFile;
using ::testing::HasSubstr;

struct Result {
  int code;
  std::string out;  // stdout; stderr goes to err_file
  std::string err;
};

class CliTest : public ::testing::Test {
 protected:
  Result Run(const std::string& args) {
    const std::string err_file = dir_ / "stderr.txt";
    const std::string cmd =
        std::string(BKV_CLI_PATH) + " " + args + " 2>" + err_file;
    FILE* p = popen(cmd.c_str(), "r");
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
    const int status = pclose(p);
    auto err = ReadFile(err_file);
    return {WEXITSTATUS(status), out, std::string(err.begin(), err.end())};
  }
  std::string Store() { return "file://" + (dir_ / "store"); }

  TempDir dir_;
};

TEST_F(CliTest, HelpDocumentsExitCodes) {
  Result r = Run("--help");
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, HasSubstr("exit codes"));
  EXPECT_THAT(r.out, HasSubstr("3 wrong key"));
  EXPECT_THAT(r.out, HasSubstr("7 the output already exists"));
  EXPECT_THAT(r.out, HasSubstr("130 interrupted by SIGINT"));
  EXPECT_THAT(r.out, HasSubstr("bkv check "));
  EXPECT_THAT(r.out, HasSubstr("bkv repair "));
  // Each command's own help has its flags.
  for (const char* cmd : {"check", "repair"}) {
    Result own = Run(std::string(cmd) + " --help");
    EXPECT_EQ(own.code, 0);
    EXPECT_THAT(own.out, HasSubstr("--from URL"));
    EXPECT_THAT(own.out, HasSubstr("--key-file F"));
  }
}

TEST_F(CliTest, KeyNewPrintsOrWritesMode0600) {
  Result printed = Run("key new");
  EXPECT_EQ(printed.code, 0);
  EXPECT_EQ(printed.out.size(), 80u);  // 79 + newline
  Result written = Run("key new --out " + (dir_ / "k"));
  EXPECT_EQ(written.code, 0);
  struct stat st;
  ASSERT_EQ(stat((dir_ / "k").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  EXPECT_EQ(ReadFile(dir_ / "k").size(), 80u);
  // Never overwrites an existing key file.
  EXPECT_NE(Run("key new --out " + (dir_ / "k")).code, 0);
}

TEST_F(CliTest, BackupListRestoreJsonAndExitCodes) {
  ASSERT_EQ(Run("key new --out " + (dir_ / "k")).code, 0);
  const std::string src = dir_ / "chats";
  std::filesystem::create_directories(src + "/media");
  WriteFile(src + "/chat.db", RandomBytes(500000, 1));
  WriteFile(src + "/media/p.jpg", RandomBytes(20000, 2));

  // Incremental (v2) by default.
  Result b = Run("backup " + src + " --to " + Store() + " --key-file " +
                 (dir_ / "k") + " --json");
  ASSERT_EQ(b.code, 0) << b.err;
  EXPECT_THAT(b.out, HasSubstr("\"format\":2,\"snapshot\":\""));
  EXPECT_EQ(b.err.find('\r'), std::string::npos) << "no progress when piped";

  Result list = Run("snapshots --from " + Store() + " --key-file " +
                    (dir_ / "k") + " --json");
  ASSERT_EQ(list.code, 0) << list.err;
  EXPECT_THAT(list.out, HasSubstr("\"files\":2,"));
  Result objects = Run("list --from " + Store() + " --json");
  EXPECT_THAT(objects.out, HasSubstr("\"name\":\"config\""));

  Result rs = Run("restore --from " + Store() + " --to " + (dir_ / "back") +
                  " --key-file " + (dir_ / "k"));
  ASSERT_EQ(rs.code, 0) << rs.err;
  EXPECT_EQ(ReadFile(dir_ / "back/chat.db"), ReadFile(src + "/chat.db"));
  EXPECT_EQ(ReadFile(dir_ / "back/media/p.jpg"),
            ReadFile(src + "/media/p.jpg"));

  // Target exists: 7. Wrong key: 3. Unknown backup: 5. Usage: 2.
  EXPECT_EQ(Run("restore --from " + Store() + " --to " + (dir_ / "back") +
                " --key-file " + (dir_ / "k"))
                .code,
            7);
  ASSERT_EQ(Run("key new --out " + (dir_ / "k2")).code, 0);
  Result wrong = Run("restore --from " + Store() + " --to " + (dir_ / "x") +
                     " --key-file " + (dir_ / "k2"));
  EXPECT_EQ(wrong.code, 3);
  EXPECT_THAT(wrong.err, HasSubstr("wrong backup key"));
  EXPECT_EQ(Run("restore --from " + Store() + " --to " + (dir_ / "x") +
                " --key-file " + (dir_ / "k") + " --snapshot abcdef")
                .code,
            5);
  EXPECT_EQ(Run("restore --from " + Store() + " --to " + (dir_ / "x") +
                " --key-file " + (dir_ / "k") + " --backup abcdef")
                .code,
            2);
  EXPECT_EQ(Run("backup " + src + " --to " + Store()).code, 2);
  EXPECT_EQ(Run("frobnicate").code, 2);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "x"));
}

TEST_F(CliTest, CorruptedBackupExits4AndLeavesNothing) {
  ASSERT_EQ(Run("key new --out " + (dir_ / "k")).code, 0);
  WriteFile(dir_ / "f", RandomBytes(300000, 3));
  ASSERT_EQ(Run("backup " + (dir_ / "f") + " --to " + Store() + " --key-file " +
                (dir_ / "k"))
                .code,
            0);
  for (const auto& e : std::filesystem::directory_iterator(dir_ / "store")) {
    if (e.path().filename().string().rfind("pack-", 0) != 0) continue;
    auto bytes = ReadFile(e.path());
    bytes[bytes.size() / 2] ^= 4;
    WriteFile(e.path(), bytes);
  }
  Result r = Run("restore --from " + Store() + " --to " + (dir_ / "out/f") +
                 " --key-file " + (dir_ / "k"));
  EXPECT_EQ(r.code, 4) << r.err;
  EXPECT_THAT(r.err, HasSubstr("failed authentication"));
  EXPECT_THAT(::bkv::testing::Listing(dir_ / "out"), ::testing::IsEmpty());
}

TEST_F(CliTest, SecretsAreNotAcceptedOnTheCommandLine) {
  Result r = Run("backup x --to " + Store() + " --key 0000");
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("never go on the command line"));
}

TEST_F(CliTest, BadKeyFileSaysWhatIsWrong) {
  WriteFile(dir_ / "k", std::vector<uint8_t>{'a', 'b', 'z', '\n'});
  // An existing (empty) store: readers never create one.
  std::filesystem::create_directories(dir_ / "store");
  Result r = Run("list --from " + Store() + " --key-file " + (dir_ / "k"));
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("invalid character at position 3"));
}

}  // namespace
}  // namespace bkv
