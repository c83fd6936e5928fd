#include "client/vault_client.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <random>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "bkv/vault/v1/error_detail.h"
#include "bkv/vault/v1/vault.grpc.pb.h"
#include "client/cancel.h"
#include "client/grpc_status.h"
#include "crypto/hex.h"
#include "crypto/key_transport.h"
#include "crypto/ristretto255.h"
#include "crypto/status_macros.h"
#include "net/loopback.h"

namespace bkv::client {
namespace {

template <size_t N>
std::string Str(const std::array<uint8_t, N>& a) {
  return {a.begin(), a.end()};
}
std::span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

bool WeakerThan(const Argon2idParams& p, const Argon2idParams& floor) {
  return p.iterations < floor.iterations || p.memory_kib < floor.memory_kib ||
         p.parallelism < floor.parallelism;
}

}  // namespace

absl::StatusOr<opaque::Element> ParseServerPublicKey(const std::string& hex) {
  auto bytes = HexDecode(hex);
  if (!bytes.ok() || bytes->size() != 32) {
    return absl::InvalidArgumentError(
        "the vault public key must be 64 hex digits (bkv-vault hsm status "
        "prints it)");
  }
  return ristretto255::DeserializeElement(*bytes, "vault public key");
}

absl::Status CheckKsfFloor(const VaultOptions& options) {
  if (!WeakerThan(options.ksf, options.min_ksf)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "Argon2id parameters (t=", options.ksf.iterations,
      ", m=", options.ksf.memory_kib, " KiB, p=", options.ksf.parallelism,
      ") are below the configured minimum"));
}

std::shared_ptr<grpc::ChannelCredentials> VaultChannelCredentials(
    const VaultOptions& options) {
  if (!options.tls) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = options.tls_root_certs;
  return grpc::SslCredentials(ssl);
}

bool FailoverSafe(std::string_view rpc) {
  return rpc == "GetVaultInfo" || rpc == "GetStatus" ||
         rpc == "RegisterStart" || rpc == "RegisterFinish" ||
         rpc == "RegisterCommit" || rpc == "RecoverFinish";
}

bool IsLoopbackAddress(std::string_view address) {
  if (address.starts_with("unix:") || address.starts_with("unix-abstract:")) {
    return true;  // a local socket
  }
  // gRPC may use any entry of an ipv4:/ipv6: list: every one must be local.
  for (std::string_view scheme : {"ipv4:", "ipv6:"}) {
    if (!address.starts_with(scheme)) continue;
    address.remove_prefix(scheme.size());
    size_t entries = 0;
    while (entries++ < 64) {
      const size_t comma = address.find(',');
      if (!IsLoopbackHostPort(address.substr(0, comma))) return false;
      if (comma == std::string_view::npos) return true;
      address.remove_prefix(comma + 1);
    }
    return false;
  }
  // dns:host:port or dns:///host:port; a named DNS server (dns://server/)
  // could answer anything for the name.
  if (address.starts_with("dns:///")) {
    address.remove_prefix(7);
  } else if (address.starts_with("dns:") && !address.starts_with("dns://")) {
    address.remove_prefix(4);
  } else if (address.starts_with("dns:")) {
    return false;
  }
  return IsLoopbackHostPort(address);
}

struct VaultClient::Impl {
  Impl(VaultOptions o, Argon2idKsf k,
       std::vector<std::unique_ptr<vault::v1::Vault::Stub>> s)
      : options(std::move(o)),
        registration_ksf(std::move(k)),
        stubs(std::move(s)) {}

  VaultOptions options;
  Argon2idKsf registration_ksf;
  // One stub per node: options.address, then options.failover_addresses.
  std::vector<std::unique_ptr<vault::v1::Vault::Stub>> stubs;
  std::atomic<size_t> current{0};  // the node calls go to
  std::mutex mu;
  std::optional<VaultInfo> info ABSL_GUARDED_BY(mu);

  opaque::Config Config() const {
    opaque::Config c;
    c.context = options.opaque_context;
    c.server_identity = options.server_identity;
    c.client_identity = options.client_identity;
    return c;
  }

  std::unique_ptr<grpc::ClientContext> Context(bool auth) const {
    auto ctx = std::make_unique<grpc::ClientContext>();
    if (auth && options.account_token) {
      ctx->AddMetadata("authorization", "Bearer " + options.account_token());
    }
    ctx->set_deadline(std::chrono::system_clock::now() + options.timeout);
    return ctx;
  }

