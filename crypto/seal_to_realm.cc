#include "crypto/seal_to_realm.h"

#include <openssl/crypto.h>

#include "absl/strings/str_cat.h"
#include "crypto/aes_gcm_sealer.h"
#include "crypto/hash.h"
#include "crypto/status_macros.h"

namespace bkv::threshold {
namespace {

using ristretto255::Element;
using ristretto255::kElementSize;

constexpr size_t kTagSize = 16;
constexpr uint8_t kZeroNonce[12] = {};

SecretBytes SealKey(const Element& dh, const Element& ephemeral,
                    const Element& identity_key,
                    std::span<const uint8_t> context) {
  const SecretBytes prk =
      HkdfExtract(AsBytes("bkv/threshold/seal-to-realm/v1"), dh);
  std::vector<uint8_t> info(2 * kElementSize + context.size());
  auto at = std::copy(ephemeral.begin(), ephemeral.end(), info.begin());
  at = std::copy(identity_key.begin(), identity_key.end(), at);
  std::copy(context.begin(), context.end(), at);
  return HkdfExpand(prk.Reveal(), info, 32);
}

}  // namespace

std::vector<uint8_t> RegistrationContext(absl::string_view account_id,
                                         const RegistrationVersion& version) {
  std::vector<uint8_t> out = {static_cast<uint8_t>(account_id.size() >> 8),
                              static_cast<uint8_t>(account_id.size())};
  AppendBytes(out,
              AsBytes(std::string_view(account_id.data(), account_id.size())));
  AppendBytes(out, version);
  return out;
}

absl::StatusOr<std::vector<uint8_t>> SealToRealm(
    const Element& identity_key, std::span<const uint8_t> context,
    const SecretBytes& payload, const RandomSource& rng) {
  const SecretBytes e = rng.Scalar();
  BKV_ASSIGN_OR_RETURN(Element ephemeral, ristretto255::ScalarMultBase(e));
  BKV_ASSIGN_OR_RETURN(Element dh, ristretto255::ScalarMult(e, identity_key));
  const SecretBytes key = SealKey(dh, ephemeral, identity_key, context);
  OPENSSL_cleanse(dh.data(), dh.size());
  BKV_ASSIGN_OR_RETURN(
      std::vector<uint8_t> ct,
      AesGcmEncrypt(key.Reveal(), kZeroNonce, payload.Reveal(), context));
  std::vector<uint8_t> sealed(ephemeral.begin(), ephemeral.end());
  AppendBytes(sealed, ct);
  return sealed;
}

absl::StatusOr<SecretBytes> OpenAsRealm(const SecretBytes& identity_private_key,
                                        std::span<const uint8_t> context,
                                        std::span<const uint8_t> sealed) {
  if (sealed.size() < kElementSize + kTagSize) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sealed realm payload is ", sealed.size(), " bytes, at least ",
        kElementSize + kTagSize, " expected"));
  }
  BKV_ASSIGN_OR_RETURN(Element ephemeral,
                       ristretto255::DeserializeElement(
                           sealed.first(kElementSize), "sealed payload's E"));
  BKV_ASSIGN_OR_RETURN(Element identity_key,
                       ristretto255::ScalarMultBase(identity_private_key));
  BKV_ASSIGN_OR_RETURN(
      Element dh, ristretto255::ScalarMult(identity_private_key, ephemeral));
  const SecretBytes key = SealKey(dh, ephemeral, identity_key, context);
  OPENSSL_cleanse(dh.data(), dh.size());
  BKV_ASSIGN_OR_RETURN(std::vector<uint8_t> pt,
                       AesGcmDecrypt(key.Reveal(), kZeroNonce,
                                     sealed.subspan(kElementSize), context));
  SecretBytes out = SecretBytes::Copy(pt);
  OPENSSL_cleanse(pt.data(), pt.size());
  return out;
}

}  // namespace bkv::threshold
