#include "server/serve_command.h"

#include <fcntl.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "crypto/hash.h"
#include "crypto/hex.h"
#include "crypto/status_macros.h"
#include "hsm/ake_key_pair.h"
#include "hsm/key_ceremony.h"
#include "hsm/self_test.h"
#include "hsm/softhsm_dev.h"
#include "server/account_token.h"
#include "server/audit_log.h"
#include "server/config.h"
#include "server/hsm_command.h"
#include "server/instrumented.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/metrics_http.h"
#include "server/opaque_self_test.h"
#include "server/rate_limiter.h"
#include "server/vault.h"
#include "server/vault_service.h"
#include "storage/rocksdb_record_store.h"

namespace bkv::server {
namespace {

// Secrets live in this process's memory: no core files, no ptrace by
// unprivileged peers.
void HardenProcess() {
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  rlimit none{0, 0};
  setrlimit(RLIMIT_CORE, &none);
}

absl::Status MakeDir(const std::string& dir) {
  std::string path;
  for (absl::string_view part : absl::StrSplit(dir, '/')) {
    path = path.empty() && dir[0] == '/'
               ? absl::StrCat("/", part)
               : (path.empty() ? std::string(part)
                               : absl::StrCat(path, "/", part));
    if (part.empty() || part == ".") continue;
    if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot create directory ", path, ": ", std::strerror(errno)));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("cannot read ", path));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::Status WriteSecretFile(const std::string& path, absl::string_view text) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create ", path, ": ", std::strerror(errno)));
  }
  bool ok = ::write(fd, text.data(), text.size()) ==
                static_cast<ssize_t>(text.size()) &&
            ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

// "<kid> <hex public key>" per line; '#' comments.
absl::StatusOr<std::vector<IssuerKey>> ReadIssuerKeys(const std::string& path) {
  BKV_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  std::vector<IssuerKey> keys;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    if (line.empty() || line[0] == '#') continue;
    std::vector<absl::string_view> parts =
        absl::StrSplit(line, ' ', absl::SkipEmpty());
    auto pk =
        parts.size() == 2
            ? HexDecode(std::string_view(parts[1].data(), parts[1].size()))
            : absl::InvalidArgumentError("");
    if (!pk.ok() || pk->size() != 32) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ":", line_no,
          ": expected `<kid> <64 hex digits Ed25519 public key>`"));
    }
    IssuerKey k{std::string(parts[0]), {}};
    std::copy(pk->begin(), pk->end(), k.public_key.begin());
    keys.push_back(std::move(k));
  }
  if (keys.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": no issuer keys"));
  }
  return keys;
}

// The development issuer: a key pair under data_dir, made on first start.
absl::Status EnsureDevIssuer(const VaultConfig& c) {
  if (::access(c.DevIssuerKeyPath().c_str(), F_OK) == 0)
    return absl::OkStatus();
  Ed25519KeyPair kp = GenerateEd25519KeyPair();
  std::string secret_hex = HexEncode(kp.secret_key.Reveal()) + "\n";
  absl::Status written = WriteSecretFile(c.DevIssuerKeyPath(), secret_hex);
  OPENSSL_cleanse(secret_hex.data(), secret_hex.size());
  BKV_RETURN_IF_ERROR(written);
  BKV_RETURN_IF_ERROR(WriteSecretFile(
      c.DevIssuerKeysPath(),
      absl::StrCat("# development issuer: bkv-vault token mint\ndev ",
                   HexEncode(kp.public_key), "\n")));
  Log("warn", "dev_issuer_created",
      {{"path", c.DevIssuerKeysPath()},
       {"note",
        "development token issuer; configure issuer_keys_file in "
        "production"}});
  return absl::OkStatus();
}

// Records exist once RocksDB has made its CURRENT file: from then on the
// token's keys are what every record depends on, and none may be made anew.
bool HoldsRecords(const VaultConfig& c) {
  return ::access((c.RecordsDir() + "/CURRENT").c_str(), F_OK) == 0;
}

