#include "tests/storage/etcd_cluster.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "tests/process_stop.h"

namespace bkv::storage::testing {
namespace {

absl::Status Run(const std::string& cmd) {
  if (std::system((cmd + " >/dev/null 2>&1").c_str()) != 0) {
    return absl::InternalError(absl::StrCat("failed: ", cmd));
  }
  return absl::OkStatus();
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Free loopback ports, all held open together so they are distinct. They
// come from below the kernel's ephemeral range (32768+), so no client
// socket of a parallel test takes one as its source port between this pick
// and etcd's bind (which once left a "frozen" member's port to another
// process).
absl::StatusOr<std::vector<int>> FreePorts(int n) {
  std::vector<int> fds, ports;
  std::random_device rd;
  int next = 20000 + static_cast<int>(rd() % 12000);
  for (int tries = 0; static_cast<int>(ports.size()) < n && tries < 2000;
       ++tries, next = 20000 + (next - 20000 + 1) % 12000) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(next));
    if (fd >= 0 && bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
      fds.push_back(fd);
      ports.push_back(next);
    } else if (fd >= 0) {
      close(fd);
    }
  }
  for (int f : fds) close(f);
  if (static_cast<int>(ports.size()) < n) {
    return absl::InternalError("cannot pick free loopback ports");
  }
  return ports;
}

// One key pair and a certificate signed by `ca` (self-signed if empty).
absl::Status MakeCert(const std::string& dir, const std::string& name,
                      const std::string& ca, const std::string& ext) {
  const std::string base = absl::StrCat(dir, "/", name);
  const std::string key_opts =
      "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  if (ca.empty()) {
    return Run(absl::StrCat("openssl req -x509 ", key_opts, " -keyout ", base,
                            ".key -out ", base,
                            ".crt -days 2 -subj /CN=", name));
  }
  std::ofstream(base + ".ext") << ext << "\n";
  if (auto s = Run(absl::StrCat("openssl req ", key_opts, " -keyout ", base,
                                ".key -out ", base, ".csr -subj /CN=", name));
      !s.ok()) {
    return s;
  }
  return Run(absl::StrCat("openssl x509 -req -in ", base, ".csr -CA ", dir, "/",
                          ca, ".crt -CAkey ", dir, "/", ca,
                          ".key -CAcreateserial -days 2 -out ", base,
                          ".crt -extfile ", base, ".ext"));
}

std::shared_ptr<grpc::ChannelCredentials> Credentials(const TlsFiles* tls) {
  if (tls == nullptr) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions o;
  o.pem_root_certs = ReadFile(tls->ca_crt);
  o.pem_cert_chain = ReadFile(tls->client_crt);
  o.pem_private_key = ReadFile(tls->client_key);
  return grpc::SslCredentials(o);
}

}  // namespace

absl::StatusOr<TlsFiles> MakeTlsFiles(const std::string& dir) {
  const std::string server_ext =
      "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth";
  const std::string client_ext = "extendedKeyUsage=clientAuth";
  for (auto [name, ca, ext] :
       {std::tuple<std::string, std::string, std::string>{"ca", "", ""},
        {"server", "ca", server_ext},
        {"client", "ca", client_ext},
        {"other-ca", "", ""},
        {"other-client", "other-ca", client_ext}}) {
    if (auto s = MakeCert(dir, name, ca, ext); !s.ok()) return s;
  }
  auto f = [&](const char* n) { return absl::StrCat(dir, "/", n); };
  return TlsFiles{f("ca.crt"),           f("server.crt"),
                  f("server.key"),       f("client.crt"),
                  f("client.key"),       f("other-ca.crt"),
                  f("other-client.crt"), f("other-client.key")};
}

absl::StatusOr<std::unique_ptr<EtcdCluster>> EtcdCluster::Start(
    Options options) {
  // A port picked free may be taken by a parallel test before etcd binds
  // it: then a member exits at once, and a fresh set of ports is tried.
  absl::Status last;
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto c = TryStart(options);
    if (c.ok()) return c;
    last = c.status();
  }
  return last;
}