  // How long to wait before repeating a refused call, or nothing: only a
  // refusal that spent nothing and that the vault asked to retry (a retry
  // time, or VAULT_UNAVAILABLE) is repeated.
  std::optional<std::chrono::milliseconds> RetryDelay(const VaultError& e) {
    if (!e.retry_safe || !e.vault_answered) return std::nullopt;
    uint32_t base = e.retry_after_ms;
    if (base == 0 && e.kind == VaultErrorKind::kTransient) base = 250;
    if (base == 0) return std::nullopt;
    thread_local std::minstd_rand rng(std::random_device{}());
    // Up to +25% jitter so clients refused together do not return together.
    const uint32_t jitter = rng() % (base / 4 + 1);
    return std::chrono::milliseconds(base + jitter);
  }

  const std::string& AddressOf(size_t node) const {
    return node == 0 ? options.address : options.failover_addresses[node - 1];
  }

  // The node did not answer at all (down, unreachable): no vault detail.
  static bool NodeGone(const absl::Status& s, const VaultError& e) {
    return s.code() == absl::StatusCode::kUnavailable && !e.vault_answered;
  }

  // Runs one RPC. An RPC that changes nothing (FailoverSafe, and not
  // RecoverFinish) is abandoned when the app cancels; the others (counting,
  // committing, deleting) run to their answer, so a cancel never leaves the
  // app unsure what the vault did.
  static absl::Status CallCancellable(
      const char* name, VaultCall kind, CancelToken* cancel,
      grpc::ClientContext& ctx, const std::function<absl::Status()>& rpc) {
    if (cancel == nullptr || kind == VaultCall::kAfterCount ||
        !FailoverSafe(name) || std::string_view(name) == "RegisterCommit") {
      return rpc();
    }
    const uint64_t hook = cancel->Add([&ctx] { ctx.TryCancel(); });
    absl::Status s = rpc();
    cancel->Remove(hook);
    if (!s.ok() && cancel->cancelled()) return CancelledByApp();
    return s;
  }

  // The one retry wrapper: every RPC goes through here.
  template <typename Req, typename Resp>
  absl::Status Call(const char* name, VaultCall kind,
                    grpc::Status (vault::v1::Vault::Stub::*rpc)(
                        grpc::ClientContext*, const Req&, Resp*),
                    const Req& req, Resp* resp, bool auth = true) {
    const auto start = std::chrono::steady_clock::now();
    constexpr int kMaxTries = 20;
    CancelToken* cancel = CancelScope::Current();
    for (int tries = 1;; ++tries) {
      // RecoverFinish is never cancelled: its attempt is already spent.
      if (cancel != nullptr && kind != VaultCall::kAfterCount &&
          cancel->cancelled()) {
        return CancelledByApp();
      }
      if (options.before_call) options.before_call(name);
      auto ctx = Context(auth);
      const size_t node = current.load() % stubs.size();
      absl::Status s = MarkVaultCall(
          CallCancellable(name, kind, cancel, *ctx,
                          [&] {
                            return FromGrpc(
                                (stubs[node].get()->*rpc)(ctx.get(), req, resp),
                                *ctx, AddressOf(node));
                          }),
          kind);
      if (s.ok() || tries == kMaxTries || IsCancelledByApp(s)) return s;
      const VaultError e = VaultError::From(s);
      if ((NodeGone(s, e) || e.not_owner) && stubs.size() > 1) {
        // Later calls go to the next node; this one is repeated there only
        // when that cannot spend an attempt ("not the owner" counted
        // nothing: any call is repeated).
        size_t expected = node;
        current.compare_exchange_strong(expected, (node + 1) % stubs.size());
        if ((FailoverSafe(name) || e.not_owner) &&
            tries < static_cast<int>(stubs.size())) {
          continue;
        }
      }
      const auto delay = RetryDelay(e);
      if (!delay) return s;
      const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::steady_clock::now() - start);
      if (waited + *delay > options.max_retry_wait) return s;
      if (options.on_wait) options.on_wait(*delay, e);
      if (cancel == nullptr) {
        std::this_thread::sleep_for(*delay);
      } else if (!cancel->SleepFor(*delay)) {
        return CancelledByApp();
      }
    }
  }

  // KE3 with the KSF parameters the vault returned. Parameters beyond
  // max_ksf (or invalid) are refused, but the caller still closes the login
  // with a dummy KE3, like a wrong password.
  absl::StatusOr<opaque::ClientLoginFinish> FinishLogin(
      opaque::ClientLoginState state,
      const vault::v1::RecoverStartResponse& resp) const {
    const Argon2idParams params{resp.ksf().iterations(),
                                resp.ksf().memory_kib(),
                                resp.ksf().parallelism()};
    if (WeakerThan(options.max_ksf, params)) {
      return absl::InvalidArgumentError(
          "the vault sent Argon2id parameters outside this client's limits");
    }
    BKV_ASSIGN_OR_RETURN(Argon2idKsf ksf, Argon2idKsf::Create(params));
    opaque::OpaqueClient finisher(Config(), ksf, options.server_public_key);
    return finisher.GenerateKE3(std::move(state), Bytes(resp.ke2()));
  }

  absl::StatusOr<VaultInfo> FetchInfo();
  absl::Status CheckInfo(const VaultInfo& info) const;
};