absl::StatusOr<std::shared_ptr<hsm::Pkcs11Hsm>> OpenToken(
    const VaultConfig& c) {
  HsmFlags flags;
  flags.module_path = c.hsm_module;
  flags.token_label = c.hsm_token_label;
  flags.pin_file = c.hsm_pin_file;
  flags.sessions = static_cast<size_t>(c.hsm_sessions);
  const bool dev =
      c.hsm_pin_file.empty() && std::getenv("BKV_HSM_PIN") == nullptr;
  const bool holds_records = HoldsRecords(c);
  std::shared_ptr<hsm::Pkcs11Hsm> token;
  if (!dev) {
    BKV_ASSIGN_OR_RETURN(token, OpenHsm(flags));
  } else {
    // Development: a SoftHSM token under data_dir, made with its keys on
    // first start. Never over records: a new seed would turn every right
    // password into a wrong one.
    flags.softhsm_dir = c.SoftHsmDir();
    BKV_ASSIGN_OR_RETURN(
        hsm::SoftHsmDevToken dev_token,
        hsm::PrepareSoftHsmDir(flags.softhsm_dir, flags.token_label,
                               flags.module_path,
                               /*allow_create=*/!holds_records));
    BKV_ASSIGN_OR_RETURN(token, OpenHsm(flags));
    if (!holds_records) {
      BKV_ASSIGN_OR_RETURN(hsm::CeremonyReport report,
                           hsm::RunKeyCeremony(*token, hsm::CeremonyOptions{}));
      if (dev_token.token_created) {
        Log("warn", "dev_token_created",
            {{"dir", flags.softhsm_dir},
             {"server_public_key", HexEncode(report.ake_public_key)},
             {"fingerprint", report.ake_fingerprint_hex}});
      }
    }
  }
  BKV_RETURN_IF_ERROR(hsm::RequireAllKeys(*token));
  return token;
}

// Fails start-up early, and clearly, when the data directory cannot be
// written (a read-only mount), instead of at the first chmod or record.
absl::Status CheckWritable(const std::string& dir) {
  const std::string probe = dir + "/.bkv-write-probe";
  int fd =
      ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    const int err = errno;
    if (err == EROFS || err == EACCES || err == EPERM) {
      return absl::FailedPreconditionError(absl::StrCat(
          "data directory ", dir, " is ",
          err == EROFS ? "on a read-only file system" : "not writable", " (",
          std::strerror(err),
          "): the vault writes its records, audit log and token there. "
          "Mount it read-write or fix its owner (the vault's user needs "
          "rwx), or point --data-dir at a writable directory"));
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot write in data directory ", dir, ": ", std::strerror(err)));
  }
  ::close(fd);
  ::unlink(probe.c_str());
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> Credentials(
    const VaultConfig& c) {
  if (c.tls_cert.empty()) return grpc::InsecureServerCredentials();
  BKV_ASSIGN_OR_RETURN(std::string cert, ReadFile(c.tls_cert));
  BKV_ASSIGN_OR_RETURN(std::string key, ReadFile(c.tls_key));
  grpc::SslServerCredentialsOptions opts;
  opts.pem_key_cert_pairs.push_back({key, cert});
  return grpc::SslServerCredentials(opts);
}

// What GetVaultInfo answers: everything a client must agree with.
vault::v1::GetVaultInfoResponse VaultInfo(
    const VaultConfig& c, const hsm::AkeKeyPair::PublicKey& public_key) {
  vault::v1::GetVaultInfoResponse info;
  info.set_protocol_version(vault::v1::PROTOCOL_VERSION_2);
  info.set_opaque_context(c.opaque_context);
  info.set_server_identity(c.server_identity);
  info.set_server_public_key(std::string(public_key.begin(), public_key.end()));
  info.set_attempt_limit(static_cast<uint32_t>(c.attempt_limit));
  // Argon2id's structural floors (t, p >= 1) and this vault's memory floor.
  info.mutable_min_ksf()->set_iterations(1);
  info.mutable_min_ksf()->set_memory_kib(
      static_cast<uint32_t>(c.min_ksf_memory_kib));
  info.mutable_min_ksf()->set_parallelism(1);
  info.set_reset_delay_ms(static_cast<uint64_t>(c.reset_delay_s) * 1000);
  return info;
}

int Fail(absl::string_view event, const absl::Status& s) {
  Log("error", event, {{"error", std::string(s.ToString())}});
  return 1;
}

}  // namespace

