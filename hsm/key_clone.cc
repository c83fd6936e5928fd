#include "hsm/key_clone.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/sha.h>

#include <algorithm>
#include <memory>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "crypto/hex.h"
#include "crypto/status_macros.h"
#include "hsm/key_ceremony.h"
#include "hsm/key_labels.h"
#include "hsm/pkcs11_status.h"
#include "hsm/vault_key_specs.h"

namespace bkv::hsm {
namespace {

using Session = Pkcs11Hsm::Session;
template <typename T, void (*F)(T*)>
struct Deleter {
  void operator()(T* p) const { F(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using Bn = std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>>;
using Bio = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;

constexpr absl::string_view kExportMagic = "bkv-hsm-export v1";

absl::Status OpenSslError(absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("transport public key: ", what));
}

absl::StatusOr<Pkey> ToEvp(const TransportPublicKey& key) {
  Bn n(BN_bin2bn(key.modulus.data(), key.modulus.size(), nullptr));
  Bn e(BN_bin2bn(key.exponent.data(), key.exponent.size(), nullptr));
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  OSSL_PARAM* params = nullptr;
  if (n && e && bld != nullptr &&
      OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n.get()) == 1 &&
      OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e.get()) == 1) {
    params = OSSL_PARAM_BLD_to_param(bld);
  }
  OSSL_PARAM_BLD_free(bld);
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr);
  EVP_PKEY* pkey = nullptr;
  const bool ok =
      params != nullptr && ctx != nullptr && EVP_PKEY_fromdata_init(ctx) == 1 &&
      EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) == 1;
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  if (!ok) return OpenSslError("not a valid RSA public key");
  return Pkey(pkey);
}

absl::StatusOr<std::vector<uint8_t>> BnParam(const EVP_PKEY* pkey,
                                             const char* name) {
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(pkey, name, &raw) != 1) {
    return OpenSslError("not an RSA public key");
  }
  Bn bn(raw);
  std::vector<uint8_t> out(BN_num_bytes(bn.get()));
  BN_bn2bin(bn.get(), out.data());
  return out;
}

}  // namespace

absl::StatusOr<std::string> TransportPublicKey::ToPem() const {
  BKV_ASSIGN_OR_RETURN(Pkey pkey, ToEvp(*this));
  Bio bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), pkey.get()) != 1) {
    return absl::InternalError("PEM_write_bio_PUBKEY failed");
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, len);
}

absl::StatusOr<TransportPublicKey> TransportPublicKey::FromPem(
    absl::string_view pem) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  Pkey pkey(bio ? PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr)
                : nullptr);
  if (!pkey) return OpenSslError("no PEM \"PUBLIC KEY\" block in the file");
  if (!EVP_PKEY_is_a(pkey.get(), "RSA") ||
      EVP_PKEY_get_bits(pkey.get()) != static_cast<int>(kTransportKeyBits)) {
    return OpenSslError(absl::StrCat(
        "not an RSA-", kTransportKeyBits,
        " key; use the file `bkv-vault hsm export-request` wrote"));
  }
  TransportPublicKey key;
  BKV_ASSIGN_OR_RETURN(key.modulus, BnParam(pkey.get(), OSSL_PKEY_PARAM_RSA_N));
  BKV_ASSIGN_OR_RETURN(key.exponent,
                       BnParam(pkey.get(), OSSL_PKEY_PARAM_RSA_E));
  return key;
}

absl::StatusOr<std::string> TransportPublicKey::FingerprintHex() const {
  BKV_ASSIGN_OR_RETURN(Pkey pkey, ToEvp(*this));
  unsigned char* der = nullptr;
  int len = i2d_PUBKEY(pkey.get(), &der);
  if (len <= 0) return absl::InternalError("i2d_PUBKEY failed");
  uint8_t digest[SHA256_DIGEST_LENGTH];
  SHA256(der, len, digest);
  OPENSSL_free(der);
  return HexEncode(digest);
}

namespace {

absl::StatusOr<std::vector<uint8_t>> StripLeadingZeros(
    absl::StatusOr<std::vector<uint8_t>> v) {
  if (!v.ok()) return v;
  auto first = std::find_if(v->begin(), v->end(), [](uint8_t b) { return b; });
  return std::vector<uint8_t>(first, v->end());
}

// The RSA public key stored in `object`.
absl::StatusOr<TransportPublicKey> ReadPublicKey(Session& session,
                                                 CK_OBJECT_HANDLE object) {
  TransportPublicKey key;
  BKV_ASSIGN_OR_RETURN(key.modulus, StripLeadingZeros(session.GetAttribute(
                                        object, CKA_MODULUS)));
  BKV_ASSIGN_OR_RETURN(key.exponent, StripLeadingZeros(session.GetAttribute(
                                         object, CKA_PUBLIC_EXPONENT)));
  return key;
}

absl::Status DestroyLabelled(Session& session, CK_OBJECT_CLASS cls,
                             absl::string_view label) {
  BKV_ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> found,
                       session.FindObjects(cls, label));
  for (CK_OBJECT_HANDLE h : found) {
    BKV_RETURN_IF_ERROR(session.DestroyObject(h));
  }
  return absl::OkStatus();
}