absl::StatusOr<VaultInfo> VaultClient::Impl::FetchInfo() {
  vault::v1::GetVaultInfoResponse resp;
  absl::Status s = Call("GetVaultInfo", VaultCall::kFree,
                        &vault::v1::Vault::Stub::GetVaultInfo,
                        vault::v1::GetVaultInfoRequest(), &resp,
                        /*auth=*/false);
  if (s.code() == absl::StatusCode::kUnimplemented) {
    return ConfigError(absl::StrCat(
        "the vault at ", options.address,
        " does not answer GetVaultInfo (a bkv-vault older than protocol "
        "version 2): upgrade it; nothing was spent"));
  }
  BKV_RETURN_IF_ERROR(s);
  VaultInfo info;
  info.protocol_version = resp.protocol_version();
  info.opaque_context = resp.opaque_context();
  info.server_identity = resp.server_identity();
  if (resp.server_public_key().size() == info.server_public_key.size()) {
    std::copy(resp.server_public_key().begin(), resp.server_public_key().end(),
              info.server_public_key.begin());
  }
  info.attempt_limit = resp.attempt_limit();
  info.min_ksf = {resp.min_ksf().iterations(), resp.min_ksf().memory_kib(),
                  resp.min_ksf().parallelism()};
  info.reset_delay_ms = static_cast<int64_t>(resp.reset_delay_ms());
  return info;
}

absl::Status VaultClient::Impl::CheckInfo(const VaultInfo& info) const {
  const std::string where = absl::StrCat("the vault at ", options.address);
  if (info.protocol_version != vault::v1::PROTOCOL_VERSION_2) {
    return ConfigError(absl::StrCat(where, " speaks protocol version ",
                                    info.protocol_version,
                                    "; this client needs version 2"));
  }
  if (info.opaque_context != options.opaque_context) {
    return ConfigError(absl::StrCat(
        where, " uses the OPAQUE context \"", info.opaque_context,
        "\" but this client is configured with \"", options.opaque_context,
        "\" (--opaque-context): fix the configuration; nothing was spent"));
  }
  const std::string identity = options.server_identity.value_or("");
  if (info.server_identity != identity) {
    return ConfigError(absl::StrCat(
        where, " uses the server identity \"", info.server_identity,
        "\" but this client is configured with \"", identity,
        "\" (--server-identity; empty means the public key): fix the "
        "configuration; nothing was spent"));
  }
  if (info.server_public_key != options.server_public_key) {
    return ConfigError(absl::StrCat(
        where, " has the public key ", HexEncode(info.server_public_key),
        ", not the pinned ", HexEncode(options.server_public_key),
        " (--vault-key): a different vault, or a wrong pin; nothing was "
        "spent"));
  }
  return absl::OkStatus();
}

VaultClient::VaultClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
VaultClient::~VaultClient() = default;

