#include "server/serve_command.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "crypto/hex.h"
#include "crypto/status_macros.h"
#include "hsm/key_ceremony.h"
#include "server/build_vault.h"
#include "server/config.h"
#include "server/invalid_request_interceptor.h"
#include "server/log.h"
#include "server/metrics_http.h"
#include "server/quorum_node.h"
#include "server/vault_cli.h"

namespace bkv::server {
namespace {

// Secrets live in this process's memory: no core files, no ptrace by
// unprivileged peers.
void HardenProcess() {
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  rlimit none{0, 0};
  setrlimit(RLIMIT_CORE, &none);
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> Credentials(
    const ComponentOptions::Listener& l) {
  if (l.tls_cert.empty()) return grpc::InsecureServerCredentials();
  BKV_ASSIGN_OR_RETURN(std::string cert, ReadTextFile(l.tls_cert));
  BKV_ASSIGN_OR_RETURN(std::string key, ReadTextFile(l.tls_key));
  grpc::SslServerCredentialsOptions opts;
  opts.pem_key_cert_pairs.push_back({key, cert});
  return grpc::SslServerCredentials(opts);
}

constexpr int kIdleServerThreads = 32;

// The gRPC server for `service` on l.listen; `bound_port` is 0 on failure.
std::unique_ptr<grpc::Server> StartGrpc(
    const ComponentOptions::Listener& l,
    std::shared_ptr<grpc::ServerCredentials> creds, VaultService& service,
    int* bound_port) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // gRPC sets SO_REUSEPORT by default: a second vault on a busy port would
  // start and share its clients with the first.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(l.listen, std::move(creds), bound_port);
  builder.SetMaxReceiveMessageSize(static_cast<int>(l.max_message_bytes));
  // gRPC's sync server ends a thread once more than MAX_POLLERS (default 2)
  // are idle and starts another for the next call: under 16 concurrent
  // clients that was a thread created and destroyed per recovery or so
  // (bench/server/cpu_per_recovery.sh). Idle threads only wait.
  builder.SetSyncServerOption(
      grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, kIdleServerThreads);
  builder.RegisterService(&service);
  std::vector<
      std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
      interceptors;
  interceptors.push_back(std::make_unique<InvalidRequestInterceptorFactory>());
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  return builder.BuildAndStart();
}

// SIGTERM or SIGINT. SIGHUP (a terminal closing, or an operator expecting a
// reload) changes nothing: settings apply at start (docs/operations.md).
int WaitForStopSignal(const sigset_t& signals) {
  int sig = 0;
  while (sigwait(&signals, &sig) == 0 && sig == SIGHUP) {
    Log("info", "sighup_ignored",
        {{"hint", "restart the vault to apply configuration changes"}});
  }
  return sig;
}

int Fail(absl::string_view event, const absl::Status& s) {
  Log("error", event, {{"error", std::string(s.ToString())}});
  return 1;
}

int RunServeCommand(const ConfigArgs& args) {
  HardenProcess();
  // Debian's abseil checks every Mutex acquisition for lock-order cycles;
  // that bookkeeping is for debugging, not for a serving vault.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // Signals go to the waiting thread below, never to gRPC's threads.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto config = LoadParsedConfig(args);
  if (!config.ok()) {
    std::cerr << "bkv-vault serve: " << config.status().message() << "\n";
    return kExitUsage;
  }
  auto node = BuildVault(*config);
  if (!node.ok()) return 1;  // BuildVault logged why
  const ComponentOptions& o = (*node)->options;
  const hsm::VaultKeys& keys = *(*node)->keys;

  std::unique_ptr<MetricsHttpServer> metrics_http;
  const ComponentOptions::Listener& l = o.listener;
  if (!l.metrics_listen.empty()) {
    auto started = MetricsHttpServer::Start(l.metrics_listen, (*node)->metrics);
    if (!started.ok()) return Fail("metrics_unavailable", started.status());
    metrics_http = *std::move(started);
  }

  auto creds = Credentials(l);
  if (!creds.ok()) return Fail("tls_unavailable", creds.status());
  int bound_port = 0;
  std::unique_ptr<grpc::Server> server =
      StartGrpc(l, *creds, *(*node)->service, &bound_port);
  if (!server || bound_port == 0) {
    return Fail("listen_failed",
                absl::UnavailableError(absl::StrCat(
                    "cannot listen on ", l.listen, " (in use, or invalid)")));
  }
  server->GetHealthCheckService()->SetServingStatus(true);
  // A quorum member that only endorses is a healthy process, but not where
  // account calls go: a load balancer asks for the Vault service by name.
  server->GetHealthCheckService()->SetServingStatus(
      std::string(vault::v1::Vault::service_full_name()),
      (*node)->standby == nullptr && (*node)->elected == nullptr);
  // An elected owner serves while it holds the lease (docs/rollback.md
  // "Election").
  if ((*node)->elected) {
    grpc::Server* s = server.get();
    (*node)->elected->OnServing([s](bool serving) {
      s->GetHealthCheckService()->SetServingStatus(
          std::string(vault::v1::Vault::service_full_name()), serving);
    });
  }
  // The endorser NOT_SERVING while it recovers: a rolling restart waits
  // for it before the next node (recovery review finding 7).
  if ((*node)->quorum && (*node)->quorum->recovery) {
    grpc::Server* s = server.get();
    const std::string name(fresh::v1::Endorser::service_full_name());
    s->GetHealthCheckService()->SetServingStatus(name, false);
    (*node)->quorum->recovery->OnRecovered([s, name] {
      s->GetHealthCheckService()->SetServingStatus(name, true);
    });
  }
  // A fenced owner serves nothing more: the load balancer must move on
  // (review finding 4 of issue 12).
  if ((*node)->quorum && (*node)->quorum->heads) {
    grpc::Server* s = server.get();
    (*node)->quorum->heads->OnFenced([s] {
      s->GetHealthCheckService()->SetServingStatus(
          std::string(vault::v1::Vault::service_full_name()), false);
    });
  }
  if (metrics_http) metrics_http->SetServing(true);
  Log("info", "serving",
      {{"listen", l.listen},
       {"port", absl::StrCat(bound_port)},
       {"metrics", l.metrics_listen},
       {"tls", l.tls_cert.empty() ? "off" : "on"},
       {"plaintext_non_loopback", l.plaintext_non_loopback ? "allowed" : "no"},
       {"server_public_key", HexEncode(keys.ake.public_key())},
       {"fingerprint", hsm::PublicKeyFingerprintHex(keys.ake.public_key())},
       {"attempt_limit", absl::StrCat(o.vault.limits.attempt_limit)}});

  int sig = WaitForStopSignal(signals);
  Log("info", "draining", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
  if ((*node)->quorum && (*node)->quorum->recovery) {
    (*node)->quorum->recovery->OnRecovered(nullptr);  // before server goes
  }
  server->GetHealthCheckService()->SetServingStatus(false);
  if (metrics_http) metrics_http->SetServing(false);
  server->Shutdown(std::chrono::system_clock::now() +
                   std::chrono::seconds(l.drain_timeout_s));
  server->Wait();
  if ((*node)->quorum && (*node)->quorum->heads) {
    (*node)->quorum->heads->OnFenced(nullptr);  // before the server goes
  }
  if ((*node)->elected) (*node)->elected->OnServing(nullptr);
  Log("info", "stopped");
  return 0;
}

}  // namespace

void RegisterServeCommand(VaultCli& cli) {
  auto args = std::make_shared<ConfigArgs>();
  CLI::App* serve = cli.Add(
      cli.root(), "serve", "run the vault",
      "Runs until SIGTERM or SIGINT, then drains in-flight calls. Every "
      "setting can be given in the TOML file (--config) as [table] key = "
      "value or as a flag; flags win. Secrets (the HSM PIN) are never flags: "
      "hsm-pin-file or $BKV_HSM_PIN. Settings apply at start; SIGHUP changes "
      "nothing.",
      [args](Io) { return RunServeCommand(*args); });
  AddConfigFlags(*serve, *args);
}

}  // namespace bkv::server