absl::Status RequireNoVaultKeys(Session& session, absl::string_view token) {
  for (const auto& [cls, label] : kAllVaultObjects) {
    BKV_ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> found,
                         session.FindObjects(cls, label));
    if (!found.empty()) {
      return absl::AlreadyExistsError(absl::StrCat(
          token, " already holds '", label,
          "': import only into a token without vault keys (a fresh token "
          "for the new node; never one whose keys sealed records)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TransportPublicKey> CreateTransportKey(Pkcs11Hsm& destination) {
  BKV_ASSIGN_OR_RETURN(Session session, destination.AcquireSession());
  BKV_RETURN_IF_ERROR(RequireNoVaultKeys(session, destination.Describe()));
  BKV_RETURN_IF_ERROR(
      DestroyLabelled(session, CKO_PUBLIC_KEY, kTransportKeyLabel));
  BKV_RETURN_IF_ERROR(
      DestroyLabelled(session, CKO_PRIVATE_KEY, kTransportKeyLabel));
  CK_ULONG bits = kTransportKeyBits;
  CK_BYTE exponent[] = {0x01, 0x00, 0x01};
  CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
  char* label = const_cast<char*>(kTransportKeyLabel.data());
  const size_t label_len = kTransportKeyLabel.size();
  CK_ATTRIBUTE pub[] = {
      {CKA_LABEL, label, label_len},
      {CKA_TOKEN, &yes, sizeof(yes)},
      {CKA_PRIVATE, &no, sizeof(no)},
      {CKA_MODULUS_BITS, &bits, sizeof(bits)},
      {CKA_PUBLIC_EXPONENT, exponent, sizeof(exponent)},
      {CKA_ENCRYPT, &no, sizeof(no)},
      {CKA_WRAP, &no, sizeof(no)},
      {CKA_VERIFY, &no, sizeof(no)},
  };
  // Unwrap only: it can neither decrypt data nor leave the token.
  CK_ATTRIBUTE priv[] = {
      {CKA_LABEL, label, label_len},      {CKA_TOKEN, &yes, sizeof(yes)},
      {CKA_PRIVATE, &yes, sizeof(yes)},   {CKA_SENSITIVE, &yes, sizeof(yes)},
      {CKA_EXTRACTABLE, &no, sizeof(no)}, {CKA_UNWRAP, &yes, sizeof(yes)},
      {CKA_DECRYPT, &no, sizeof(no)},     {CKA_SIGN, &no, sizeof(no)},
      {CKA_DERIVE, &no, sizeof(no)},
  };
  BKV_ASSIGN_OR_RETURN(
      auto pair, session.GenerateKeyPair(CKM_RSA_PKCS_KEY_PAIR_GEN, pub, priv));
  return ReadPublicKey(session, pair.first);
}

absl::Status TrustTransportKey(Pkcs11Hsm& source_so,
                               const TransportPublicKey& key) {
  return StoreTransportPublicKey(source_so, key, /*trusted=*/true);
}

absl::Status StoreTransportPublicKey(Pkcs11Hsm& hsm,
                                     const TransportPublicKey& key,
                                     bool trusted) {
  BKV_ASSIGN_OR_RETURN(Session session, hsm.AcquireSession());
  BKV_RETURN_IF_ERROR(
      DestroyLabelled(session, CKO_PUBLIC_KEY, kTrustedTransportLabel));
  CK_OBJECT_CLASS cls = CKO_PUBLIC_KEY;
  CK_KEY_TYPE type = CKK_RSA;
  CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
  CK_BBOOL is_trusted = trusted ? CK_TRUE : CK_FALSE;
  CK_ATTRIBUTE tmpl[] = {
      {CKA_CLASS, &cls, sizeof(cls)},
      {CKA_KEY_TYPE, &type, sizeof(type)},
      {CKA_LABEL, const_cast<char*>(kTrustedTransportLabel.data()),
       kTrustedTransportLabel.size()},
      {CKA_TOKEN, &yes, sizeof(yes)},
      {CKA_PRIVATE, &no, sizeof(no)},
      {CKA_TRUSTED, &is_trusted, sizeof(is_trusted)},
      {CKA_WRAP, &yes, sizeof(yes)},
      {CKA_ENCRYPT, &no, sizeof(no)},
      {CKA_VERIFY, &no, sizeof(no)},
      {CKA_MODULUS, const_cast<uint8_t*>(key.modulus.data()),
       key.modulus.size()},
      {CKA_PUBLIC_EXPONENT, const_cast<uint8_t*>(key.exponent.data()),
       key.exponent.size()},
  };
  return session.CreateObject(tmpl).status();
}

namespace {

// One vault key wrapped under the transport key, with the error that tells
// the operator why the token said no.
absl::StatusOr<std::vector<uint8_t>> WrapVaultKey(Session& session,
                                                  absl::string_view token,
                                                  CK_OBJECT_HANDLE transport,
                                                  const SecretKeySpec& spec) {
  BKV_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE key,
                       session.FindObject(CKO_SECRET_KEY, spec.label));
  BKV_ASSIGN_OR_RETURN(bool extractable,
                       session.GetBoolAttribute(key, CKA_EXTRACTABLE));
  if (!extractable) {
    return absl::FailedPreconditionError(absl::StrCat(
        token, ": key '", spec.label,
        "' was made non-extractable (by an older `bkv-vault hsm init`, or "
        "imported here from another token) and can never leave this token. "
        "Clone from the token that made the keys; a vault still on one node "
        "can re-initialise: `bkv-vault hsm init --force-new-keys` before "
        "going multi-node (existing records and pinned keys are lost)"));
  }
  absl::StatusOr<std::vector<uint8_t>> wrapped =
      session.WrapKeyRsaOaep(transport, key);
  if (RvFromStatus(wrapped.status()) == CKR_KEY_NOT_WRAPPABLE) {
    return absl::FailedPreconditionError(absl::StrCat(
        token, ": the token refused to wrap '", spec.label,
        "' under the transport key: it is not marked trusted. The security "
        "officer must approve it (`bkv-vault hsm export` with the SO PIN)"));
  }
  return wrapped;
}

// "check <label> <hex>" lines from the key check file's "<label> <hex>".
absl::StatusOr<std::string> CheckLines(std::shared_ptr<Pkcs11Hsm> hsm) {
  BKV_ASSIGN_OR_RETURN(VaultKeys keys, VaultKeys::Load(std::move(hsm)));
  BKV_ASSIGN_OR_RETURN(std::string check, MakeKeyCheck(keys));
  std::string out;
  for (absl::string_view line : absl::StrSplit(check, '\n')) {
    if (!line.empty() && line[0] != '#')
      absl::StrAppend(&out, "check ", line, "\n");
  }
  return out;
}

}  // namespace

absl::StatusOr<std::string> ExportKeys(std::shared_ptr<Pkcs11Hsm> source,
                                       const TransportPublicKey& key) {
  const std::string token = source->Describe();
  BKV_ASSIGN_OR_RETURN(std::string fingerprint, key.FingerprintHex());
  std::string out = absl::StrCat(
      "# bkv-vault HSM key export (docs/operations.md, \"Adding a vault "
      "node\").\n# Only the destination token can unwrap it.\n",
      kExportMagic, "\ntransport ", fingerprint, "\n");
  {
    BKV_ASSIGN_OR_RETURN(Session session, source->AcquireSession());
    absl::StatusOr<CK_OBJECT_HANDLE> transport =
        session.FindObject(CKO_PUBLIC_KEY, kTrustedTransportLabel);
    if (absl::IsNotFound(transport.status())) {
      return absl::FailedPreconditionError(absl::StrCat(
          token,
          ": no trusted transport key; the security officer approves "
          "one first (`bkv-vault hsm export` does, with the SO PIN)"));
    }
    BKV_RETURN_IF_ERROR(transport.status());
    BKV_ASSIGN_OR_RETURN(TransportPublicKey stored,
                         ReadPublicKey(session, *transport));
    if (stored.modulus != key.modulus || stored.exponent != key.exponent) {
      return absl::FailedPreconditionError(
          absl::StrCat(token,
                       ": the trusted transport key is not the one requested; "
                       "rerun `bkv-vault hsm export` with the SO PIN"));
    }
    for (const SecretKeySpec* spec : kVaultSecretKeys) {
      BKV_ASSIGN_OR_RETURN(std::vector<uint8_t> wrapped,
                           WrapVaultKey(session, token, *transport, *spec));
      absl::StrAppend(&out, "wrapped ", spec->label, " ", HexEncode(wrapped),
                      "\n");
    }
    for (const auto& [label, is_private] : kAkeDataObjects) {
      BKV_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE obj,
                           session.FindObject(CKO_DATA, label));
      BKV_ASSIGN_OR_RETURN(std::vector<uint8_t> value,
                           session.GetAttribute(obj, CKA_VALUE));
      absl::StrAppend(&out, "object ", label, " ", HexEncode(value), "\n");
    }
    // Single use: nothing else gets wrapped under it later.
    BKV_RETURN_IF_ERROR(session.DestroyObject(*transport));
  }
  BKV_ASSIGN_OR_RETURN(std::string checks, CheckLines(source));
  return out + checks;
}

namespace {

struct ParsedExport {
  std::string transport;
  absl::flat_hash_map<std::string, std::vector<uint8_t>> wrapped, objects;
  std::string check;  // in the key check file's format
};

absl::StatusOr<ParsedExport> ParseExport(absl::string_view text) {
  ParsedExport out;
  bool magic = false;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    if (line == kExportMagic) {
      magic = true;
      continue;
    }
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ');
    if (f.size() == 2 && f[0] == "transport") {
      out.transport = std::string(f[1]);
    } else if (f.size() == 3 && f[0] == "check") {
      absl::StrAppend(&out.check, f[1], " ", f[2], "\n");
    } else if (f.size() == 3 && (f[0] == "wrapped" || f[0] == "object")) {
      absl::StatusOr<std::vector<uint8_t>> value =
          HexDecode(std::string_view(f[2].data(), f[2].size()));
      if (!value.ok()) break;
      (f[0] == "wrapped" ? out.wrapped : out.objects)[f[1]] = *value;
    } else {
      magic = false;
      break;
    }
  }
  if (!magic || out.transport.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "not a bkv-vault key export (expected the file `bkv-vault hsm "
        "export` wrote, starting \"",
        kExportMagic, "\")"));
  }
  return out;
}

