#include "crypto/opaque.h"

#include <sodium.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "crypto/hash.h"
#include "crypto/opaque_internal.h"
#include "crypto/oprf.h"
#include "crypto/status_macros.h"

namespace bkv::opaque {
namespace {

using Bytes = std::vector<uint8_t>;
using ristretto255::DeserializeElement;
using ristretto255::ScalarMult;

constexpr char kInvalidLogin[] =
    "invalid login: wrong password, or the response was altered";

// Reads fixed-size fields off a span in order; the caller checked the total.
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> in) : in_(in) {}
  template <size_t N>
  std::array<uint8_t, N> Take() {
    std::array<uint8_t, N> out;
    std::copy_n(in_.begin() + pos_, N, out.begin());
    pos_ += N;
    return out;
  }
  std::span<const uint8_t> TakeSpan(size_t n) {
    auto s = in_.subspan(pos_, n);
    pos_ += n;
    return s;
  }

 private:
  std::span<const uint8_t> in_;
  size_t pos_ = 0;
};

template <size_t N>
class Writer {
 public:
  Writer& Put(std::span<const uint8_t> b) {
    std::copy(b.begin(), b.end(), out_.begin() + pos_);
    pos_ += b.size();
    return *this;
  }
  std::array<uint8_t, N> Done() const { return out_; }

 private:
  std::array<uint8_t, N> out_{};
  size_t pos_ = 0;
};

absl::Status CheckSize(std::span<const uint8_t> bytes, size_t want,
                       absl::string_view what) {
  if (bytes.size() != want) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " must be ", want, " bytes, got ", bytes.size()));
  }
  return absl::OkStatus();
}

// resize + memcpy: GCC 12 misreports vector::insert on spans
// (-Wstringop-overflow false positive).
void Append(Bytes& out, std::span<const uint8_t> b) {
  const size_t n = out.size();
  out.resize(n + b.size());
  if (!b.empty()) std::memcpy(out.data() + n, b.data(), b.size());
}

void AppendU16Prefixed(Bytes& out, std::span<const uint8_t> b) {
  out.push_back(static_cast<uint8_t>(b.size() >> 8));
  out.push_back(static_cast<uint8_t>(b.size()));
  Append(out, b);
}

SecretBytes Expand(std::span<const uint8_t> prk,
                   std::initializer_list<std::span<const uint8_t>> info,
                   size_t len) {
  Bytes joined;
  for (auto p : info) Append(joined, p);
  return HkdfExpand(prk, joined, len);
}

// §6.4.2 Expand-Label with the "OPAQUE-" prefix.
SecretBytes ExpandLabel(std::span<const uint8_t> secret, std::string_view label,
                        std::span<const uint8_t> context, size_t length) {
  Bytes info;
  info.push_back(static_cast<uint8_t>(length >> 8));
  info.push_back(static_cast<uint8_t>(length));
  info.push_back(static_cast<uint8_t>(7 + label.size()));
  auto prefix = AsBytes("OPAQUE-");
  Append(info, prefix);
  Append(info, AsBytes(label));
  info.push_back(static_cast<uint8_t>(context.size()));
  Append(info, context);
  return HkdfExpand(secret, info, length);
}

// §4.1.2 CleartextCredentials, serialized, plus the identities chosen.
struct Credentials {
  Bytes serialized;
  Bytes client_identity;
  Bytes server_identity;
};

Credentials CreateCleartextCredentials(const Element& server_public_key,
                                       const Element& client_public_key,
                                       const Config& config) {
  Credentials c;
  if (config.server_identity) {
    auto id = AsBytes(*config.server_identity);
    c.server_identity.assign(id.begin(), id.end());
  } else {
    c.server_identity.assign(server_public_key.begin(),
                             server_public_key.end());
  }
  if (config.client_identity) {
    auto id = AsBytes(*config.client_identity);
    c.client_identity.assign(id.begin(), id.end());
  } else {
    c.client_identity.assign(client_public_key.begin(),
                             client_public_key.end());
  }
  c.serialized.assign(server_public_key.begin(), server_public_key.end());
  AppendU16Prefixed(c.serialized, c.server_identity);
  AppendU16Prefixed(c.serialized, c.client_identity);
  return c;
}

