#include "hsm/key_ceremony.h"

#include <sodium.h>

#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "crypto/hex.h"
#include "crypto/status_macros.h"
#include "hsm/key_labels.h"
#include "hsm/vault_key_specs.h"

namespace bkv::hsm {
namespace {

using Session = Pkcs11Hsm::Session;

absl::StatusOr<CK_OBJECT_HANDLE> GenerateSecretKey(Session& session,
                                                   const SecretKeySpec& spec) {
  SecretKeyTemplate tmpl(spec, SecretKeyTemplate::Origin::kGenerate);
  return session.GenerateKey(spec.gen_mechanism, tmpl.attributes());
}

// An existing key is kept only if it is as safe as one we would make.
absl::Status CheckExistingKey(Session& session, CK_OBJECT_HANDLE key,
                              const SecretKeySpec& spec) {
  BKV_ASSIGN_OR_RETURN(bool sensitive,
                       session.GetBoolAttribute(key, CKA_SENSITIVE));
  BKV_ASSIGN_OR_RETURN(bool extractable,
                       session.GetBoolAttribute(key, CKA_EXTRACTABLE));
  // Extractable is safe only when limited to trusted wrapping keys.
  BKV_ASSIGN_OR_RETURN(bool trusted_only,
                       session.GetBoolAttribute(key, CKA_WRAP_WITH_TRUSTED));
  BKV_ASSIGN_OR_RETURN(std::vector<uint8_t> type,
                       session.GetAttribute(key, CKA_KEY_TYPE));
  BKV_ASSIGN_OR_RETURN(std::vector<uint8_t> size,
                       session.GetAttribute(key, CKA_VALUE_LEN));
  CK_KEY_TYPE key_type = 0;
  CK_ULONG key_size = 0;
  if (type.size() == sizeof(key_type)) {
    std::copy(type.begin(), type.end(), reinterpret_cast<uint8_t*>(&key_type));
  }
  if (size.size() == sizeof(key_size)) {
    std::copy(size.begin(), size.end(), reinterpret_cast<uint8_t*>(&key_size));
  }
  if (!sensitive || (extractable && !trusted_only) ||
      key_type != spec.key_type || key_size != spec.size) {
    return absl::FailedPreconditionError(absl::StrCat(
        "existing key '", spec.label,
        "' is extractable to untrusted keys, not sensitive, or of the wrong "
        "type or size; "
        "refusing to use it (rerun with --force-new-keys to replace it)"));
  }
  return absl::OkStatus();
}

// Finds or makes one secret key. Returns the handle and whether it is new.
absl::StatusOr<std::pair<CK_OBJECT_HANDLE, bool>> EnsureSecretKey(
    Session& session, const SecretKeySpec& spec) {
  BKV_ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> found,
                       session.FindObjects(CKO_SECRET_KEY, spec.label));
  if (found.size() > 1) {
    return absl::FailedPreconditionError(
        absl::StrCat(found.size(), " keys labelled '", spec.label,
                     "'; rerun with --force-new-keys"));
  }
  if (found.size() == 1) {
    BKV_RETURN_IF_ERROR(CheckExistingKey(session, found[0], spec));
    return std::pair{found[0], false};
  }
  BKV_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE key, GenerateSecretKey(session, spec));
  return std::pair{key, true};
}

// Fresh scalar, wrapped inside the token; returns the wrapped blob.
absl::StatusOr<std::vector<uint8_t>> WrapNewScalar(Session& session,
                                                   CK_OBJECT_HANDLE wrap_key,
                                                   AkeKeyPair::PublicKey& pk) {
  if (sodium_init() < 0) return absl::InternalError("sodium_init failed");
  SecretBytes scalar = SecretBytes::Locked(AkeKeyPair::kKeySize);
  crypto_core_ristretto255_scalar_random(scalar.RevealMutable().data());
  BKV_ASSIGN_OR_RETURN(pk, DeriveAkePublicKey(scalar));

  // The token wraps only key objects: import the scalar as a short-lived,
  // extractable session key, wrap it, destroy it.
  CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
  CK_KEY_TYPE type = CKK_GENERIC_SECRET;
  CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
  CK_ATTRIBUTE tmpl[] = {
      {CKA_CLASS, &cls, sizeof(cls)},
      {CKA_KEY_TYPE, &type, sizeof(type)},
      {CKA_TOKEN, &no, sizeof(no)},
      {CKA_PRIVATE, &yes, sizeof(yes)},
      {CKA_SENSITIVE, &yes, sizeof(yes)},
      {CKA_EXTRACTABLE, &yes, sizeof(yes)},
      {CKA_VALUE, scalar.RevealMutable().data(), scalar.size()},
  };
  BKV_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE temp, session.CreateObject(tmpl));
  absl::StatusOr<std::vector<uint8_t>> wrapped =
      session.WrapKey(wrap_key, temp);
  absl::Status destroyed = session.DestroyObject(temp);
  if (!wrapped.ok()) return wrapped.status();
  BKV_RETURN_IF_ERROR(destroyed);
  return wrapped;
}