// Creates every vault object from the export; returns what it made.
absl::Status CreateFromExport(Session& session, CK_OBJECT_HANDLE transport,
                              const ParsedExport& in,
                              std::vector<CK_OBJECT_HANDLE>& made) {
  for (const SecretKeySpec* spec : kVaultSecretKeys) {
    auto it = in.wrapped.find(spec->label);
    if (it == in.wrapped.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("the export has no key '", spec->label, "'"));
    }
    SecretKeyTemplate tmpl(*spec, SecretKeyTemplate::Origin::kUnwrap);
    BKV_ASSIGN_OR_RETURN(
        made.emplace_back(),
        session.UnwrapKeyRsaOaep(transport, it->second, tmpl.attributes()));
  }
  for (const auto& [label, is_private] : kAkeDataObjects) {
    auto it = in.objects.find(label);
    if (it == in.objects.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("the export has no object '", label, "'"));
    }
    BKV_ASSIGN_OR_RETURN(
        made.emplace_back(),
        CreateDataObject(session, label, is_private, it->second));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ImportReport> ImportKeys(std::shared_ptr<Pkcs11Hsm> destination,
                                        absl::string_view export_file) {
  BKV_ASSIGN_OR_RETURN(ParsedExport in, ParseExport(export_file));
  const std::string token = destination->Describe();
  BKV_ASSIGN_OR_RETURN(Session session, destination->AcquireSession());
  BKV_RETURN_IF_ERROR(RequireNoVaultKeys(session, token));
  BKV_ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> pubs,
                       session.FindObjects(CKO_PUBLIC_KEY, kTransportKeyLabel));
  BKV_ASSIGN_OR_RETURN(
      std::vector<CK_OBJECT_HANDLE> privs,
      session.FindObjects(CKO_PRIVATE_KEY, kTransportKeyLabel));
  if (pubs.size() != 1 || privs.size() != 1) {
    return absl::FailedPreconditionError(absl::StrCat(
        token,
        " has no transport key: run `bkv-vault hsm export-request` "
        "here and export for it"));
  }
  BKV_ASSIGN_OR_RETURN(TransportPublicKey pub, ReadPublicKey(session, pubs[0]));
  BKV_ASSIGN_OR_RETURN(std::string ours, pub.FingerprintHex());
  if (ours != in.transport) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the export is for transport key ", in.transport, " but ", token,
        " has ", ours,
        ": export for this token's latest `bkv-vault hsm export-request`"));
  }
  std::vector<CK_OBJECT_HANDLE> made;
  absl::Status s = CreateFromExport(session, privs[0], in, made);
  absl::StatusOr<VaultKeys> keys = s.ok() ? VaultKeys::Load(destination) : s;
  if (keys.ok()) s = VerifyKeyCheck(*keys, in.check, token);
  if (!keys.ok()) s = keys.status();
  if (!s.ok()) {
    for (CK_OBJECT_HANDLE h : made) session.DestroyObject(h).IgnoreError();
    return s;
  }
  BKV_RETURN_IF_ERROR(session.DestroyObject(privs[0]));
  BKV_RETURN_IF_ERROR(session.DestroyObject(pubs[0]));
  ImportReport report;
  for (const auto& [cls, label] : kAllVaultObjects) {
    report.labels.emplace_back(label);
  }
  report.ake_public_key = keys->ake.public_key();
  return report;
}

}  // namespace bkv::hsm
