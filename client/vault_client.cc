#include "client/vault_client.h"

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "bkv/vault/v1/vault.grpc.pb.h"
#include "crypto/hex.h"
#include "crypto/key_transport.h"
#include "crypto/ristretto255.h"
#include "crypto/status_macros.h"

namespace bkv::client {
namespace {

using vault::v1::ErrorDetail;

constexpr char kDetailTrailer[] = "bkv-error-detail-bin";
constexpr absl::string_view kDetailUrl =
    "type.googleapis.com/bkv.vault.v1.ErrorDetail";

template <size_t N>
std::string Str(const std::array<uint8_t, N>& a) {
  return {a.begin(), a.end()};
}
std::span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// grpc::Status -> absl::Status, the ErrorDetail trailer kept as a payload:
// the one place gRPC errors are converted on the client.
absl::Status FromGrpc(const grpc::Status& s, const grpc::ClientContext& ctx) {
  if (s.ok()) return absl::OkStatus();
  absl::Status out(static_cast<absl::StatusCode>(s.error_code()),
                   s.error_message());
  const auto& md = ctx.GetServerTrailingMetadata();
  if (auto it = md.find(kDetailTrailer); it != md.end()) {
    out.SetPayload(kDetailUrl, absl::Cord(std::string(it->second.data(),
                                                      it->second.size())));
  }
  return out;
}

bool WeakerThan(const Argon2idParams& p, const Argon2idParams& floor) {
  return p.iterations < floor.iterations || p.memory_kib < floor.memory_kib ||
         p.parallelism < floor.parallelism;
}

}  // namespace

VaultError VaultError::From(const absl::Status& status) {
  VaultError e{VaultErrorKind::kInternal, std::string(status.message())};
  if (auto payload = status.GetPayload(kDetailUrl)) {
    ErrorDetail d;
    if (d.ParseFromString(std::string(*payload))) {
      e.attempts_remaining = d.attempts_remaining();
      e.retry_after_ms = d.retry_after_ms();
      switch (d.reason()) {
        case ErrorDetail::REASON_INVALID_LOGIN:
          e.kind = VaultErrorKind::kInvalidPassword;
          return e;
        case ErrorDetail::REASON_LOCKED:
          e.kind = VaultErrorKind::kLocked;
          return e;
        case ErrorDetail::REASON_NOT_REGISTERED:
          e.kind = VaultErrorKind::kNotRegistered;
          return e;
        case ErrorDetail::REASON_RATE_LIMITED:
          e.kind = VaultErrorKind::kRateLimited;
          return e;
        case ErrorDetail::REASON_STATE_EXPIRED:
          e.kind = VaultErrorKind::kTransient;
          return e;
        default:
          break;
      }
    }
  }
  switch (status.code()) {
    case absl::StatusCode::kUnauthenticated:
      e.kind = VaultErrorKind::kUnauthenticated;
      break;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kAborted:
      e.kind = VaultErrorKind::kTransient;
      break;
    case absl::StatusCode::kResourceExhausted:
      e.kind = VaultErrorKind::kRateLimited;
      break;
    case absl::StatusCode::kInvalidArgument:
      e.kind = VaultErrorKind::kInvalidArgument;
      break;
    case absl::StatusCode::kPermissionDenied:
      // A client-side OPAQUE failure (wrong password, or a vault that is not
      // the pinned one) carries no vault detail.
      e.kind = VaultErrorKind::kInvalidPassword;
      break;
    default:
      break;
  }
  return e;
}

const char* VaultErrorKindName(VaultErrorKind kind) {
  switch (kind) {
    case VaultErrorKind::kInvalidPassword:
      return "invalid_password";
    case VaultErrorKind::kLocked:
      return "locked";
    case VaultErrorKind::kNotRegistered:
      return "not_registered";
    case VaultErrorKind::kRateLimited:
      return "rate_limited";
    case VaultErrorKind::kUnauthenticated:
      return "unauthenticated";
    case VaultErrorKind::kTransient:
      return "transient";
    case VaultErrorKind::kInvalidArgument:
      return "invalid_argument";
    case VaultErrorKind::kInternal:
      return "internal";
  }
  return "internal";
}

absl::StatusOr<opaque::Element> ParseServerPublicKey(const std::string& hex) {
  auto bytes = HexDecode(hex);
  if (!bytes.ok() || bytes->size() != 32) {
    return absl::InvalidArgumentError(
        "the vault public key must be 64 hex digits (bkv-vault hsm status "
        "prints it)");
  }
  return ristretto255::DeserializeElement(*bytes, "vault public key");
}

struct VaultClient::Impl {
  VaultOptions options;
  Argon2idKsf registration_ksf;
  std::unique_ptr<vault::v1::Vault::Stub> stub;
  // The proof from this client's last successful recovery: lets it replace
  // or delete the ACTIVE record (docs/protocol.md, "proof or delay").
  std::string proof = {};

