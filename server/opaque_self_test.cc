#include "server/opaque_self_test.h"

#include <deque>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "crypto/hash.h"
#include "crypto/hex.h"
#include "crypto/opaque.h"
#include "crypto/status_macros.h"

namespace bkv::server {
namespace {

// RFC 9807 C.1.1, ristretto255, context "OPAQUE-POC", no identities.
constexpr char kOprfSeed[] =
    "f433d0227b0b9dd54f7c4422b600e764e47fb503f1f9a0f0a47c6606b054a7fdc65347f1a0"
    "8f277e22358bbabe26f823fca82c7848e9a75661f4ec5d5c1989ef";
constexpr char kPassword[] = "CorrectHorseBatteryStaple";
constexpr char kServerPrivateKey[] =
    "47451a85372f8b3537e249d7b54188091fb18edde78094b43e2ba42b5eb89f0d";
constexpr char kBlindRegistration[] =
    "76cfbfe758db884bebb33582331ba9f159720ca8784a2a070a265d9c2d6abe01";
constexpr char kEnvelopeNonce[] =
    "ac13171b2f17bc2c74997f0fce1e1f35bec6b91fe2e12dbd323d23ba7a38dfec";
constexpr char kBlindLogin[] =
    "6ecc102d2e7a7cf49617aad7bbe188556792d4acd60a1a8a8d2b65d4b0790308";
constexpr char kClientNonce[] =
    "da7e07376d6d6f034cfa9bb537d11b8c6b4238c334333d1f0aebb380cae6a6cc";
constexpr char kClientKeyshareSeed[] =
    "82850a697b42a505f5b68fcdafce8c31f0af2b581f063cf1091933541936304b";
constexpr char kMaskingNonce[] =
    "38fe59af0df2c79f57b8780278f5ae47355fe1f817119041951c80f612fdfc6d";
constexpr char kServerNonce[] =
    "71cd9960ecef2fe0d0f7494986fa3d8b2bb01963537e60efb13981e138e3d4a1";
constexpr char kServerKeyshareSeed[] =
    "05a4f54206eef1ba2f615bc0aa285cb22f26d1153b5b40a1e85ff80da12f982f";
constexpr char kSessionKey[] =
    "42afde6f5aca0cfa5c163763fbad55e73a41db6b41bc87b8e7b62214a8eedc6731fa3cb8"
    "57d657ab9b3764b89a84e91ebcb4785166fbb02cedfcbdfda215b96f";
constexpr char kExportKey[] =
    "1ef15b4fa99e8a852412450ab78713aad30d21fa6966c9b8c9fb3262a970dc62950d4dd4"
    "ed62598229b1b72794fc0335199d9f7fcc6eaedde92cc04870e63f16";

std::vector<uint8_t> H(const char* hex) { return *HexDecode(hex); }

class IdentityKsf final : public Ksf {
 public:
  absl::StatusOr<SecretBytes> Stretch(const SecretBytes& m) const override {
    return m.Clone();
  }
};

class Replay final : public RandomSource {
 public:
  explicit Replay(std::vector<const char*> hex)
      : values_(hex.begin(), hex.end()) {}
  void Bytes(std::span<uint8_t> out) const override {
    auto v = Next();
    std::copy_n(v.begin(), std::min(v.size(), out.size()), out.begin());
  }
  SecretBytes Scalar() const override { return SecretBytes::Copy(Next()); }

 private:
  std::vector<uint8_t> Next() const {
    if (values_.empty()) return std::vector<uint8_t>(32, 0);
    auto v = H(values_.front());
    values_.pop_front();
    return v;
  }
  mutable std::deque<const char*> values_;
};

absl::Status Fail(const char* what) {
  return absl::InternalError(
      absl::StrCat("OPAQUE self-test failed: ", what,
                   " differs from RFC 9807 C.1.1; refusing to serve"));
}

}  // namespace

absl::Status RunOpaqueSelfTest() {
  opaque::Config config;
  config.context = "OPAQUE-POC";
  IdentityKsf ksf;
  HmacSha512KeyedHash seed(SecretBytes::Copy(H(kOprfSeed)));
  BKV_ASSIGN_OR_RETURN(
      opaque::ServerKeyPair keys,
      opaque::ServerKeyPair::FromPrivateKey(H(kServerPrivateKey)));
  const std::vector<uint8_t> id = {'1', '2', '3', '4'};
  const SecretBytes password = SecretBytes::Copy(std::string_view(kPassword));

  Replay reg_rng({kBlindRegistration, kEnvelopeNonce});
  opaque::OpaqueClient reg_client(config, ksf, keys.public_key, reg_rng);
  Replay none({});
  opaque::OpaqueServer reg_server(config, seed, keys, none);
  BKV_ASSIGN_OR_RETURN(auto start,
                       reg_client.CreateRegistrationRequest(password.Clone()));
  BKV_ASSIGN_OR_RETURN(
      auto response, reg_server.CreateRegistrationResponse(start.request, id));
  BKV_ASSIGN_OR_RETURN(auto finish, reg_client.FinalizeRegistrationRequest(
                                        std::move(start.state), response));

  Replay client_rng({kBlindLogin, kClientNonce, kClientKeyshareSeed});
  Replay server_rng({kMaskingNonce, kServerNonce, kServerKeyshareSeed});
  opaque::OpaqueClient client(config, ksf, keys.public_key, client_rng);
  opaque::OpaqueServer server(config, seed, keys, server_rng);
  BKV_ASSIGN_OR_RETURN(auto ke1, client.GenerateKE1(password.Clone()));
  BKV_ASSIGN_OR_RETURN(auto ke2,
                       server.GenerateKE2(finish.record, id, ke1.ke1));
  auto ke3 = client.GenerateKE3(std::move(ke1.state), ke2.ke2.Serialize());
  if (!ke3.ok()) return Fail("the login");
  BKV_ASSIGN_OR_RETURN(SecretBytes session,
                       server.ServerFinish(std::move(ke2.state), ke3->ke3));
  if (HexEncode(session.Reveal()) != kSessionKey ||
      HexEncode(ke3->session_key.Reveal()) != kSessionKey) {
    return Fail("session_key");
  }
  if (HexEncode(ke3->export_key.Reveal()) != kExportKey) {
    return Fail("export_key");
  }
  return absl::OkStatus();
}

}  // namespace bkv::server