absl::Status DestroyAllKeys(Session& session) {
  for (const auto& [cls, label] : kAllVaultObjects) {
    BKV_ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> found,
                         session.FindObjects(cls, label));
    for (CK_OBJECT_HANDLE h : found) {
      BKV_RETURN_IF_ERROR(session.DestroyObject(h));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<CeremonyReport> RunKeyCeremony(Pkcs11Hsm& hsm,
                                              const CeremonyOptions& options) {
  CeremonyReport report;
  {
    BKV_ASSIGN_OR_RETURN(Session session, hsm.AcquireSession());
    if (options.force_new_keys) BKV_RETURN_IF_ERROR(DestroyAllKeys(session));

    for (const SecretKeySpec* spec : {&kSealKeySpec, &kOprfSeedSpec}) {
      BKV_ASSIGN_OR_RETURN(auto key, EnsureSecretKey(session, *spec));
      report.keys.push_back({std::string(spec->label), key.second});
    }
    BKV_ASSIGN_OR_RETURN(auto wrap, EnsureSecretKey(session, kAkeWrapKeySpec));
    report.keys.push_back({std::string(kAkeWrapKeyLabel), wrap.second});

    BKV_ASSIGN_OR_RETURN(auto wrapped_objs,
                         session.FindObjects(CKO_DATA, kAkePrivateLabel));
    BKV_ASSIGN_OR_RETURN(auto public_objs,
                         session.FindObjects(CKO_DATA, kAkePublicLabel));
    const bool have_pair = !wrapped_objs.empty() && !public_objs.empty();
    if (wrap.second && (!wrapped_objs.empty() || !public_objs.empty())) {
      return absl::FailedPreconditionError(absl::StrCat(
          hsm.Describe(), ": a wrapped AKE key exists but its wrapping key '",
          kAkeWrapKeyLabel,
          "' was missing; the AKE key is lost. Rerun with --force-new-keys "
          "(clients must re-pin the new public key)"));
    }
    if (!have_pair && (!wrapped_objs.empty() || !public_objs.empty())) {
      return absl::FailedPreconditionError(absl::StrCat(
          hsm.Describe(), ": only one of '", kAkePrivateLabel, "' and '",
          kAkePublicLabel, "' exists; rerun with --force-new-keys"));
    }
    if (!have_pair) {
      AkeKeyPair::PublicKey pk{};
      BKV_ASSIGN_OR_RETURN(std::vector<uint8_t> wrapped,
                           WrapNewScalar(session, wrap.first, pk));
      BKV_ASSIGN_OR_RETURN(
          CK_OBJECT_HANDLE priv,
          CreateDataObject(session, kAkePrivateLabel, true, wrapped));
      absl::StatusOr<CK_OBJECT_HANDLE> pub =
          CreateDataObject(session, kAkePublicLabel, false, pk);
      if (!pub.ok()) {
        // Leave no half pair behind; the next run starts clean.
        session.DestroyObject(priv).IgnoreError();
        return pub.status();
      }
    }
    report.keys.push_back({std::string(kAkePrivateLabel), !have_pair});
    report.keys.push_back({std::string(kAkePublicLabel), !have_pair});
  }
  BKV_ASSIGN_OR_RETURN(AkeKeyPair ake, AkeKeyPair::Load(hsm));
  report.ake_public_key = ake.public_key();
  report.ake_fingerprint_hex = ake.FingerprintHex();
  return report;
}

bool KeyInventory::complete() const {
  return ake_public_key.has_value() &&
         std::all_of(entries.begin(), entries.end(),
                     [](const Entry& e) { return e.present; });
}

absl::StatusOr<KeyInventory> InspectKeys(Pkcs11Hsm& hsm) {
  BKV_ASSIGN_OR_RETURN(Session session, hsm.AcquireSession());
  KeyInventory inventory;
  for (const auto& [cls, label] : kAllVaultObjects) {
    BKV_ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> found,
                         session.FindObjects(cls, label));
    inventory.entries.push_back({std::string(label), found.size() == 1});
    if (label == kAkePublicLabel && found.size() == 1) {
      BKV_ASSIGN_OR_RETURN(std::vector<uint8_t> value,
                           session.GetAttribute(found[0], CKA_VALUE));
      if (value.size() == AkeKeyPair::kKeySize) {
        AkeKeyPair::PublicKey pk;
        std::copy(value.begin(), value.end(), pk.begin());
        inventory.ake_public_key = pk;
      }
    }
  }
  return inventory;
}

absl::Status CheckInventory(const KeyInventory& inventory,
                            absl::string_view token_description) {
  std::vector<std::string> missing;
  for (const auto& e : inventory.entries) {
    if (!e.present) missing.push_back(absl::StrCat("'", e.label, "'"));
  }
  if (missing.empty() && inventory.ake_public_key.has_value()) {
    return absl::OkStatus();
  }
  if (missing.empty())
    missing.push_back(absl::StrCat("'", kAkePublicLabel, "'"));
  return absl::FailedPreconditionError(absl::StrCat(
      token_description, ": key object ", absl::StrJoin(missing, ", "),
      " missing or unreadable. If this vault ever held records, do not make "
      "new keys (every password would read as wrong and sealed records "
      "could not be opened): restore the token from its backup "
      "(docs/operations.md, \"Restoring the HSM token\"). Only for a vault "
      "without records: `bkv-vault hsm init`"));
}

absl::Status RequireAllKeys(Pkcs11Hsm& hsm) {
  BKV_ASSIGN_OR_RETURN(KeyInventory inventory, InspectKeys(hsm));
  return CheckInventory(inventory, hsm.Describe());
}

namespace {

constexpr absl::string_view kKeyCheckLabel = "bkv-vault/key-check/v1";
constexpr absl::string_view kKeyCheckPlaintext = "bkv-vault key check";

std::span<const uint8_t> AsSpan(absl::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

absl::StatusOr<std::string> SeedCheck(const VaultKeys& keys) {
  BKV_ASSIGN_OR_RETURN(SecretBytes mac,
                       keys.oprf_seed.HmacSha512(AsSpan(kKeyCheckLabel)));
  return HexEncode(mac.Reveal().first(32));
}

absl::Status CheckMismatch(absl::string_view label,
                           absl::string_view token_description,
                           absl::string_view why) {
  return absl::FailedPreconditionError(absl::StrCat(
      token_description, ": key object '", label,
      "' is not the key this vault's records were made with (", why,
      "): it was damaged or replaced. Do not serve with it (every password "
      "would read as wrong): restore the token from its backup "
      "(docs/operations.md, \"Restoring the HSM token\")"));
}

}  // namespace

absl::StatusOr<std::string> MakeKeyCheck(const VaultKeys& keys) {
  BKV_ASSIGN_OR_RETURN(std::string seed, SeedCheck(keys));
  BKV_ASSIGN_OR_RETURN(
      std::vector<uint8_t> sealed,
      keys.sealer.Seal(AsSpan(kKeyCheckPlaintext), AsSpan(kKeyCheckLabel)));
  return absl::StrCat(
      "# bkv-vault key check values: they change if a key object on the\n"
      "# token changes. Keep this file with the data directory.\n",
      kOprfSeedLabel, " ", seed, "\n", kRecordSealKeyLabel, " ",
      HexEncode(sealed), "\n", kAkePublicLabel, " ",
      HexEncode(keys.ake.public_key()), "\n");
}

absl::Status VerifyKeyCheck(const VaultKeys& keys, absl::string_view check,
                            absl::string_view token_description) {
  absl::flat_hash_map<std::string, std::string> values;
  for (absl::string_view line : absl::StrSplit(check, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    std::pair<std::string, std::string> kv = absl::StrSplit(line, ' ');
    values[kv.first] = kv.second;
  }
  for (absl::string_view label :
       {kOprfSeedLabel, kRecordSealKeyLabel, kAkePublicLabel}) {
    if (!values.contains(label)) {
      return CheckMismatch(label, token_description,
                           "the check file has no value for it");
    }
  }
  BKV_ASSIGN_OR_RETURN(std::string seed, SeedCheck(keys));
  if (seed != values[kOprfSeedLabel]) {
    return CheckMismatch(kOprfSeedLabel, token_description,
                         "its check value differs");
  }
  absl::StatusOr<std::vector<uint8_t>> sealed =
      HexDecode(values[kRecordSealKeyLabel]);
  absl::StatusOr<std::vector<uint8_t>> opened =
      sealed.ok() ? keys.sealer.Open(*sealed, AsSpan(kKeyCheckLabel))
                  : sealed.status();
  if (!opened.ok() ||
      absl::string_view(reinterpret_cast<const char*>(opened->data()),
                        opened->size()) != kKeyCheckPlaintext) {
    return CheckMismatch(kRecordSealKeyLabel, token_description,
                         "it cannot open the check value sealed with it");
  }
  if (HexEncode(keys.ake.public_key()) != values[kAkePublicLabel]) {
    return CheckMismatch(kAkePublicLabel, token_description,
                         "the public key differs");
  }
  return absl::OkStatus();
}

absl::StatusOr<VaultKeys> VaultKeys::Load(std::shared_ptr<Pkcs11Hsm> hsm) {
  BKV_ASSIGN_OR_RETURN(TokenSealer sealer, TokenSealer::Create(hsm));
  BKV_ASSIGN_OR_RETURN(TokenKeyedHash oprf_seed, TokenKeyedHash::Create(hsm));
  BKV_ASSIGN_OR_RETURN(AkeKeyPair ake, AkeKeyPair::Load(*hsm));
  return VaultKeys{std::move(sealer), std::move(oprf_seed), std::move(ake)};
}

}  // namespace bkv::hsm