// §6.4.1 Preamble.
Bytes Preamble(const Config& config, const Credentials& creds,
               std::span<const uint8_t> ke1,
               std::span<const uint8_t> credential_response,
               std::span<const uint8_t> server_nonce,
               std::span<const uint8_t> server_public_keyshare) {
  Bytes p;
  p.reserve(9 + 6 + config.context.size() + creds.client_identity.size() +
            ke1.size() + creds.server_identity.size() +
            credential_response.size() + server_nonce.size() +
            server_public_keyshare.size());
  auto label = AsBytes("OPAQUEv1-");
  Append(p, label);
  AppendU16Prefixed(p, AsBytes(config.context));
  AppendU16Prefixed(p, creds.client_identity);
  Append(p, ke1);
  AppendU16Prefixed(p, creds.server_identity);
  Append(p, credential_response);
  Append(p, server_nonce);
  Append(p, server_public_keyshare);
  return p;
}

Mac ToMac(const SecretBytes& s) {
  Mac m;
  std::copy_n(s.Reveal().begin(), kNm, m.begin());
  return m;
}

}  // namespace

// Marks the one invalid-login error so callers test a type, not its text.
constexpr char kInvalidLoginUrl[] = "bkv.opaque/InvalidLogin";

absl::Status InvalidLoginError() {
  absl::Status s = absl::PermissionDeniedError(kInvalidLogin);
  s.SetPayload(kInvalidLoginUrl, absl::Cord("1"));
  return s;
}

bool IsInvalidLogin(const absl::Status& status) {
  return status.code() == absl::StatusCode::kPermissionDenied &&
         status.GetPayload(kInvalidLoginUrl).has_value();
}

// ------------------------------------------------------------ internal

namespace internal {

absl::StatusOr<SecretBytes> DeriveOprfKey(const KeyedHash& oprf_seed,
                                          std::span<const uint8_t> id) {
  Bytes info(id.begin(), id.end());
  auto label = AsBytes("OprfKey");
  Append(info, label);
  BKV_ASSIGN_OR_RETURN(SecretBytes seed, HkdfExpand(oprf_seed, info, kNok));
  return oprf::DeriveKeyPair(seed.Reveal(), AsBytes("OPAQUE-DeriveKeyPair"));
}

absl::StatusOr<DhKeyPair> DeriveDiffieHellmanKeyPair(
    std::span<const uint8_t> seed) {
  BKV_ASSIGN_OR_RETURN(
      SecretBytes sk,
      oprf::DeriveKeyPair(seed, AsBytes("OPAQUE-DeriveDiffieHellmanKeyPair")));
  BKV_ASSIGN_OR_RETURN(Element pk, ristretto255::ScalarMultBase(sk));
  return DhKeyPair{std::move(sk), pk};
}

absl::StatusOr<SecretBytes> RandomizedPassword(const SecretBytes& oprf_output,
                                               const Ksf& ksf) {
  BKV_ASSIGN_OR_RETURN(SecretBytes stretched, ksf.Stretch(oprf_output));
  SecretBytes ikm(oprf_output.size() + stretched.size());
  std::copy(oprf_output.Reveal().begin(), oprf_output.Reveal().end(),
            ikm.RevealMutable().begin());
  std::copy(stretched.Reveal().begin(), stretched.Reveal().end(),
            ikm.RevealMutable().begin() + oprf_output.size());
  return HkdfExtract({}, ikm.Reveal());
}

EnvelopeKeys DeriveEnvelopeKeys(const SecretBytes& randomized_password,
                                std::span<const uint8_t> envelope_nonce) {
  auto rp = randomized_password.Reveal();
  return EnvelopeKeys{
      Expand(rp, {envelope_nonce, AsBytes("AuthKey")}, kNh),
      Expand(rp, {envelope_nonce, AsBytes("ExportKey")}, kNh),
      Expand(rp, {envelope_nonce, AsBytes("PrivateKey")}, kNseed),
  };
}

std::vector<uint8_t> Preamble(const Config& config,
                              const Element& server_public_key,
                              const Element& client_public_key,
                              std::span<const uint8_t> ke1,
                              std::span<const uint8_t> ke2) {
  Credentials creds =
      CreateCleartextCredentials(server_public_key, client_public_key, config);
  return opaque::Preamble(config, creds, ke1, ke2.first(192),
                          ke2.subspan(192, kNn), ke2.subspan(224, 32));
}

AkeKeys DeriveKeys(std::span<const uint8_t> ikm,
                   std::span<const uint8_t> preamble) {
  SecretBytes prk = HkdfExtract({}, ikm);
  Sha512Digest transcript = Sha512({preamble});
  AkeKeys k;
  k.handshake_secret =
      ExpandLabel(prk.Reveal(), "HandshakeSecret", transcript, kNx);
  k.session_key = ExpandLabel(prk.Reveal(), "SessionKey", transcript, kNx);
  k.km2 = ExpandLabel(k.handshake_secret.Reveal(), "ServerMAC", {}, kNh);
  k.km3 = ExpandLabel(k.handshake_secret.Reveal(), "ClientMAC", {}, kNh);
  return k;
}

}  // namespace internal