absl::StatusOr<std::unique_ptr<VaultClient>> VaultClient::Create(
    VaultOptions options) {
  BKV_RETURN_IF_ERROR(CheckKsfFloor(options));
  std::vector<std::string> addresses = {options.address};
  addresses.insert(addresses.end(), options.failover_addresses.begin(),
                   options.failover_addresses.end());
  for (const std::string& address : addresses) {
    if (!options.tls && !options.insecure_plaintext &&
        !IsLoopbackAddress(address)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the vault address ", address,
          " is not loopback, so TLS is required (--vault-ca FILE); plaintext "
          "(--insecure-plaintext) would send the account token in the "
          "clear"));
    }
  }
  BKV_ASSIGN_OR_RETURN(Argon2idKsf ksf, Argon2idKsf::Create(options.ksf));
  const auto creds = VaultChannelCredentials(options);
  std::vector<std::unique_ptr<vault::v1::Vault::Stub>> stubs;
  for (const std::string& address : addresses) {
    stubs.push_back(
        vault::v1::Vault::NewStub(grpc::CreateChannel(address, creds)));
  }
  auto impl = std::make_unique<Impl>(std::move(options), std::move(ksf),
                                     std::move(stubs));
  return std::unique_ptr<VaultClient>(new VaultClient(std::move(impl)));
}

absl::StatusOr<VaultInfo> VaultClient::CheckedInfo() {
  Impl& im = *impl_;
  {
    std::lock_guard lock(im.mu);
    if (im.info) return *im.info;
  }
  BKV_ASSIGN_OR_RETURN(VaultInfo info, im.FetchInfo());
  BKV_RETURN_IF_ERROR(im.CheckInfo(info));
  std::lock_guard lock(im.mu);
  im.info = info;
  return info;
}

namespace {

// The answer to a commit was lost. Once the vault has answered a repeat of
// the same commit (registrations are single-use: the repeat either lands or
// is refused as stale), the original can no longer land, so the status then
// says for certain whether this registration (`id`) is the active one.
absl::StatusOr<Registration> ResolveLostCommit(VaultClient& client,
                                               const absl::Status& lost,
                                               const absl::Status& repeat,
                                               uint64_t id) {
  const std::string what =
      absl::StrCat("the vault's answer to the new registration was lost (",
                   lost.message(), ")");
  const bool settled = VaultError::From(repeat).vault_answered;
  auto st = client.Status();
  if (!st.ok() || id == 0) {
    return absl::Status(
        lost.code(),
        absl::StrCat(what,
                     (id == 0 ? " and the vault does not report "
                                "registration ids"
                              : " and the vault cannot be asked now"),
                     ": whether the new password is current is unknown; try "
                     "the new password first (one attempt)"));
  }
  if (st->registration_id == id) return Registration{st->attempt_limit, id};
  if (!settled) {
    return absl::Status(
        lost.code(),
        absl::StrCat(what,
                     " and the vault did not answer a repeat: the OLD "
                     "password is current for now, but the lost "
                     "request may still land; check `bkv vault "
                     "status` before registering again"));
  }
  if (st->state == VaultStatus::State::kActive) {
    return absl::Status(
        lost.code(),
        absl::StrCat(what,
                     "; the vault still holds the previous "
                     "registration: the OLD password is current, the "
                     "new one was not stored; try again"));
  }
  return absl::Status(
      lost.code(),
      absl::StrCat(what,
                   "; the vault holds no active registration: the new "
                   "password was not stored; register again"));
}

}  // namespace