absl::StatusOr<std::unique_ptr<EtcdCluster>> EtcdCluster::TryStart(
    Options options) {
  std::unique_ptr<EtcdCluster> c(new EtcdCluster());
  c->options_ = options;
  auto ports = FreePorts(2 * options.members);
  if (!ports.ok()) return ports.status();
  const char* scheme = options.tls ? "https" : "http";
  std::vector<std::string> peers;
  for (int i = 0; i < options.members; ++i) {
    Member m;
    m.name = absl::StrCat("m", i);
    m.data_dir = c->dir_.Sub(m.name);
    m.log = c->dir_.Sub(m.name + ".log");
    m.client_port = (*ports)[2 * i];
    m.client_url = absl::StrCat(scheme, "://127.0.0.1:", m.client_port);
    m.peer_url = absl::StrCat("http://127.0.0.1:", (*ports)[2 * i + 1]);
    m.advertised_peer_url = m.peer_url;
    if (options.peer_proxies) {
      auto proxy = LinkProxy::Start((*ports)[2 * i + 1]);
      if (!proxy.ok()) return proxy.status();
      m.peer_proxy = *std::move(proxy);
      m.advertised_peer_url = "http://" + m.peer_proxy->address();
    }
    peers.push_back(absl::StrCat(m.name, "=", m.advertised_peer_url));
    c->members_.push_back(std::move(m));
  }
  c->initial_cluster_ = absl::StrJoin(peers, ",");
  c->token_ = absl::StrCat("bkv-test-", getpid(), "-", (*ports)[0]);
  for (Member& m : c->members_) {
    if (auto s = c->Spawn(m); !s.ok()) return s;
  }
  if (auto s = c->WaitForLeader(); !s.ok()) return s;
  return c;
}