// ------------------------------------------------------------ messages

absl::StatusOr<RegistrationRequest> RegistrationRequest::Parse(
    std::span<const uint8_t> bytes) {
  BKV_RETURN_IF_ERROR(
      CheckSize(bytes, kRegistrationRequestSize, "registration request"));
  BKV_ASSIGN_OR_RETURN(
      Element e,
      DeserializeElement(bytes, "registration request blinded_message"));
  return RegistrationRequest{e};
}

std::array<uint8_t, kRegistrationRequestSize> RegistrationRequest::Serialize()
    const {
  return blinded_message;
}

absl::StatusOr<RegistrationResponse> RegistrationResponse::Parse(
    std::span<const uint8_t> bytes) {
  BKV_RETURN_IF_ERROR(
      CheckSize(bytes, kRegistrationResponseSize, "registration response"));
  BKV_ASSIGN_OR_RETURN(
      Element evaluated,
      DeserializeElement(bytes.first(32),
                         "registration response evaluated_message"));
  BKV_ASSIGN_OR_RETURN(
      Element server_pk,
      DeserializeElement(bytes.subspan(32),
                         "registration response server_public_key"));
  return RegistrationResponse{evaluated, server_pk};
}

std::array<uint8_t, kRegistrationResponseSize> RegistrationResponse::Serialize()
    const {
  return Writer<kRegistrationResponseSize>()
      .Put(evaluated_message)
      .Put(server_public_key)
      .Done();
}

absl::StatusOr<RegistrationRecord> RegistrationRecord::Parse(
    std::span<const uint8_t> bytes) {
  BKV_RETURN_IF_ERROR(
      CheckSize(bytes, kRegistrationRecordSize, "registration record"));
  Reader r(bytes);
  BKV_ASSIGN_OR_RETURN(
      Element client_pk,
      DeserializeElement(r.TakeSpan(32),
                         "registration record client_public_key"));
  RegistrationRecord rec;
  rec.client_public_key = client_pk;
  rec.masking_key = r.Take<kNh>();
  rec.envelope = r.Take<kEnvelopeSize>();
  return rec;
}

std::array<uint8_t, kRegistrationRecordSize> RegistrationRecord::Serialize()
    const {
  return Writer<kRegistrationRecordSize>()
      .Put(client_public_key)
      .Put(masking_key)
      .Put(envelope)
      .Done();
}

absl::StatusOr<KE1> KE1::Parse(std::span<const uint8_t> bytes) {
  BKV_RETURN_IF_ERROR(CheckSize(bytes, kKe1Size, "KE1"));
  Reader r(bytes);
  KE1 ke1;
  BKV_ASSIGN_OR_RETURN(
      ke1.blinded_message,
      DeserializeElement(r.TakeSpan(32), "KE1 blinded_message"));
  ke1.client_nonce = r.Take<kNn>();
  BKV_ASSIGN_OR_RETURN(
      ke1.client_public_keyshare,
      DeserializeElement(r.TakeSpan(32), "KE1 client_public_keyshare"));
  return ke1;
}

std::array<uint8_t, kKe1Size> KE1::Serialize() const {
  return Writer<kKe1Size>()
      .Put(blinded_message)
      .Put(client_nonce)
      .Put(client_public_keyshare)
      .Done();
}

absl::StatusOr<KE2> KE2::Parse(std::span<const uint8_t> bytes) {
  BKV_RETURN_IF_ERROR(CheckSize(bytes, kKe2Size, "KE2"));
  Reader r(bytes);
  KE2 ke2;
  BKV_ASSIGN_OR_RETURN(
      ke2.evaluated_message,
      DeserializeElement(r.TakeSpan(32), "KE2 evaluated_message"));
  ke2.masking_nonce = r.Take<kNn>();
  ke2.masked_response = r.Take<kNpk + kEnvelopeSize>();
  ke2.server_nonce = r.Take<kNn>();
  BKV_ASSIGN_OR_RETURN(
      ke2.server_public_keyshare,
      DeserializeElement(r.TakeSpan(32), "KE2 server_public_keyshare"));
  ke2.server_mac = r.Take<kNm>();
  return ke2;
}