int RunServeCommand(std::span<const std::string> args) {
  for (const auto& a : args) {
    if (a == "--help" || a == "-h") {
      PrintConfigHelp(std::cout);
      return 0;
    }
  }
  HardenProcess();
  // Debian's abseil checks every Mutex acquisition for lock-order cycles;
  // that bookkeeping is for debugging, not for a serving vault.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // Signals go to the waiting thread below, never to gRPC's threads.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto config = LoadConfig(args);
  if (!config.ok()) {
    std::cerr << "bkv-vault serve: " << config.status().message() << "\n";
    return 2;
  }
  const VaultConfig& c = *config;
  if (auto s = MakeDir(c.data_dir); !s.ok()) return Fail("startup_failed", s);
  if (auto s = CheckWritable(c.data_dir); !s.ok()) {
    return Fail("startup_failed", s);
  }

  // Self-tests first: nothing is served by a process that computes wrongly.
  if (auto s = RunOpaqueSelfTest(); !s.ok()) return Fail("self_test_failed", s);
  auto token = OpenToken(c);
  if (!token.ok()) return Fail("hsm_unavailable", token.status());
  auto keys = hsm::VaultKeys::Load(*token);
  if (!keys.ok()) return Fail("hsm_keys_missing", keys.status());
  if (auto s = hsm::RunTokenSelfTests(**token, *keys); !s.ok()) {
    return Fail("self_test_failed", s);
  }

  Metrics metrics;
  TimedSealer sealer(keys->sealer, metrics);
  TimedKeyedHash oprf_seed(keys->oprf_seed, metrics);
  auto server_keys = opaque::ServerKeyPair::FromPrivateKey(
      keys->ake.RevealPrivateKey().Reveal());
  if (!server_keys.ok()) return Fail("hsm_keys_invalid", server_keys.status());

  // The audit key: derived once from the seed under a label no OPRF or
  // fake-record derivation can produce (those end in "OprfKey" / a counter).
  auto audit_key = keys->oprf_seed.HmacSha512(
      AsBytes(std::string_view("bkv-vault/audit-account-key/v1\x00", 32)));
  if (!audit_key.ok()) return Fail("hsm_unavailable", audit_key.status());
  auto audit = FileAuditLog::Open(c.AuditLogPath(), *std::move(audit_key));
  if (!audit.ok()) return Fail("audit_log_unavailable", audit.status());

  if (auto s = MakeDir(c.RecordsDir()); !s.ok())
    return Fail("startup_failed", s);
  storage::RocksDbRecordStoreOptions store_options;
  store_options.data_dir = c.RecordsDir();
  // Non-owning: `sealer` lives until this function returns, after the store.
  auto store = storage::RocksDbRecordStore::Open(
      store_options,
      std::shared_ptr<const Sealer>(std::shared_ptr<void>(), &sealer));
  if (!store.ok()) return Fail("storage_unavailable", store.status());
  TimedRecordStore timed_store(**store, metrics);

  std::string keys_file = c.issuer_keys_file;
  if (keys_file.empty()) {
    if (auto s = EnsureDevIssuer(c); !s.ok()) return Fail("startup_failed", s);
    keys_file = c.DevIssuerKeysPath();
  }
  auto issuer_keys = ReadIssuerKeys(keys_file);
  if (!issuer_keys.ok()) return Fail("config_invalid", issuer_keys.status());
  auto verifier = TokenVerifier::Create(
      TokenPolicy{*std::move(issuer_keys), c.audience, c.issuer});
  if (!verifier.ok()) return Fail("config_invalid", verifier.status());

  opaque::Config opaque_config;
  opaque_config.context = c.opaque_context;
  if (!c.server_identity.empty())
    opaque_config.server_identity = c.server_identity;
  opaque::OpaqueServer opaque_server(opaque_config, oprf_seed, *server_keys);
  Vault::Options vault_options;
  vault_options.limits = {static_cast<uint32_t>(c.attempt_limit),
                          c.login_ttl_s * 1000};
  vault_options.limits.min_ksf_memory_kib =
      static_cast<uint32_t>(c.min_ksf_memory_kib);
  vault_options.limits.reset_delay_ms = c.reset_delay_s * 1000;
  Vault vault(vault_options, opaque_server, timed_store, sealer, **audit,
              metrics);
  RateLimiter read_limits({c.read_burst, c.read_per_second});
  RateLimiter guess_limits({c.guess_burst, c.guess_per_second});
  RateLimiter call_limits({c.account_burst, c.account_per_second});
  RateLimiter peer_limits({c.peer_burst, c.peer_per_second});
  RateLimiter unauthenticated_limits(
      {c.unauthenticated_burst, c.unauthenticated_per_second});
  auto trusted_proxies = ParseTrustedProxies(c.trusted_proxies);
  if (!trusted_proxies.ok()) {
    return Fail("config_invalid", trusted_proxies.status());
  }
  VaultService service(
      vault, **verifier,
      ServiceLimits{read_limits, guess_limits, call_limits, peer_limits,
                    unauthenticated_limits, *std::move(trusted_proxies)},
      VaultInfo(c, keys->ake.public_key()), metrics);

  std::unique_ptr<MetricsHttpServer> metrics_http;
  if (!c.metrics_listen.empty()) {
    auto started = MetricsHttpServer::Start(c.metrics_listen, metrics);
    if (!started.ok()) return Fail("metrics_unavailable", started.status());
    metrics_http = *std::move(started);
  }

  auto creds = Credentials(c);
  if (!creds.ok()) return Fail("tls_unavailable", creds.status());
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int bound_port = 0;
  builder.AddListeningPort(c.listen, *creds, &bound_port);
  builder.SetMaxReceiveMessageSize(static_cast<int>(c.max_message_bytes));
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || bound_port == 0) {
    return Fail("listen_failed",
                absl::UnavailableError(absl::StrCat(
                    "cannot listen on ", c.listen, " (in use, or invalid)")));
  }
  server->GetHealthCheckService()->SetServingStatus(true);
  Log("info", "serving",
      {{"listen", c.listen},
       {"port", absl::StrCat(bound_port)},
       {"metrics", c.metrics_listen},
       {"tls", c.tls_cert.empty() ? "off" : "on"},
       {"server_public_key", HexEncode(keys->ake.public_key())},
       {"fingerprint", hsm::PublicKeyFingerprintHex(keys->ake.public_key())},
       {"attempt_limit", absl::StrCat(c.attempt_limit)}});

  int sig = 0;
  sigwait(&signals, &sig);
  Log("info", "draining", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
  server->GetHealthCheckService()->SetServingStatus(false);
  server->Shutdown(std::chrono::system_clock::now() +
                   std::chrono::seconds(c.drain_timeout_s));
  server->Wait();
  Log("info", "stopped");
  return 0;
}

