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
#include "server/invalid_request_interceptor.h"
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

// Once RocksDB has made its CURRENT file (or the key check file exists)
// the token's keys are what the data depends on, and none may be made anew.
bool HoldsRecords(const VaultConfig& c) {
  return ::access((c.RecordsDir() + "/CURRENT").c_str(), F_OK) == 0 ||
         ::access(c.KeyCheckPath().c_str(), F_OK) == 0;
}

absl::StatusOr<std::shared_ptr<hsm::Pkcs11Hsm>> OpenToken(
    const ComponentOptions& o, bool holds_records) {
  HsmFlags flags = o.hsm;
  const bool dev =
      flags.pin_file.empty() && std::getenv("BKV_HSM_PIN") == nullptr;
  std::shared_ptr<hsm::Pkcs11Hsm> token;
  if (!dev) {
    BKV_ASSIGN_OR_RETURN(token, OpenHsm(flags));
  } else {
    // Development: a SoftHSM token under data_dir, made with its keys on
    // first start. Never over records: a new seed would turn every right
    // password into a wrong one.
    flags.softhsm_dir = o.softhsm_dir;
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

// The keys on the token must be the ones the records were made with
// (hsm/key_ceremony.h, MakeKeyCheck). The check file is written when the
// first start made the keys, or, for a data directory older than the file,
// once from the keys found (logged).
absl::Status CheckKeysMatchRecords(const std::string& path,
                                   const hsm::VaultKeys& keys,
                                   const std::string& token_description,
                                   bool holds_records) {
  if (::access(path.c_str(), F_OK) == 0) {
    BKV_ASSIGN_OR_RETURN(std::string check, ReadFile(path));
    return hsm::VerifyKeyCheck(keys, check, token_description);
  }
  BKV_ASSIGN_OR_RETURN(std::string check, hsm::MakeKeyCheck(keys));
  const std::string tmp = path + ".tmp";
  ::unlink(tmp.c_str());
  BKV_RETURN_IF_ERROR(WriteSecretFile(tmp, check));
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create ", path, ": ", std::strerror(errno)));
  }
  if (holds_records) {
    Log("warn", "key_check_created",
        {{"path", path},
         {"note",
          "records predate the key check file; the keys now on the token "
          "were taken as the right ones"}});
  }
  return absl::OkStatus();
}

// Fails start-up early, and clearly, when the data directory cannot be
// written (a read-only mount), instead of at the first chmod or record.
absl::Status CheckWritable(const std::string& dir) {
  const std::string probe = dir + "/.bkv-write-probe";
  int fd =
      ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    const int err = errno;
    if (err == EROFS) {
      return absl::FailedPreconditionError(absl::StrCat(
          "data directory ", dir,
          " is on a read-only file system: the vault writes its records, "
          "audit log and token there. Mount it read-write, or point "
          "--data-dir at a writable directory"));
    }
    if (err == EACCES || err == EPERM) {
      return absl::FailedPreconditionError(absl::StrCat(
          "data directory ", dir, " is not writable by this user (",
          std::strerror(err),
          "): give the vault's user ownership of it (mode 0700), or point "
          "--data-dir at a writable directory"));
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot write in data directory ", dir, ": ", std::strerror(err)));
  }
  ::close(fd);
  ::unlink(probe.c_str());
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> Credentials(
    const ComponentOptions::Listener& l) {
  if (l.tls_cert.empty()) return grpc::InsecureServerCredentials();
  BKV_ASSIGN_OR_RETURN(std::string cert, ReadFile(l.tls_cert));
  BKV_ASSIGN_OR_RETURN(std::string key, ReadFile(l.tls_key));
  grpc::SslServerCredentialsOptions opts;
  opts.pem_key_cert_pairs.push_back({key, cert});
  return grpc::SslServerCredentials(opts);
}

int Fail(absl::string_view event, const absl::Status& s) {
  Log("error", event, {{"error", std::string(s.ToString())}});
  return 1;
}

}  // namespace

ComponentOptions ComponentOptionsFor(const VaultConfig& c) {
  ComponentOptions o;
  o.listener = {c.listen,
                c.metrics_listen,
                c.tls_cert,
                c.tls_key,
                c.allow_plaintext_non_loopback,
                c.drain_timeout_s,
                c.max_message_bytes};
  o.hsm.module_path = c.hsm_module;
  o.hsm.token_label = c.hsm_token_label;
  o.hsm.pin_file = c.hsm_pin_file;
  o.hsm.sessions = static_cast<size_t>(c.hsm_sessions);
  o.softhsm_dir = c.SoftHsmDir();
  o.records_dir = c.RecordsDir();
  o.audit_log = c.AuditLogPath();
  o.key_check = c.KeyCheckPath();
  o.issuer_keys_file = c.issuer_keys_file;
  o.dev_issuer_key = c.DevIssuerKeyPath();
  o.dev_issuer_keys = c.DevIssuerKeysPath();
  o.audience = c.audience;
  o.issuer = c.issuer;
  o.opaque.context = c.opaque_context;
  if (!c.server_identity.empty()) o.opaque.server_identity = c.server_identity;
  o.vault.limits = {static_cast<uint32_t>(c.attempt_limit),
                    c.login_ttl_s * 1000};
  o.vault.limits.min_ksf_memory_kib =
      static_cast<uint32_t>(c.min_ksf_memory_kib);
  o.vault.limits.reset_delay_ms = c.reset_delay_s * 1000;
  o.limits.read = {c.read_burst, c.read_per_second};
  o.limits.guess = {c.guess_burst, c.guess_per_second};
  o.limits.call = {c.account_burst, c.account_per_second};
  o.limits.peer = {c.peer_burst, c.peer_per_second};
  o.limits.unauthenticated = {c.unauthenticated_burst,
                              c.unauthenticated_per_second};
  o.limits.trusted_proxies = c.trusted_proxies;
  // GetVaultInfo: everything a client must agree with. Argon2id's
  // structural floors (t, p >= 1) and this vault's memory floor.
  o.info.set_protocol_version(vault::v1::PROTOCOL_VERSION_2);
  o.info.set_opaque_context(c.opaque_context);
  o.info.set_server_identity(c.server_identity);
  o.info.set_attempt_limit(static_cast<uint32_t>(c.attempt_limit));
  o.info.mutable_min_ksf()->set_iterations(1);
  o.info.mutable_min_ksf()->set_memory_kib(
      static_cast<uint32_t>(c.min_ksf_memory_kib));
  o.info.mutable_min_ksf()->set_parallelism(1);
  o.info.set_reset_delay_ms(static_cast<uint64_t>(c.reset_delay_s) * 1000);
  return o;
}

std::string DescribeForTesting(const ComponentOptions& o) {
  const auto& l = o.listener;
  auto limiter = [](const RateLimiter::Options& r) {
    return absl::StrCat(r.burst, "/", r.per_second, "/", r.max_keys_per_shard);
  };
  return absl::StrCat(
      "listen=", l.listen, "\nmetrics_listen=", l.metrics_listen,
      "\ntls=", l.tls_cert, ",", l.tls_key,
      "\nplaintext_non_loopback=", l.plaintext_non_loopback,
      "\ndrain_timeout_s=", l.drain_timeout_s,
      "\nmax_message_bytes=", l.max_message_bytes, "\nhsm=", o.hsm.module_path,
      ",", o.hsm.token_label, ",", o.hsm.pin_file, ",", o.hsm.sessions,
      "\nsofthsm_dir=", o.softhsm_dir, "\nrecords_dir=", o.records_dir,
      "\naudit_log=", o.audit_log, "\nkey_check=", o.key_check,
      "\nissuer_keys_file=", o.issuer_keys_file,
      "\ndev_issuer=", o.dev_issuer_key, ",", o.dev_issuer_keys,
      "\ntoken_policy=", o.audience, ",", o.issuer,
      "\nopaque=", o.opaque.context, ",", o.opaque.server_identity.value_or(""),
      "\nvault=", o.vault.limits.attempt_limit, ",",
      o.vault.limits.login_ttl_ms, ",", o.vault.limits.min_ksf_memory_kib, ",",
      o.vault.limits.reset_delay_ms,
      "\nlimits=", limiter(o.limits.read), " ", limiter(o.limits.guess), " ",
      limiter(o.limits.call), " ", limiter(o.limits.peer), " ",
      limiter(o.limits.unauthenticated), " ", o.limits.trusted_proxies,
      "\ninfo=", o.info.ShortDebugString(), "\n");
}

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
  const ComponentOptions o = ComponentOptionsFor(c);
  if (auto s = MakeDir(c.data_dir); !s.ok()) return Fail("startup_failed", s);
  if (auto s = CheckWritable(c.data_dir); !s.ok()) {
    return Fail("startup_failed", s);
  }

  // Self-tests first: nothing is served by a process that computes wrongly.
  if (auto s = RunOpaqueSelfTest(); !s.ok()) return Fail("self_test_failed", s);
  const bool holds_records = HoldsRecords(c);
  auto token = OpenToken(o, holds_records);
  if (!token.ok()) return Fail("hsm_unavailable", token.status());
  auto keys = hsm::VaultKeys::Load(*token);
  if (!keys.ok()) return Fail("hsm_keys_missing", keys.status());
  if (auto s = hsm::RunTokenSelfTests(**token, *keys); !s.ok()) {
    return Fail("self_test_failed", s);
  }
  if (auto s = CheckKeysMatchRecords(o.key_check, *keys, (*token)->Describe(),
                                     holds_records);
      !s.ok()) {
    return Fail("hsm_keys_mismatch", s);
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
  auto audit = FileAuditLog::Open(o.audit_log, *std::move(audit_key));
  if (!audit.ok()) return Fail("audit_log_unavailable", audit.status());

  if (auto s = MakeDir(o.records_dir); !s.ok())
    return Fail("startup_failed", s);
  storage::RocksDbRecordStoreOptions store_options;
  store_options.data_dir = o.records_dir;
  // Non-owning: `sealer` lives until this function returns, after the store.
  auto store = storage::RocksDbRecordStore::Open(
      store_options,
      std::shared_ptr<const Sealer>(std::shared_ptr<void>(), &sealer));
  if (!store.ok()) return Fail("storage_unavailable", store.status());
  TimedRecordStore timed_store(**store, metrics);

  std::string keys_file = o.issuer_keys_file;
  if (keys_file.empty()) {
    if (auto s = EnsureDevIssuer(c); !s.ok()) return Fail("startup_failed", s);
    keys_file = o.dev_issuer_keys;
  }
  auto issuer_keys = ReadIssuerKeys(keys_file);
  if (!issuer_keys.ok()) return Fail("config_invalid", issuer_keys.status());
  auto verifier = TokenVerifier::Create(
      TokenPolicy{*std::move(issuer_keys), o.audience, o.issuer});
  if (!verifier.ok()) return Fail("config_invalid", verifier.status());

  opaque::OpaqueServer opaque_server(o.opaque, oprf_seed, *server_keys);
  Vault vault(o.vault, opaque_server, timed_store, sealer, **audit, metrics);
  RateLimiter read_limits(o.limits.read);
  RateLimiter guess_limits(o.limits.guess);
  RateLimiter call_limits(o.limits.call);
  RateLimiter peer_limits(o.limits.peer);
  RateLimiter unauthenticated_limits(o.limits.unauthenticated);
  auto trusted_proxies = ParseTrustedProxies(o.limits.trusted_proxies);
  if (!trusted_proxies.ok()) {
    return Fail("config_invalid", trusted_proxies.status());
  }
  vault::v1::GetVaultInfoResponse info = o.info;
  info.set_server_public_key(std::string(keys->ake.public_key().begin(),
                                         keys->ake.public_key().end()));
  VaultService service(
      vault, **verifier,
      ServiceLimits{read_limits, guess_limits, call_limits, peer_limits,
                    unauthenticated_limits, *std::move(trusted_proxies)},
      std::move(info), metrics);

  std::unique_ptr<MetricsHttpServer> metrics_http;
  const ComponentOptions::Listener& l = o.listener;
  if (!l.metrics_listen.empty()) {
    auto started = MetricsHttpServer::Start(l.metrics_listen, metrics);
    if (!started.ok()) return Fail("metrics_unavailable", started.status());
    metrics_http = *std::move(started);
  }

  auto creds = Credentials(l);
  if (!creds.ok()) return Fail("tls_unavailable", creds.status());
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int bound_port = 0;
  builder.AddListeningPort(l.listen, *creds, &bound_port);
  builder.SetMaxReceiveMessageSize(static_cast<int>(l.max_message_bytes));
  builder.RegisterService(&service);
  std::vector<
      std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
      interceptors;
  interceptors.push_back(std::make_unique<InvalidRequestInterceptorFactory>());
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || bound_port == 0) {
    return Fail("listen_failed",
                absl::UnavailableError(absl::StrCat(
                    "cannot listen on ", l.listen, " (in use, or invalid)")));
  }
  server->GetHealthCheckService()->SetServingStatus(true);
  Log("info", "serving",
      {{"listen", l.listen},
       {"port", absl::StrCat(bound_port)},
       {"metrics", l.metrics_listen},
       {"tls", l.tls_cert.empty() ? "off" : "on"},
       {"plaintext_non_loopback", l.plaintext_non_loopback ? "allowed" : "no"},
       {"server_public_key", HexEncode(keys->ake.public_key())},
       {"fingerprint", hsm::PublicKeyFingerprintHex(keys->ake.public_key())},
       {"attempt_limit", absl::StrCat(o.vault.limits.attempt_limit)}});

  int sig = 0;
  sigwait(&signals, &sig);
  Log("info", "draining", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
  server->GetHealthCheckService()->SetServingStatus(false);
  server->Shutdown(std::chrono::system_clock::now() +
                   std::chrono::seconds(l.drain_timeout_s));
  server->Wait();
  Log("info", "stopped");
  return 0;
}

constexpr char kTokenUsage[] =
    R"(usage: bkv-vault token <mint> [flags]

  mint     Print an account token signed with the development issuer key
           (development and tests; production tokens come from the
           messaging service).

mint flags:
  --sub ACCOUNT        the account id (required)
  --data-dir D         the vault's data directory, for its dev issuer key
                       (default ./var/bkv)
  --key-file F         an Ed25519 secret key file (hex) instead, with --kid K
  --kid K              key id in the token header (default dev)
  --audience A         `aud` (default bkv-vault)
  --issuer I           `iss` (default none)
  --ttl-s N            lifetime in seconds (default 3600)
)";

int RunTokenCommand(std::span<const std::string> args) {
  for (const std::string& a : args) {
    if (a == "--help" || a == "-h" || a == "help") {
      std::cout << kTokenUsage;
      return 0;
    }
  }
  if (args.empty() || args[0] != "mint") {
    std::cerr << kTokenUsage;
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