std::array<uint8_t, kKe2Size> KE2::Serialize() const {
  return Writer<kKe2Size>()
      .Put(evaluated_message)
      .Put(masking_nonce)
      .Put(masked_response)
      .Put(server_nonce)
      .Put(server_public_keyshare)
      .Put(server_mac)
      .Done();
}

absl::StatusOr<KE3> KE3::Parse(std::span<const uint8_t> bytes) {
  BKV_RETURN_IF_ERROR(CheckSize(bytes, kKe3Size, "KE3"));
  return KE3{Reader(bytes).Take<kNm>()};
}

std::array<uint8_t, kKe3Size> KE3::Serialize() const { return client_mac; }

// ------------------------------------------------------------ client

namespace {

// §4.1.2 Store: the record and export key for one server key.
absl::StatusOr<ClientRegistrationFinish> Store(
    const Config& config, const SecretBytes& rwd, const Nonce& envelope_nonce,
    const Element& server_public_key) {
  SecretBytes masking_key = Expand(rwd.Reveal(), {AsBytes("MaskingKey")}, kNh);
  internal::EnvelopeKeys keys =
      internal::DeriveEnvelopeKeys(rwd, envelope_nonce);
  BKV_ASSIGN_OR_RETURN(
      internal::DhKeyPair client,
      internal::DeriveDiffieHellmanKeyPair(keys.seed.Reveal()));
  Credentials creds =
      CreateCleartextCredentials(server_public_key, client.public_key, config);
  SecretBytes auth_tag =
      HmacSha512(keys.auth_key.Reveal(), {envelope_nonce, creds.serialized});

  ClientRegistrationFinish out;
  out.record.client_public_key = client.public_key;
  std::copy_n(masking_key.Reveal().begin(), kNh,
              out.record.masking_key.begin());
  std::copy(envelope_nonce.begin(), envelope_nonce.end(),
            out.record.envelope.begin());
  std::copy_n(auth_tag.Reveal().begin(), kNm,
              out.record.envelope.begin() + kNn);
  out.export_key = std::move(keys.export_key);
  return out;
}

// §6.4.4 from the randomized password on: RecoverCredentials' unmasking,
// §4.1.3 Recover, AuthClientFinalize. Every failure is InvalidLoginError().
absl::StatusOr<ClientLoginFinish> FinishLogin(
    const Config& config, const std::optional<Element>& pinned,
    const SecretBytes& rwd, const SecretBytes& client_secret,
    std::span<const uint8_t> ke1, const KE2& ke2) {
  SecretBytes masking_key = Expand(rwd.Reveal(), {AsBytes("MaskingKey")}, kNh);
  SecretBytes pad =
      Expand(masking_key.Reveal(),
             {ke2.masking_nonce, AsBytes("CredentialResponsePad")},
             kNpk + kEnvelopeSize);
  SecretBytes unmasked(kNpk + kEnvelopeSize);
  for (size_t i = 0; i < unmasked.size(); ++i) {
    unmasked.RevealMutable()[i] = pad.Reveal()[i] ^ ke2.masked_response[i];
  }
  auto server_pk =
      DeserializeElement(unmasked.Reveal().first(kNpk), "server_public_key");
  if (!server_pk.ok()) return InvalidLoginError();
  auto envelope = unmasked.Reveal().subspan(kNpk);
  auto envelope_nonce = envelope.first(kNn);
  auto auth_tag = envelope.subspan(kNn);

  // §4.1.3 Recover.
  internal::EnvelopeKeys keys =
      internal::DeriveEnvelopeKeys(rwd, envelope_nonce);
  auto client = internal::DeriveDiffieHellmanKeyPair(keys.seed.Reveal());
  if (!client.ok()) return InvalidLoginError();
  Credentials creds =
      CreateCleartextCredentials(*server_pk, client->public_key, config);
  SecretBytes expected_tag =
      HmacSha512(keys.auth_key.Reveal(), {envelope_nonce, creds.serialized});
  // No early return between checks: all of them run, then one decision.
  bool ok = ConstantTimeEquals(expected_tag.Reveal(), auth_tag);
  if (pinned) {
    ok &= ConstantTimeEquals(*pinned, *server_pk);
  }

  // §6.4.4 AuthClientFinalize.
  auto dh1 = ScalarMult(client_secret, ke2.server_public_keyshare);
  auto dh2 = ScalarMult(client_secret, *server_pk);
  auto dh3 = ScalarMult(client->private_key, ke2.server_public_keyshare);
  if (!dh1.ok() || !dh2.ok() || !dh3.ok()) return InvalidLoginError();
  SecretBytes ikm(3 * ristretto255::kElementSize);
  auto w = ikm.RevealMutable();
  std::copy(dh1->begin(), dh1->end(), w.begin());
  std::copy(dh2->begin(), dh2->end(), w.begin() + 32);
  std::copy(dh3->begin(), dh3->end(), w.begin() + 64);
  sodium_memzero(dh1->data(), dh1->size());
  sodium_memzero(dh2->data(), dh2->size());
  sodium_memzero(dh3->data(), dh3->size());
  auto ke2_serialized = ke2.Serialize();
  Bytes preamble = Preamble(config, creds, ke1,
                            std::span<const uint8_t>(ke2_serialized).first(192),
                            ke2.server_nonce, ke2.server_public_keyshare);
  internal::AkeKeys ak = internal::DeriveKeys(ikm.Reveal(), preamble);
  Sha512Digest preamble_hash = Sha512({preamble});
  SecretBytes expected_server_mac =
      HmacSha512(ak.km2.Reveal(), {preamble_hash});
  ok &= ConstantTimeEquals(expected_server_mac.Reveal(), ke2.server_mac);
  if (!ok) return InvalidLoginError();

  Sha512Digest finished = Sha512({preamble, expected_server_mac.Reveal()});
  SecretBytes client_mac = HmacSha512(ak.km3.Reveal(), {finished});
  ClientLoginFinish out;
  out.ke3.client_mac = ToMac(client_mac);
  out.session_key = std::move(ak.session_key);
  out.export_key = std::move(keys.export_key);
  out.server_public_key = *server_pk;
  return out;
}

}  // namespace

