#ifndef BKV_TESTS_SERVER_VAULT_HARNESS_H_
#define BKV_TESTS_SERVER_VAULT_HARNESS_H_

// A real `bkv-vault serve` process on loopback with its own data directory
// (RocksDB, SoftHSM dev token, dev issuer), and a test client that speaks
// the vault protocol through the generated gRPC stub and crypto/opaque.h.

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bkv/vault/v1/vault.grpc.pb.h"
#include "crypto/ksf.h"
#include "crypto/opaque.h"
#include "crypto/secret_bytes.h"

namespace bkv::testing {

// A loopback port reserved for this test process until it exits (outside
// the ephemeral range; a `bkv-vault` listening with SO_REUSEADDR binds it).
int FreePort();
// GET http://127.0.0.1:port/path, the whole response ("" when nothing
// answers; reads time out after 5 s).
std::string HttpGet(int port, const std::string& path);

// The id of realm `i` (from 0) of a test realm set: realm-a, realm-b, ...
std::string TestRealmId(int i);
// The `serve` flags of a threshold realm `id` (its own audience), then
// `more`.
std::vector<std::string> RealmArgs(const std::string& id,
                                   const std::vector<std::string>& more);

class VaultProcess {
 public:
  // Creates a fresh data directory under TMPDIR.
  VaultProcess();
  ~VaultProcess();

  // Starts `bkv-vault serve` with `extra_args` (flags) and waits until it
  // logs "serving"; returns false (and fills `log`) if it exits instead.
  bool Start(std::vector<std::string> extra_args = {});
  // SIGTERM; returns the exit status.
  int Stop();
  // SIGKILL, no drain; how it ended (an exit code if it had exited by
  // itself, else 128 + SIGKILL).
  int Kill();
  bool running() const { return pid_ > 0; }
  // A command the vault is started under (e.g. fiu-run for fault injection);
  // it must exec the vault in the same process.
  void set_wrapper(std::vector<std::string> wrapper) {
    wrapper_ = std::move(wrapper);
  }
  // An environment variable of the next starts (e.g. a --dev test hook).
  void set_env(std::string name, std::string value) {
    env_.emplace_back(std::move(name), std::move(value));
  }
  pid_t pid() const { return pid_; }
  // Another vault executable (the threshold tests' malicious realm);
  // default BKV_VAULT_BIN.
  void set_binary(std::string path) { binary_ = std::move(path); }
  // Off: start without --dev (a production-mode start, which needs a PIN
  // and issuer keys).
  void set_dev(bool dev) { dev_ = dev; }
  // How the process ended when Start saw it exit (an exit code, or 128 +
  // signal); -1 while it has not.
  int exit_status() const { return exit_status_; }

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  const std::string& data_dir() const { return data_dir_; }
  const opaque::Element& public_key() const { return public_key_; }
  // Everything the process wrote to stderr so far.
  std::string log() const;

  // Runs `bkv-vault WORDS... --data-dir D [--dev] <the last start's flags>`
  // to its end (an offline command on this vault's settings); its exit code,
  // and stdout and stderr together in `output`.
  int RunCommand(const std::vector<std::string>& words, std::string* output);

  // An account token from the dev issuer under data_dir.
  std::string Token(const std::string& account, int64_t ttl_s = 600,
                    const std::string& audience = "bkv-vault") const;

 private:
  std::string data_dir_;
  std::string log_path_;
  std::vector<std::string> last_args_;
  std::vector<std::string> wrapper_;
  std::string binary_;  // empty: BKV_VAULT_BIN
  std::vector<std::pair<std::string, std::string>> env_;
  pid_t pid_ = -1;
  bool dev_ = true;
  int exit_status_ = -1;
  int port_ = 0;
  opaque::Element public_key_{};
};

// A protocol client for tests: each call is one RPC with the given token.
class TestClient {
 public:
  TestClient(const std::string& address, opaque::Element server_public_key);

  struct Result {
    grpc::Status status;
    std::optional<vault::v1::ErrorDetail> detail;
    bool ok() const { return status.ok(); }
  };

  // The full registration; the backup key is wrapped and sent sealed.
  // `proof` (RecoverFinishResponse.proof) when replacing an ACTIVE record.
  Result Register(const std::string& token, const std::string& account,
                  const std::string& password, const SecretBytes& backup_key,
                  const std::string& proof = "");

  // A registration step by step, so tests can replay or reorder the steps.
  struct Registration {
    std::string account;
    vault::v1::RegisterStartResponse start;
    vault::v1::RegisterFinishRequest finish;  // ready to send
    std::optional<opaque::ClientLoginStart> login;
  };
  // RegisterStart, then builds (doesn't send) the RegisterFinish request.
  Result StartRegistration(const std::string& token, const std::string& account,
                           const std::string& password, Registration* out,
                           const std::string& proof = "");
  Result SendFinish(const std::string& token,
                    const vault::v1::RegisterFinishRequest& req,
                    vault::v1::RegisterFinishResponse* out);
  // The commit for `finished` (consumes reg.login); not sent.
  vault::v1::RegisterCommitRequest CommitRequest(
      Registration& reg, const vault::v1::RegisterFinishResponse& finished,
      const SecretBytes& backup_key);
  Result SendCommit(const std::string& token,
                    const vault::v1::RegisterCommitRequest& req);

  struct Recovery {
    Result result;
    SecretBytes backup_key;           // on success
    uint32_t attempts_remaining = 0;  // from RecoverStart
    bool got_ke2 = false;
    std::string proof;  // on success
  };
  Recovery Recover(const std::string& token, const std::string& account,
                   const std::string& password);

  Result Status(const std::string& token, vault::v1::GetStatusResponse* out);
  Result Delete(const std::string& token, const std::string& proof = "");
  Result RequestReset(const std::string& token,
                      vault::v1::RequestResetResponse* out);

  vault::v1::Vault::Stub& stub() { return *stub_; }
  const opaque::OpaqueClient& opaque() const { return opaque_; }

  static Result ResultOf(const grpc::Status& s, const grpc::ClientContext& ctx);
  static void Authorize(grpc::ClientContext& ctx, const std::string& token);

 private:
  std::unique_ptr<vault::v1::Vault::Stub> stub_;
  Argon2idKsf ksf_;
  opaque::OpaqueClient opaque_;
};

// Small Argon2id parameters so tests stay quick.
Argon2idParams TestKsfParams();

// A fixture with one vault process and a client.
class VaultFixture : public ::testing::Test {
 public:
  // Files under `dir` whose bytes contain `needle`.
  static int FilesContaining(const std::string& dir, const std::string& needle);

 protected:
  void StartVault(std::vector<std::string> args = {});
  void StopVault();  // closes the client first (it holds the drain open)
  vault::v1::GetStatusResponse Status(const std::string& account);
  // Registers `account` with `password` and a fresh key; returns the key.
  SecretBytes RegisterOrDie(const std::string& account,
                            const std::string& password);
  VaultProcess vault_;
  std::unique_ptr<TestClient> client_;
};

}  // namespace bkv::testing

#endif  // BKV_TESTS_SERVER_VAULT_HARNESS_H_