  opaque::Config Config() const {
    opaque::Config c;
    c.context = options.opaque_context;
    c.server_identity = options.server_identity;
    c.client_identity = options.client_identity;
    return c;
  }

  std::unique_ptr<grpc::ClientContext> Context() const {
    auto ctx = std::make_unique<grpc::ClientContext>();
    if (options.account_token) {
      ctx->AddMetadata("authorization", "Bearer " + options.account_token());
    }
    ctx->set_deadline(std::chrono::system_clock::now() + options.timeout);
    return ctx;
  }
};

VaultClient::VaultClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
VaultClient::~VaultClient() = default;

absl::StatusOr<std::unique_ptr<VaultClient>> VaultClient::Create(
    VaultOptions options) {
  if (WeakerThan(options.ksf, options.min_ksf)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Argon2id parameters (t=", options.ksf.iterations,
        ", m=", options.ksf.memory_kib, " KiB, p=", options.ksf.parallelism,
        ") are below the configured minimum"));
  }
  BKV_ASSIGN_OR_RETURN(Argon2idKsf ksf, Argon2idKsf::Create(options.ksf));
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (options.tls) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options.tls_root_certs;
    creds = grpc::SslCredentials(ssl);
  } else {
    creds = grpc::InsecureChannelCredentials();
  }
  auto stub =
      vault::v1::Vault::NewStub(grpc::CreateChannel(options.address, creds));
  return std::unique_ptr<VaultClient>(new VaultClient(std::unique_ptr<Impl>(
      new Impl{std::move(options), std::move(ksf), std::move(stub)})));
}

absl::Status VaultClient::Register(const std::string& account,
                                   const SecretBytes& password,
                                   const SecretBytes& backup_key) {
  Impl& im = *impl_;
  opaque::OpaqueClient opaque(im.Config(), im.registration_ksf,
                              im.options.server_public_key);
  BKV_ASSIGN_OR_RETURN(auto start,
                       opaque.CreateRegistrationRequest(password.Clone()));
  vault::v1::RegisterStartRequest req1;
  req1.set_registration_request(Str(start.request.Serialize()));
  vault::v1::RegisterStartResponse resp1;
  {
    auto ctx = im.Context();
    BKV_RETURN_IF_ERROR(
        FromGrpc(im.stub->RegisterStart(ctx.get(), req1, &resp1), *ctx));
  }
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
  req2.set_proof(im.proof);
  vault::v1::RegisterFinishResponse resp2;
  {
    auto ctx = im.Context();
    BKV_RETURN_IF_ERROR(
        FromGrpc(im.stub->RegisterFinish(ctx.get(), req2, &resp2), *ctx));
  }
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
  vault::v1::RegisterCommitResponse resp3;
  auto ctx = im.Context();
  return FromGrpc(im.stub->RegisterCommit(ctx.get(), req3, &resp3), *ctx);
}