absl::Status EtcdCluster::Spawn(Member& m) {
  std::vector<std::string> args = {
      "/usr/bin/etcd",
      "--name=" + m.name,
      "--data-dir=" + m.data_dir,
      "--listen-client-urls=" + m.client_url,
      "--advertise-client-urls=" + m.client_url,
      "--listen-peer-urls=" + m.peer_url,
      "--initial-advertise-peer-urls=" + m.advertised_peer_url,
      "--initial-cluster=" + initial_cluster_,
      "--initial-cluster-token=" + token_,
      "--initial-cluster-state=new",
      "--log-level=warn",
      "--logger=zap"};
  if (options_.quota_bytes > 0) {
    args.push_back(
        absl::StrCat("--quota-backend-bytes=", options_.quota_bytes));
  }
  if (options_.tls != nullptr) {
    args.push_back("--cert-file=" + options_.tls->server_crt);
    args.push_back("--key-file=" + options_.tls->server_key);
    args.push_back("--trusted-ca-file=" + options_.tls->ca_crt);
    args.push_back("--client-cert-auth");
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the test
    int fd = open(m.log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    execv(argv[0], argv.data());
    _exit(127);
  }
  m.pid = pid;
  m.frozen = false;
  return absl::OkStatus();
}

EtcdCluster::~EtcdCluster() {
  for (int i = 0; i < size(); ++i) Kill(i);
}

std::vector<std::string> EtcdCluster::Endpoints() const {
  std::vector<std::string> out;
  for (const Member& m : members_) {
    out.push_back(absl::StrCat("127.0.0.1:", m.client_port));
  }
  return out;
}

void EtcdCluster::Kill(int i) {
  Member& m = members_[i];
  if (m.pid <= 0) return;
  kill(m.pid, SIGKILL);
  waitpid(m.pid, nullptr, 0);
  m.pid = -1;
  m.frozen = false;
}

absl::Status EtcdCluster::Freeze(int i) {
  Member& m = members_[i];
  if (m.pid <= 0) return absl::FailedPreconditionError("member not running");
  m.frozen = true;
  if (!bkv::testing::StopAndWait(m.pid)) {
    return absl::DeadlineExceededError(
        absl::StrCat("etcd member ", i, " did not stop within 10 s"));
  }
  return absl::OkStatus();
}

bool EtcdCluster::Stopped(int i) const {
  return members_[i].pid > 0 && bkv::testing::AllThreadsStopped(members_[i].pid);
}

void EtcdCluster::Thaw(int i) {
  if (members_[i].pid > 0) kill(members_[i].pid, SIGCONT);
  members_[i].frozen = false;
}

absl::Status EtcdCluster::Restart(int i) {
  Kill(i);
  return Spawn(members_[i]);
}

absl::StatusOr<int> EtcdCluster::Leader(absl::Duration wait) const {
  const absl::Time give_up = absl::Now() + wait;
  auto creds = Credentials(options_.tls);
  std::string last = "no member running";
  while (absl::Now() < give_up) {
    std::map<uint64_t, int> index_of;  // member id -> index
    std::map<uint64_t, int> votes;     // leader id -> members saying so
    int running = 0;
    for (int i = 0; i < size(); ++i) {
      const Member& m = members_[i];
      if (m.pid <= 0 || m.frozen) continue;
      siginfo_t info{};
      if (waitid(P_PID, m.pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
          info.si_pid == m.pid) {
        return absl::FailedPreconditionError(absl::StrCat(
            "etcd member ", m.name, " exited; its log: ", ReadFile(m.log)));
      }
      ++running;
      auto stub = etcdserverpb::Maintenance::NewStub(grpc::CreateChannel(
          absl::StrCat("127.0.0.1:", m.client_port), creds));
      grpc::ClientContext ctx;
      ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
      etcdserverpb::StatusResponse resp;
      grpc::Status s = stub->Status(&ctx, etcdserverpb::StatusRequest(), &resp);
      if (!s.ok()) {
        last = absl::StrCat(m.name, ": ", s.error_message());
        continue;
      }
      index_of[resp.header().member_id()] = i;
      if (resp.leader() != 0) ++votes[resp.leader()];
    }
    for (const auto& [leader, n] : votes) {
      if (n == running && index_of.contains(leader)) return index_of[leader];
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("etcd cluster has no agreed leader (", last, ")"));
}

absl::StatusOr<etcdserverpb::StatusResponse> EtcdCluster::Status(int i) const {
  auto stub = etcdserverpb::Maintenance::NewStub(
      grpc::CreateChannel(Endpoints()[i], Credentials(options_.tls)));
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  etcdserverpb::StatusResponse resp;
  grpc::Status s = stub->Status(&ctx, etcdserverpb::StatusRequest(), &resp);
  if (!s.ok()) return absl::UnavailableError(s.error_message());
  return resp;
}

absl::StatusOr<int64_t> EtcdCluster::DbSizeInUse(int i) const {
  auto status = Status(i);
  if (!status.ok()) return status.status();
  return status->dbsizeinuse();
}

absl::Status EtcdCluster::CutOff(int i) {
  if (!options_.peer_proxies) {
    return absl::FailedPreconditionError("cluster started without proxies");
  }
  auto status = Status(i);
  if (!status.ok()) return status.status();
  // Inbound: everything dialed to member i. Outbound: what member i dials
  // to the others names it as the sender (rafthttp's X-Server-From).
  members_[i].peer_proxy->Sever();
  const std::string from =
      absl::StrCat(absl::Hex(status->header().member_id()));
  for (int j = 0; j < size(); ++j) {
    if (j != i) members_[j].peer_proxy->SeverFrom(from);
  }
  return absl::OkStatus();
}

void EtcdCluster::HealPeerLinks() {
  for (Member& m : members_) {
    if (m.peer_proxy) m.peer_proxy->Heal();
  }
}

absl::Status EtcdCluster::WaitForLeader(absl::Duration wait) const {
  auto leader = Leader(wait);
  return leader.ok() ? absl::OkStatus() : leader.status();
}

}  // namespace bkv::storage::testing
