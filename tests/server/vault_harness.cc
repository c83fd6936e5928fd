#include "tests/server/vault_harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "absl/random/random.h"
#include "absl/time/clock.h"
#include "crypto/hex.h"
#include "crypto/key_transport.h"
#include "server/account_token.h"
#include "tests/storage/test_util.h"

#ifndef BKV_VAULT_BIN
#error "BKV_VAULT_BIN must name the bkv-vault binary"
#endif

namespace bkv::testing {

// A port that stays this test process's until it exits: chosen below the
// kernel's ephemeral range (32768+ here) and below the etcd fixture's
// picks (20000+), so no bind(0) and no outgoing
// connection of any process can take it between the choice and the
// vault's bind (ResetStateRepairsAHalfWrittenState once flaked on that),
// nor while a node is restarted on it. The reservation is a socket bound
// WITHOUT SO_REUSEADDR, so another test process's reservation of the same
// port fails; SO_REUSEADDR is set after the bind, so the vault's own
// listener (gRPC and CivetWeb set it too) binds over the reservation,
// which never listens. Close-on-exec: the vault does not inherit it.
int FreePort() {
  static absl::BitGen bits;
  for (int tries = 0; tries < 500; ++tries) {
    const int port = absl::Uniform(bits, 10000, 20000);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) break;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const int one = 1;
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0) {
      return port;  // fd held until exit: the reservation
    }
    close(fd);
  }
  ADD_FAILURE() << "no loopback port could be reserved";
  return 0;
}

std::string TestRealmId(int i) {
  return "realm-" + std::string(1, static_cast<char>('a' + i));
}

std::vector<std::string> RealmArgs(const std::string& id,
                                   const std::vector<std::string>& more) {
  std::vector<std::string> a = {"--realm-id", id, "--audience", id};
  a.insert(a.end(), more.begin(), more.end());
  return a;
}

std::string HttpGet(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return "";
  }
  std::string req = "GET " + path +
                    " HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  if (write(fd, req.data(), req.size()) < 0) return "";
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) out.append(buf, n);
  close(fd);
  return out;
}

namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

template <size_t N>
std::string Str(const std::array<uint8_t, N>& a) {
  return {a.begin(), a.end()};
}

}  // namespace

Argon2idParams TestKsfParams() { return {1, 8192, 1}; }

VaultProcess::VaultProcess() {
  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl = std::string(tmp ? tmp : "/tmp") + "/bkv-vault-test-XXXXXX";
  char* dir = mkdtemp(tmpl.data());
  EXPECT_NE(dir, nullptr);
  data_dir_ = tmpl;
  log_path_ = data_dir_ + "/stderr.log";
}

VaultProcess::~VaultProcess() {
  if (pid_ > 0) Kill();
  std::string cmd = "rm -rf '" + data_dir_ + "'";
  if (std::system(cmd.c_str()) != 0) {
    ADD_FAILURE() << "could not remove " << data_dir_;
  }
}

std::string VaultProcess::log() const { return ReadAll(log_path_); }