int RunTokenCommand(std::span<const std::string> args) {
  if (args.empty() || args[0] != "mint") {
    std::cerr << "usage: bkv-vault token mint --sub ACCOUNT [--data-dir D] "
                 "[--key-file F --kid K] [--audience A] [--issuer I] "
                 "[--ttl-s N]\n";
    return 2;
  }
  VaultConfig defaults;
  std::string sub, data_dir = defaults.data_dir, key_file, kid = "dev",
                   audience = defaults.audience, issuer;
  int64_t ttl_s = 3600;
  for (size_t i = 1; i < args.size(); ++i) {
    auto value = [&]() -> std::string {
      return i + 1 < args.size() ? args[++i] : std::string();
    };
    const std::string& a = args[i];
    if (a == "--sub")
      sub = value();
    else if (a == "--data-dir")
      data_dir = value();
    else if (a == "--key-file")
      key_file = value();
    else if (a == "--kid")
      kid = value();
    else if (a == "--audience")
      audience = value();
    else if (a == "--issuer")
      issuer = value();
    else if (a == "--ttl-s") {
      if (!absl::SimpleAtoi(value(), &ttl_s) || ttl_s <= 0) {
        std::cerr << "bkv-vault token mint: --ttl-s wants a positive integer\n";
        return 2;
      }
    } else {
      std::cerr << "bkv-vault token mint: unknown flag " << a << "\n";
      return 2;
    }
  }
  if (sub.empty()) {
    std::cerr << "bkv-vault token mint: --sub ACCOUNT is required\n";
    return 2;
  }
  if (key_file.empty()) {
    VaultConfig c;
    c.data_dir = data_dir;
    key_file = c.DevIssuerKeyPath();
  }
  auto hex = ReadFile(key_file);
  if (!hex.ok()) {
    std::cerr << "bkv-vault token mint: " << hex.status().message()
              << " (start `bkv-vault serve` once to create the dev issuer)\n";
    return 1;
  }
  const absl::string_view stripped = absl::StripAsciiWhitespace(*hex);
  SecretBytes trimmed =
      SecretBytes::Copy(std::string_view(stripped.data(), stripped.size()));
  OPENSSL_cleanse(hex->data(), hex->size());
  auto key = HexDecode(trimmed.RevealAsString());
  if (!key.ok() || key->size() != 64) {
    std::cerr << "bkv-vault token mint: " << key_file
              << " must hold a 64-byte Ed25519 secret key in hex\n";
    return 1;
  }
  auto token = MintToken(SecretBytes::Copy(*key), kid, sub, audience, issuer,
                         absl::Now(), absl::Seconds(ttl_s));
  OPENSSL_cleanse(key->data(), key->size());
  if (!token.ok()) {
    std::cerr << "bkv-vault token mint: " << token.status().message() << "\n";
    return 1;
  }
  std::cout << *token << "\n";
  return 0;
}

}  // namespace bkv::server