OpaqueClient::OpaqueClient(Config config, const Ksf& ksf,
                           std::optional<Element> pinned_server_public_key,
                           const RandomSource& rng)
    : config_(std::move(config)),
      ksf_(&ksf),
      pinned_server_public_key_(pinned_server_public_key),
      rng_(&rng) {}

absl::StatusOr<ClientRegistrationStart> OpaqueClient::CreateRegistrationRequest(
    SecretBytes password) const {
  ClientRegistrationState state;
  state.blind_ = rng_->Scalar();
  BKV_ASSIGN_OR_RETURN(Element blinded,
                       oprf::Blind(password.Reveal(), state.blind_));
  state.password_ = std::move(password);
  return ClientRegistrationStart{RegistrationRequest{blinded},
                                 std::move(state)};
}

absl::StatusOr<ClientRegistrationFinish>
OpaqueClient::FinalizeRegistrationRequest(
    ClientRegistrationState&& state,
    const RegistrationResponse& response) const {
  ClientRegistrationState s = std::move(state);  // consumed, whatever happens
  if (s.blind_.empty()) {
    return absl::FailedPreconditionError(
        "registration state already used: start a new registration");
  }
  if (pinned_server_public_key_ &&
      !ConstantTimeEquals(*pinned_server_public_key_,
                          response.server_public_key)) {
    return absl::PermissionDeniedError(
        "the vault's public key differs from the pinned key: refusing to "
        "register");
  }
  BKV_ASSIGN_OR_RETURN(SecretBytes oprf_output,
                       oprf::Finalize(s.password_.Reveal(), s.blind_,
                                      response.evaluated_message));
  BKV_ASSIGN_OR_RETURN(SecretBytes rwd,
                       internal::RandomizedPassword(oprf_output, *ksf_));

  // §4.1.2 Store.
  Nonce envelope_nonce;
  rng_->Bytes(envelope_nonce);
  return Store(config_, rwd, envelope_nonce, response.server_public_key);
}

absl::StatusOr<ClientLoginStart> OpaqueClient::GenerateKE1(
    SecretBytes password) const {
  ClientLoginState state;
  state.blind_ = rng_->Scalar();
  KE1 ke1;
  BKV_ASSIGN_OR_RETURN(ke1.blinded_message,
                       oprf::Blind(password.Reveal(), state.blind_));
  rng_->Bytes(ke1.client_nonce);
  SecretBytes keyshare_seed(kNseed);
  rng_->Bytes(keyshare_seed.RevealMutable());
  BKV_ASSIGN_OR_RETURN(
      internal::DhKeyPair keyshare,
      internal::DeriveDiffieHellmanKeyPair(keyshare_seed.Reveal()));
  ke1.client_public_keyshare = keyshare.public_key;
  state.client_secret_ = std::move(keyshare.private_key);
  state.password_ = std::move(password);
  state.ke1_ = ke1.Serialize();
  return ClientLoginStart{ke1, std::move(state)};
}