int VaultProcess::RunCommand(const std::vector<std::string>& words,
                             std::string* output) {
  std::vector<std::string> args = words;
  args.insert(args.end(), {"--data-dir", data_dir_});
  if (dev_) args.push_back("--dev");
  args.insert(args.end(), last_args_.begin(), last_args_.end());
  args.insert(args.begin(),
              binary_.empty() ? std::string(BKV_VAULT_BIN) : binary_);
  std::string cmd;
  for (const std::string& a : args) {  // the test's own words: no quotes
    cmd.append(" '").append(a).append("'");
  }
  cmd.append(" 2>&1");
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return -1;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) output->append(buf, n);
  const int status = pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool VaultProcess::Start(std::vector<std::string> extra_args) {
  if (extra_args.empty()) extra_args = last_args_;
  last_args_ = extra_args;
  // Truncate the log so "serving" is this start's line.
  { std::ofstream(log_path_, std::ios::trunc); }
  std::vector<std::string> args = {
      binary_.empty() ? std::string(BKV_VAULT_BIN) : binary_,
      "serve",
      "--data-dir",
      data_dir_,
      "--listen",
      "127.0.0.1:0",
      "--metrics-listen",
      ""};
  if (dev_) args.push_back("--dev");
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  args.insert(args.begin(), wrapper_.begin(), wrapper_.end());
  pid_ = fork();
  if (pid_ == 0) {
    int fd = open(log_path_.c_str(), O_WRONLY | O_APPEND);
    dup2(fd, 2);
    for (const auto& [name, value] : env_) {
      setenv(name.c_str(), value.c_str(), 1);
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execvp(argv[0], argv.data());
    _exit(127);
  }
  // Bounded wait for the "serving" line (a first start makes a token).
  for (int i = 0; i < 600; ++i) {
    std::istringstream lines(log());
    std::string line;
    while (std::getline(lines, line)) {
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_object() && j.value("event", "") == "serving") {
        port_ = std::stoi(j.value("port", "0"));
        auto pk = HexDecode(j.value("server_public_key", ""));
        if (!pk.ok() || pk->size() != 32) return false;
        std::copy(pk->begin(), pk->end(), public_key_.begin());
        return true;
      }
    }
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      exit_status_ =
          WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

int VaultProcess::Stop() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int VaultProcess::Kill() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string VaultProcess::Token(const std::string& account, int64_t ttl_s,
                                const std::string& audience) const {
  std::string hex = ReadAll(data_dir_ + "/dev-issuer.key");
  while (!hex.empty() && (hex.back() == '\n' || hex.back() == ' ')) {
    hex.pop_back();
  }
  auto key = HexDecode(hex);
  EXPECT_TRUE(key.ok() && key->size() == 64) << "dev issuer key";
  auto token =
      server::MintToken(SecretBytes::Copy(*key), "dev", account, audience, "",
                        absl::Now(), absl::Seconds(ttl_s));
  EXPECT_TRUE(token.ok()) << token.status();
  return *token;
}

TestClient::TestClient(const std::string& address,
                       opaque::Element server_public_key)
    : stub_(vault::v1::Vault::NewStub(
          grpc::CreateChannel(address, grpc::InsecureChannelCredentials()))),
      ksf_(*Argon2idKsf::Create(TestKsfParams())),
      opaque_(opaque::Config{}, ksf_, server_public_key) {}

void TestClient::Authorize(grpc::ClientContext& ctx, const std::string& token) {
  ctx.AddMetadata("authorization", "Bearer " + token);
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
}

TestClient::Result TestClient::ResultOf(const grpc::Status& s,
                                        const grpc::ClientContext& ctx) {
  Result r{s, std::nullopt};
  const auto& md = ctx.GetServerTrailingMetadata();
  auto it = md.find("bkv-error-detail-bin");
  if (it != md.end()) {
    vault::v1::ErrorDetail d;
    if (d.ParseFromString(std::string(it->second.data(), it->second.size()))) {
      r.detail = d;
    }
  }
  return r;
}

TestClient::Result TestClient::StartRegistration(const std::string& token,
                                                 const std::string& account,
                                                 const std::string& password,
                                                 Registration* out,
                                                 const std::string& proof) {
  out->account = account;
  auto start = opaque_.CreateRegistrationRequest(SecretBytes::Copy(password));
  EXPECT_TRUE(start.ok());
  vault::v1::RegisterStartRequest req1;
  req1.set_registration_request(Str(start->request.Serialize()));
  {
    grpc::ClientContext ctx;
    Authorize(ctx, token);
    auto s = stub_->RegisterStart(&ctx, req1, &out->start);
    if (!s.ok()) return ResultOf(s, ctx);
  }
  auto response = opaque::RegistrationResponse::Parse(
      Bytes(out->start.registration_response()));
  EXPECT_TRUE(response.ok());
  auto finish =
      opaque_.FinalizeRegistrationRequest(std::move(start->state), *response);
  EXPECT_TRUE(finish.ok()) << finish.status();
  auto ke1 = opaque_.GenerateKE1(SecretBytes::Copy(password));
  EXPECT_TRUE(ke1.ok());
  auto& req2 = out->finish;
  req2.set_registration_record(Str(finish->record.Serialize()));
  req2.mutable_ksf()->set_iterations(TestKsfParams().iterations);
  req2.mutable_ksf()->set_memory_kib(TestKsfParams().memory_kib);
  req2.mutable_ksf()->set_parallelism(TestKsfParams().parallelism);
  req2.set_ke1(Str(ke1->ke1.Serialize()));
  req2.set_registration_state(out->start.registration_state());
  req2.set_proof(proof);
  out->login.emplace(*std::move(ke1));
  return Result{grpc::Status::OK, std::nullopt};
}

TestClient::Result TestClient::SendFinish(
    const std::string& token, const vault::v1::RegisterFinishRequest& req,
    vault::v1::RegisterFinishResponse* out) {
  grpc::ClientContext ctx;
  Authorize(ctx, token);
  auto s = stub_->RegisterFinish(&ctx, req, out);
  return ResultOf(s, ctx);
}

vault::v1::RegisterCommitRequest TestClient::CommitRequest(
    Registration& reg, const vault::v1::RegisterFinishResponse& finished,
    const SecretBytes& backup_key) {
  vault::v1::RegisterCommitRequest req;
  if (!reg.login) return req;
  auto ke3 =
      opaque_.GenerateKE3(std::move(reg.login->state), Bytes(finished.ke2()));
  reg.login.reset();
  EXPECT_TRUE(ke3.ok()) << ke3.status();
  if (!ke3.ok()) return req;
  auto wrapped =
      key_transport::WrapBackupKey(ke3->export_key, reg.account, backup_key);
  auto sealed =
      key_transport::Seal(ke3->session_key, key_transport::Direction::kRegister,
                          reg.account, *wrapped);
  req.set_ke3(Str(ke3->ke3.Serialize()));
  req.set_login_state(finished.login_state());
  req.set_sealed_key(std::string(sealed->begin(), sealed->end()));
  return req;
}

TestClient::Result TestClient::SendCommit(
    const std::string& token, const vault::v1::RegisterCommitRequest& req) {
  vault::v1::RegisterCommitResponse resp;
  grpc::ClientContext ctx;
  Authorize(ctx, token);
  auto s = stub_->RegisterCommit(&ctx, req, &resp);
  return ResultOf(s, ctx);
}

TestClient::Result TestClient::Register(const std::string& token,
                                        const std::string& account,
                                        const std::string& password,
                                        const SecretBytes& backup_key,
                                        const std::string& proof) {
  Registration reg;
  Result r = StartRegistration(token, account, password, &reg, proof);
  if (!r.ok()) return r;
  vault::v1::RegisterFinishResponse finished;
  r = SendFinish(token, reg.finish, &finished);
  if (!r.ok()) return r;
  return SendCommit(token, CommitRequest(reg, finished, backup_key));
}

TestClient::Recovery TestClient::Recover(const std::string& token,
                                         const std::string& account,
                                         const std::string& password) {
  Recovery out;
  auto ke1 = opaque_.GenerateKE1(SecretBytes::Copy(password));
  EXPECT_TRUE(ke1.ok());
  vault::v1::RecoverStartRequest req1;
  req1.set_ke1(Str(ke1->ke1.Serialize()));
  vault::v1::RecoverStartResponse resp1;
  {
    grpc::ClientContext ctx;
    Authorize(ctx, token);
    auto s = stub_->RecoverStart(&ctx, req1, &resp1);
    if (!s.ok()) {
      out.result = ResultOf(s, ctx);
      return out;
    }
  }
  out.got_ke2 = true;
  out.attempts_remaining = resp1.attempts_remaining();
  auto ke3 = opaque_.GenerateKE3(std::move(ke1->state), Bytes(resp1.ke2()));
  vault::v1::RecoverFinishRequest req2;
  // A wrong password can't produce a KE3; send a well-formed wrong one so
  // the vault records the failure, as a real client that gives up would not.
  req2.set_ke3(ke3.ok() ? Str(ke3->ke3.Serialize()) : std::string(64, '\x01'));
  req2.set_login_state(resp1.login_state());
  vault::v1::RecoverFinishResponse resp2;
  grpc::ClientContext ctx;
  Authorize(ctx, token);
  auto s = stub_->RecoverFinish(&ctx, req2, &resp2);
  out.result = ResultOf(s, ctx);
  if (!s.ok() || !ke3.ok()) return out;
  auto wrapped =
      key_transport::Open(ke3->session_key, key_transport::Direction::kRecover,
                          account, Bytes(resp2.sealed_key()));
  EXPECT_TRUE(wrapped.ok()) << wrapped.status();
  auto key = key_transport::UnwrapBackupKey(ke3->export_key, account, *wrapped);
  EXPECT_TRUE(key.ok()) << key.status();
  out.backup_key = *std::move(key);
  out.proof = resp2.proof();
  return out;
}

TestClient::Result TestClient::Status(const std::string& token,
                                      vault::v1::GetStatusResponse* out) {
  grpc::ClientContext ctx;
  Authorize(ctx, token);
  auto s = stub_->GetStatus(&ctx, vault::v1::GetStatusRequest(), out);
  return ResultOf(s, ctx);
}

TestClient::Result TestClient::Delete(const std::string& token,
                                      const std::string& proof) {
  grpc::ClientContext ctx;
  Authorize(ctx, token);
  vault::v1::DeleteRequest req;
  req.set_proof(proof);
  vault::v1::DeleteResponse resp;
  auto s = stub_->Delete(&ctx, req, &resp);
  return ResultOf(s, ctx);
}

TestClient::Result TestClient::RequestReset(
    const std::string& token, vault::v1::RequestResetResponse* out) {
  grpc::ClientContext ctx;
  Authorize(ctx, token);
  auto s = stub_->RequestReset(&ctx, vault::v1::RequestResetRequest(), out);
  return ResultOf(s, ctx);
}

void VaultFixture::StartVault(std::vector<std::string> args) {
  ASSERT_TRUE(vault_.Start(std::move(args))) << vault_.log();
  client_ = std::make_unique<TestClient>(vault_.address(), vault_.public_key());
}

void VaultFixture::StopVault() {
  client_.reset();
  EXPECT_EQ(vault_.Stop(), 0) << vault_.log();
}

vault::v1::GetStatusResponse VaultFixture::Status(const std::string& account) {
  vault::v1::GetStatusResponse s;
  auto r = client_->Status(vault_.Token(account), &s);
  EXPECT_TRUE(r.ok()) << r.status.error_message();
  return s;
}

SecretBytes VaultFixture::RegisterOrDie(const std::string& account,
                                        const std::string& password) {
  SecretBytes key = SecretBytes::Random(32);
  auto r = client_->Register(vault_.Token(account), account, password, key);
  EXPECT_TRUE(r.ok()) << r.status.error_message();
  return key;
}

int VaultFixture::FilesContaining(const std::string& dir,
                                  const std::string& needle) {
  return storage::testing::FilesContaining(dir, needle);
}

}  // namespace bkv::testing