absl::StatusOr<Registration> VaultClient::Register(
    const std::string& account, const SecretBytes& password,
    const SecretBytes& backup_key, const std::string& proof) {
  Impl& im = *impl_;
  BKV_ASSIGN_OR_RETURN(VaultInfo info, CheckedInfo());
  if (WeakerThan(im.options.ksf, info.min_ksf)) {
    return ConfigError(
        absl::StrCat("the vault refuses Argon2id parameters weaker than t=",
                     info.min_ksf.iterations, ", m=", info.min_ksf.memory_kib,
                     " KiB, p=", info.min_ksf.parallelism));
  }
  opaque::OpaqueClient opaque(im.Config(), im.registration_ksf,
                              im.options.server_public_key);
  BKV_ASSIGN_OR_RETURN(auto start,
                       opaque.CreateRegistrationRequest(password.Clone()));
  vault::v1::RegisterStartRequest req1;
  req1.set_registration_request(Str(start.request.Serialize()));
  req1.set_account(account);
  vault::v1::RegisterStartResponse resp1;
  BKV_RETURN_IF_ERROR(im.Call("RegisterStart", VaultCall::kFree,
                              &vault::v1::Vault::Stub::RegisterStart, req1,
                              &resp1));
  BKV_ASSIGN_OR_RETURN(auto response, opaque::RegistrationResponse::Parse(Bytes(
                                          resp1.registration_response())));
  BKV_ASSIGN_OR_RETURN(auto finish, opaque.FinalizeRegistrationRequest(
                                        std::move(start.state), response));
  BKV_ASSIGN_OR_RETURN(auto ke1, opaque.GenerateKE1(password.Clone()));

  vault::v1::RegisterFinishRequest req2;
  req2.set_registration_record(Str(finish.record.Serialize()));
  req2.mutable_ksf()->set_iterations(im.options.ksf.iterations);
  req2.mutable_ksf()->set_memory_kib(im.options.ksf.memory_kib);
  req2.mutable_ksf()->set_parallelism(im.options.ksf.parallelism);
  req2.set_ke1(Str(ke1.ke1.Serialize()));
  req2.set_registration_state(resp1.registration_state());
  req2.set_proof(proof);
  vault::v1::RegisterFinishResponse resp2;
  BKV_RETURN_IF_ERROR(im.Call("RegisterFinish", VaultCall::kFree,
                              &vault::v1::Vault::Stub::RegisterFinish, req2,
                              &resp2));
  // Proves the new record works before anything is committed.
  BKV_ASSIGN_OR_RETURN(
      auto ke3, opaque.GenerateKE3(std::move(ke1.state), Bytes(resp2.ke2())));
  BKV_ASSIGN_OR_RETURN(
      std::vector<uint8_t> wrapped,
      key_transport::WrapBackupKey(ke3.export_key, account, backup_key));
  BKV_ASSIGN_OR_RETURN(
      std::vector<uint8_t> sealed,
      key_transport::Seal(ke3.session_key, key_transport::Direction::kRegister,
                          account, wrapped));
  vault::v1::RegisterCommitRequest req3;
  req3.set_ke3(Str(ke3.ke3.Serialize()));
  req3.set_login_state(resp2.login_state());
  req3.set_sealed_key(std::string(sealed.begin(), sealed.end()));
  return Commit(req3, resp1.registration_id());
}

absl::StatusOr<Registration> VaultClient::Commit(
    const vault::v1::RegisterCommitRequest& req, uint64_t registration_id) {
  Impl& im = *impl_;
  vault::v1::RegisterCommitResponse resp;
  absl::Status s = im.Call("RegisterCommit", VaultCall::kFree,
                           &vault::v1::Vault::Stub::RegisterCommit, req, &resp);
  if (s.ok()) return Registration{resp.attempt_limit(), registration_id};
  const VaultError e = VaultError::From(s);
  if (e.vault_answered || e.kind != VaultErrorKind::kTransient) return s;
  // Settle it: repeat the same commit (it spends nothing), then ask. Not
  // cancellable: the app must learn which password is current.
  CancelScope settle(nullptr);
  absl::Status repeat =
      im.Call("RegisterCommit", VaultCall::kFree,
              &vault::v1::Vault::Stub::RegisterCommit, req, &resp);
  if (repeat.ok()) return Registration{resp.attempt_limit(), registration_id};
  return ResolveLostCommit(*this, s, repeat, registration_id);
}

absl::StatusOr<SecretBytes> VaultClient::Recover(const std::string& account,
                                                 const SecretBytes& password) {
  BKV_ASSIGN_OR_RETURN(Recovery r, RecoverWithProof(account, password));
  return std::move(r.backup_key);
}