absl::StatusOr<ClientLoginFinish> OpaqueClient::GenerateKE3(
    ClientLoginState&& state, std::span<const uint8_t> ke2_bytes) const {
  ClientLoginState s = std::move(state);  // consumed, whatever happens
  if (s.blind_.empty()) {
    return absl::FailedPreconditionError(
        "login state already used: start a new login");
  }
  // Every failure below is the same InvalidLoginError(): a malformed KE2, a
  // wrong password and a forged server must be indistinguishable.
  auto ke2_or = KE2::Parse(ke2_bytes);
  if (!ke2_or.ok()) return InvalidLoginError();
  const KE2& ke2 = *ke2_or;

  // §6.4.4 RecoverCredentials.
  auto oprf_output =
      oprf::Finalize(s.password_.Reveal(), s.blind_, ke2.evaluated_message);
  if (!oprf_output.ok()) return InvalidLoginError();
  BKV_ASSIGN_OR_RETURN(SecretBytes rwd,
                       internal::RandomizedPassword(*oprf_output, *ksf_));
  return FinishLogin(config_, pinned_server_public_key_, rwd, s.client_secret_,
                     s.ke1_, ke2);
}

// ------------------------------------------------------------ threshold

absl::StatusOr<ThresholdRegistration> OpaqueClient::RegisterWithKey(
    SecretBytes password, const SecretBytes& oprf_key,
    std::span<const Element> realm_public_keys) const {
  if (realm_public_keys.empty()) {
    return absl::InvalidArgumentError("no realm keys to register with");
  }
  // The client holds the key, so it evaluates unblinded (blind = 1).
  const SecretBytes one = ristretto255::SmallScalar(1);
  BKV_ASSIGN_OR_RETURN(Element input, oprf::Blind(password.Reveal(), one));
  BKV_ASSIGN_OR_RETURN(Element evaluated, oprf::BlindEvaluate(oprf_key, input));
  BKV_ASSIGN_OR_RETURN(SecretBytes oprf_output,
                       oprf::Finalize(password.Reveal(), one, evaluated));
  BKV_ASSIGN_OR_RETURN(SecretBytes rwd,
                       internal::RandomizedPassword(oprf_output, *ksf_));
  Nonce envelope_nonce;
  rng_->Bytes(envelope_nonce);
  ThresholdRegistration out;
  for (const Element& server_public_key : realm_public_keys) {
    BKV_ASSIGN_OR_RETURN(
        ClientRegistrationFinish one_realm,
        Store(config_, rwd, envelope_nonce, server_public_key));
    out.records.push_back(one_realm.record);
    out.export_key = std::move(one_realm.export_key);  // equal for all
  }
  return out;
}

absl::StatusOr<ThresholdLoginStart> OpaqueClient::GenerateThresholdKE1(
    SecretBytes password, size_t realms) const {
  ThresholdLoginStart out{{}, ThresholdLoginState()};
  ThresholdLoginState& state = out.state;
  for (size_t i = 0; i < realms; ++i) {
    // Each realm gets its own nonce and key share; GenerateKE1 draws the
    // blind first, so only the first realm's is kept and reused.
    BKV_ASSIGN_OR_RETURN(ClientLoginStart one, GenerateKE1(password.Clone()));
    if (i == 0) {
      state.blind_ = std::move(one.state.blind_);
    } else {
      BKV_ASSIGN_OR_RETURN(one.ke1.blinded_message,
                           oprf::Blind(password.Reveal(), state.blind_));
    }
    state.client_secrets_.push_back(std::move(one.state.client_secret_));
    state.ke1s_.push_back(one.ke1.Serialize());
    out.ke1s.push_back(one.ke1);
  }
  state.password_ = std::move(password);
  return out;
}

absl::StatusOr<SecretBytes> OpaqueClient::ThresholdRandomizedPassword(
    const ThresholdLoginState& state, const Element& combined) const {
  auto oprf_output =
      oprf::Finalize(state.password_.Reveal(), state.blind_, combined);
  if (!oprf_output.ok()) return InvalidLoginError();
  return internal::RandomizedPassword(*oprf_output, *ksf_);
}