absl::StatusOr<SecretBytes> VaultClient::Recover(const std::string& account,
                                                 const SecretBytes& password) {
  Impl& im = *impl_;
  // Ask first: "not registered" and "locked" need no attempt (the vault
  // answers an unknown account's recovery like a wrong password).
  BKV_ASSIGN_OR_RETURN(VaultStatus status, Status());
  if (status.state == VaultStatus::State::kNone) {
    absl::Status s = absl::NotFoundError("no backup key is registered");
    ErrorDetail d;
    d.set_reason(ErrorDetail::REASON_NOT_REGISTERED);
    s.SetPayload(kDetailUrl, absl::Cord(d.SerializeAsString()));
    return s;
  }
  if (status.state == VaultStatus::State::kLocked) {
    absl::Status s = absl::FailedPreconditionError(
        "locked: every attempt was used; the backup key is destroyed");
    ErrorDetail d;
    d.set_reason(ErrorDetail::REASON_LOCKED);
    s.SetPayload(kDetailUrl, absl::Cord(d.SerializeAsString()));
    return s;
  }
  // KE1 needs no KSF; the parameters come back with KE2.
  opaque::OpaqueClient starter(im.Config(), im.registration_ksf,
                               im.options.server_public_key);
  BKV_ASSIGN_OR_RETURN(auto ke1, starter.GenerateKE1(password.Clone()));
  vault::v1::RecoverStartRequest req1;
  req1.set_ke1(Str(ke1.ke1.Serialize()));
  vault::v1::RecoverStartResponse resp1;
  {
    auto ctx = im.Context();
    BKV_RETURN_IF_ERROR(
        FromGrpc(im.stub->RecoverStart(ctx.get(), req1, &resp1), *ctx));
  }
  const Argon2idParams params{resp1.ksf().iterations(),
                              resp1.ksf().memory_kib(),
                              resp1.ksf().parallelism()};
  // Parameters beyond max_ksf (or invalid) are refused, but the login is
  // still closed below with a dummy KE3, like a wrong password.
  absl::StatusOr<opaque::ClientLoginFinish> ke3 = absl::InvalidArgumentError(
      "the vault sent Argon2id parameters outside this client's limits");
  if (!WeakerThan(im.options.max_ksf, params)) {
    auto ksf = Argon2idKsf::Create(params);
    if (ksf.ok()) {
      opaque::OpaqueClient finisher(im.Config(), *ksf,
                                    im.options.server_public_key);
      ke3 = finisher.GenerateKE3(std::move(ke1.state), Bytes(resp1.ke2()));
    }
  }

  vault::v1::RecoverFinishRequest req2;
  req2.set_login_state(resp1.login_state());
  // A wrong password has no valid KE3; send a dummy anyway so the vault
  // closes this login now instead of when it expires.
  req2.set_ke3(ke3.ok() ? Str(ke3->ke3.Serialize()) : std::string(64, '\0'));
  vault::v1::RecoverFinishResponse resp2;
  auto ctx = im.Context();
  absl::Status s =
      FromGrpc(im.stub->RecoverFinish(ctx.get(), req2, &resp2), *ctx);
  if (!ke3.ok()) {
    if (!s.ok()) return s;  // the vault's answer says how many attempts remain
    return ke3.status();
  }
  BKV_RETURN_IF_ERROR(s);
  im.proof = resp2.proof();
  BKV_ASSIGN_OR_RETURN(
      std::vector<uint8_t> wrapped,
      key_transport::Open(ke3->session_key, key_transport::Direction::kRecover,
                          account, Bytes(resp2.sealed_key())));
  return key_transport::UnwrapBackupKey(ke3->export_key, account, wrapped);
}

absl::StatusOr<VaultStatus> VaultClient::Status() {
  vault::v1::GetStatusResponse resp;
  auto ctx = impl_->Context();
  BKV_RETURN_IF_ERROR(FromGrpc(
      impl_->stub->GetStatus(ctx.get(), vault::v1::GetStatusRequest(), &resp),
      *ctx));
  VaultStatus out{VaultStatus::State::kNone, resp.attempts_remaining(),
                  resp.attempt_limit()};
  if (resp.status() == vault::v1::RECORD_STATUS_ACTIVE) {
    out.state = VaultStatus::State::kActive;
  } else if (resp.status() == vault::v1::RECORD_STATUS_LOCKED) {
    out.state = VaultStatus::State::kLocked;
  }
  return out;
}

absl::Status VaultClient::Delete() {
  vault::v1::DeleteRequest req;
  req.set_proof(impl_->proof);
  vault::v1::DeleteResponse resp;
  auto ctx = impl_->Context();
  return FromGrpc(impl_->stub->Delete(ctx.get(), req, &resp), *ctx);
}

}  // namespace bkv::client