absl::StatusOr<Recovery> VaultClient::RecoverWithProof(
    const std::string& account, const SecretBytes& password) {
  Impl& im = *impl_;
  BKV_RETURN_IF_ERROR(CheckedInfo().status());
  // Ask first: "not registered" and "locked" need no attempt (the vault
  // answers an unknown account's recovery like a wrong password).
  BKV_ASSIGN_OR_RETURN(VaultStatus status, Status());
  if (status.state == VaultStatus::State::kNone) return NotRegisteredError();
  if (status.state == VaultStatus::State::kLocked) return LockedError();
  // KE1 needs no KSF; the parameters come back with KE2.
  opaque::OpaqueClient starter(im.Config(), im.registration_ksf,
                               im.options.server_public_key);
  BKV_ASSIGN_OR_RETURN(auto ke1, starter.GenerateKE1(password.Clone()));
  vault::v1::RecoverStartRequest req1;
  req1.set_ke1(Str(ke1.ke1.Serialize()));
  req1.set_account(account);
  vault::v1::RecoverStartResponse resp1;
  BKV_RETURN_IF_ERROR(im.Call("RecoverStart", VaultCall::kCounted,
                              &vault::v1::Vault::Stub::RecoverStart, req1,
                              &resp1));
  absl::StatusOr<opaque::ClientLoginFinish> ke3 =
      im.FinishLogin(std::move(ke1.state), resp1);

  vault::v1::RecoverFinishRequest req2;
  req2.set_login_state(resp1.login_state());
  // A wrong password has no valid KE3; send a dummy anyway so the vault
  // closes this login now instead of when it expires.
  req2.set_ke3(ke3.ok() ? Str(ke3->ke3.Serialize()) : std::string(64, '\0'));
  vault::v1::RecoverFinishResponse resp2;
  absl::Status s =
      im.Call("RecoverFinish", VaultCall::kAfterCount,
              &vault::v1::Vault::Stub::RecoverFinish, req2, &resp2);
  if (const VaultError e = VaultError::From(s);
      !s.ok() && (!e.vault_answered || e.kind == VaultErrorKind::kExpired ||
                  e.kind == VaultErrorKind::kTransient)) {
    // The vault went away, could not finish, or the login expired, after
    // counting: say what that cost.
    return SpentAttemptError(s, resp1.attempts_remaining());
  }
  if (!ke3.ok()) {
    if (!s.ok()) return s;  // the vault's answer says how many attempts remain
    return ke3.status();
  }
  BKV_RETURN_IF_ERROR(s);
  BKV_ASSIGN_OR_RETURN(
      std::vector<uint8_t> wrapped,
      key_transport::Open(ke3->session_key, key_transport::Direction::kRecover,
                          account, Bytes(resp2.sealed_key())));
  BKV_ASSIGN_OR_RETURN(SecretBytes key, key_transport::UnwrapBackupKey(
                                            ke3->export_key, account, wrapped));
  return Recovery{std::move(key), resp2.proof(), resp1.attempts_remaining()};
}

absl::StatusOr<Registration> VaultClient::ChangePassword(
    const std::string& account, const SecretBytes& old_password,
    const SecretBytes& new_password) {
  BKV_ASSIGN_OR_RETURN(Recovery r, RecoverWithProof(account, old_password));
  return Register(account, new_password, r.backup_key, r.proof);
}

absl::StatusOr<VaultStatus> VaultClient::Status() {
  // A foreign vault's "active" would mislead: check it is the pinned one.
  BKV_RETURN_IF_ERROR(CheckedInfo().status());
  vault::v1::GetStatusResponse resp;
  BKV_RETURN_IF_ERROR(impl_->Call("GetStatus", VaultCall::kFree,
                                  &vault::v1::Vault::Stub::GetStatus,
                                  vault::v1::GetStatusRequest(), &resp));
  VaultStatus out{VaultStatus::State::kNone, resp.attempts_remaining(),
                  resp.attempt_limit(), resp.registration_id(),
                  static_cast<int64_t>(resp.reset_due_unix_ms())};
  if (resp.status() == vault::v1::RECORD_STATUS_ACTIVE) {
    out.state = VaultStatus::State::kActive;
  } else if (resp.status() == vault::v1::RECORD_STATUS_LOCKED) {
    out.state = VaultStatus::State::kLocked;
  }
  return out;
}

absl::Status VaultClient::Delete(const std::string& proof) {
  vault::v1::DeleteRequest req;
  req.set_proof(proof);
  vault::v1::DeleteResponse resp;
  return impl_->Call("Delete", VaultCall::kFree,
                     &vault::v1::Vault::Stub::Delete, req, &resp);
}

absl::StatusOr<int64_t> VaultClient::RequestReset() {
  vault::v1::RequestResetResponse resp;
  BKV_RETURN_IF_ERROR(impl_->Call("RequestReset", VaultCall::kFree,
                                  &vault::v1::Vault::Stub::RequestReset,
                                  vault::v1::RequestResetRequest(), &resp));
  return static_cast<int64_t>(resp.reset_due_unix_ms());
}

}  // namespace bkv::client