absl::StatusOr<ClientLoginFinish> OpaqueClient::FinishThresholdLogin(
    const ThresholdLoginState& state, size_t realm,
    const SecretBytes& randomized_password, const Element& realm_public_key,
    std::span<const uint8_t> ke2_bytes) const {
  if (realm >= state.ke1s_.size()) {
    return absl::InvalidArgumentError("no KE1 was made for that realm");
  }
  auto ke2 = KE2::Parse(ke2_bytes);
  if (!ke2.ok()) return InvalidLoginError();
  return FinishLogin(config_, realm_public_key, randomized_password,
                     state.client_secrets_[realm], state.ke1s_[realm], *ke2);
}

// ------------------------------------------------------------ server

absl::StatusOr<ServerKeyPair> ServerKeyPair::FromPrivateKey(
    std::span<const uint8_t> private_key) {
  BKV_ASSIGN_OR_RETURN(SecretBytes sk, ristretto255::DeserializeScalar(
                                           private_key, "server private key"));
  ServerKeyPair kp;
  kp.private_key = SecretBytes::Locked(sk.size());
  std::copy(sk.Reveal().begin(), sk.Reveal().end(),
            kp.private_key.RevealMutable().begin());
  BKV_ASSIGN_OR_RETURN(kp.public_key,
                       ristretto255::ScalarMultBase(kp.private_key));
  return kp;
}

ServerKeyPair ServerKeyPair::Generate() {
  SecretBytes sk = SystemRandom().Scalar();
  auto kp = FromPrivateKey(sk.Reveal());
  if (!kp.ok()) std::abort();  // a random non-zero scalar is always valid
  return *std::move(kp);
}

SecretBytes ServerLoginState::Export() && {
  SecretBytes out(kServerLoginStateSize);
  std::copy(expected_client_mac_.Reveal().begin(),
            expected_client_mac_.Reveal().end(), out.RevealMutable().begin());
  std::copy(session_key_.Reveal().begin(), session_key_.Reveal().end(),
            out.RevealMutable().begin() + kNm);
  expected_client_mac_ = SecretBytes();
  session_key_ = SecretBytes();
  return out;
}

absl::StatusOr<ServerLoginState> ServerLoginState::Import(
    const SecretBytes& bytes) {
  BKV_RETURN_IF_ERROR(
      CheckSize(bytes.Reveal(), kServerLoginStateSize, "server login state"));
  ServerLoginState s;
  s.expected_client_mac_ = SecretBytes::Copy(bytes.Reveal().first(kNm));
  s.session_key_ = SecretBytes::Copy(bytes.Reveal().subspan(kNm));
  return s;
}

OpaqueServer::OpaqueServer(Config config, const KeyedHash& oprf_seed,
                           const ServerKeyPair& keys, const RandomSource& rng)
    : config_(std::move(config)),
      oprf_seed_(&oprf_seed),
      keys_(&keys),
      rng_(&rng) {}

absl::StatusOr<RegistrationResponse> OpaqueServer::CreateRegistrationResponse(
    const RegistrationRequest& request,
    std::span<const uint8_t> credential_identifier) const {
  BKV_ASSIGN_OR_RETURN(
      SecretBytes oprf_key,
      internal::DeriveOprfKey(*oprf_seed_, credential_identifier));
  BKV_ASSIGN_OR_RETURN(Element evaluated,
                       oprf::BlindEvaluate(oprf_key, request.blinded_message));
  return RegistrationResponse{evaluated, keys_->public_key};
}

absl::StatusOr<ServerLoginStart> OpaqueServer::GenerateKE2(
    const RegistrationRecord& record,
    std::span<const uint8_t> credential_identifier, const KE1& ke1) const {
  BKV_ASSIGN_OR_RETURN(
      SecretBytes oprf_key,
      internal::DeriveOprfKey(*oprf_seed_, credential_identifier));
  return GenerateKE2WithOprfKey(record, oprf_key, ke1);
}

absl::StatusOr<ServerLoginStart> OpaqueServer::GenerateKE2WithOprfKey(
    const RegistrationRecord& record, const SecretBytes& oprf_key,
    const KE1& ke1) const {
  // §6.3.2.2 CreateCredentialResponse.
  KE2 ke2;
  BKV_ASSIGN_OR_RETURN(ke2.evaluated_message,
                       oprf::BlindEvaluate(oprf_key, ke1.blinded_message));
  rng_->Bytes(ke2.masking_nonce);
  SecretBytes pad = Expand(
      record.masking_key, {ke2.masking_nonce, AsBytes("CredentialResponsePad")},
      kNpk + kEnvelopeSize);
  for (size_t i = 0; i < kNpk; ++i) {
    ke2.masked_response[i] = pad.Reveal()[i] ^ keys_->public_key[i];
  }
  for (size_t i = 0; i < kEnvelopeSize; ++i) {
    ke2.masked_response[kNpk + i] = pad.Reveal()[kNpk + i] ^ record.envelope[i];
  }

  // §6.4.3 AuthServerRespond.
  rng_->Bytes(ke2.server_nonce);
  SecretBytes keyshare_seed(kNseed);
  rng_->Bytes(keyshare_seed.RevealMutable());
  BKV_ASSIGN_OR_RETURN(
      internal::DhKeyPair keyshare,
      internal::DeriveDiffieHellmanKeyPair(keyshare_seed.Reveal()));
  ke2.server_public_keyshare = keyshare.public_key;

  Credentials creds = CreateCleartextCredentials(
      keys_->public_key, record.client_public_key, config_);
  auto ke2_serialized = ke2.Serialize();
  Bytes preamble = Preamble(config_, creds, ke1.Serialize(),
                            std::span<const uint8_t>(ke2_serialized).first(192),
                            ke2.server_nonce, ke2.server_public_keyshare);
  BKV_ASSIGN_OR_RETURN(Element dh1, ScalarMult(keyshare.private_key,
                                               ke1.client_public_keyshare));
  BKV_ASSIGN_OR_RETURN(
      Element dh2, ScalarMult(keys_->private_key, ke1.client_public_keyshare));
  BKV_ASSIGN_OR_RETURN(
      Element dh3, ScalarMult(keyshare.private_key, record.client_public_key));
  SecretBytes ikm(3 * ristretto255::kElementSize);
  auto w = ikm.RevealMutable();
  std::copy(dh1.begin(), dh1.end(), w.begin());
  std::copy(dh2.begin(), dh2.end(), w.begin() + 32);
  std::copy(dh3.begin(), dh3.end(), w.begin() + 64);
  sodium_memzero(dh1.data(), dh1.size());
  sodium_memzero(dh2.data(), dh2.size());
  sodium_memzero(dh3.data(), dh3.size());

  internal::AkeKeys ak = internal::DeriveKeys(ikm.Reveal(), preamble);
  Sha512Digest preamble_hash = Sha512({preamble});
  SecretBytes server_mac = HmacSha512(ak.km2.Reveal(), {preamble_hash});
  ke2.server_mac = ToMac(server_mac);
  Sha512Digest finished = Sha512({preamble, server_mac.Reveal()});

  ServerLoginState state;
  state.expected_client_mac_ = HmacSha512(ak.km3.Reveal(), {finished});
  state.session_key_ = std::move(ak.session_key);
  return ServerLoginStart{ke2, std::move(state)};
}

absl::StatusOr<RegistrationRecord> OpaqueServer::FakeRecord(
    std::span<const uint8_t> credential_identifier) const {
  // Derived from the seed so that probing one unknown identifier twice shows
  // the same behaviour as probing a real one twice.
  Bytes info(credential_identifier.begin(), credential_identifier.end());
  auto label = AsBytes("bkv-FakeRecord");
  Append(info, label);
  BKV_ASSIGN_OR_RETURN(SecretBytes material,
                       HkdfExpand(*oprf_seed_, info, kNseed + kNh));
  BKV_ASSIGN_OR_RETURN(
      internal::DhKeyPair client,
      internal::DeriveDiffieHellmanKeyPair(material.Reveal().first(kNseed)));
  RegistrationRecord rec;
  rec.client_public_key = client.public_key;
  std::copy_n(material.Reveal().begin() + kNseed, kNh, rec.masking_key.begin());
  rec.envelope.fill(0);
  return rec;
}

absl::StatusOr<ServerLoginStart> OpaqueServer::GenerateFakeKE2(
    std::span<const uint8_t> credential_identifier, const KE1& ke1) const {
  BKV_ASSIGN_OR_RETURN(RegistrationRecord fake,
                       FakeRecord(credential_identifier));
  return GenerateKE2(fake, credential_identifier, ke1);
}

absl::StatusOr<SecretBytes> OpaqueServer::ServerFinish(ServerLoginState&& state,
                                                       const KE3& ke3) const {
  ServerLoginState s = std::move(state);  // consumed, whatever happens
  if (s.expected_client_mac_.empty()) {
    return absl::FailedPreconditionError(
        "server login state already used: the client must start again");
  }
  if (!ConstantTimeEquals(s.expected_client_mac_.Reveal(), ke3.client_mac)) {
    return InvalidLoginError();
  }
  return std::move(s.session_key_);
}

}  // namespace bkv::opaque
