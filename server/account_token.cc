#include "server/account_token.h"

#include <sodium.h>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace bkv::server {
namespace {

using nlohmann::json;

constexpr size_t kMaxTokenSize = 4096;
constexpr size_t kMaxSubjectSize = 256;

absl::Status Unauthenticated(absl::string_view why) {
  return absl::UnauthenticatedError(absl::StrCat("account token ", why));
}

std::string Base64UrlEncode(const uint8_t* data, size_t size) {
  std::string out(
      sodium_base64_ENCODED_LEN(size, sodium_base64_VARIANT_URLSAFE_NO_PADDING),
      '\0');
  sodium_bin2base64(out.data(), out.size(), data, size,
                    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  out.resize(out.size() - 1);  // drop the NUL
  return out;
}

bool Base64UrlDecode(absl::string_view in, std::string* out) {
  out->assign(in.size(), '\0');
  size_t len = 0;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out->data()),
                        out->size(), in.data(), in.size(), nullptr, &len,
                        nullptr,
                        sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0) {
    return false;
  }
  out->resize(len);
  return true;
}

absl::StatusOr<json> DecodeJsonPart(absl::string_view part,
                                    absl::string_view what) {
  std::string raw;
  if (!Base64UrlDecode(part, &raw)) {
    return Unauthenticated(absl::StrCat("has a malformed ", what,
                                        " (not base64url without padding)"));
  }
  json j = json::parse(raw, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) {
    return Unauthenticated(
        absl::StrCat("has a malformed ", what, " (not a JSON object)"));
  }
  return j;
}

bool AudienceMatches(const json& aud, const std::string& want) {
  if (aud.is_string()) return aud.get<std::string>() == want;
  if (aud.is_array()) {
    for (const auto& a : aud) {
      if (a.is_string() && a.get<std::string>() == want) return true;
    }
  }
  return false;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TokenVerifier>> TokenVerifier::Create(
    TokenPolicy policy) {
  if (sodium_init() < 0) return absl::InternalError("libsodium init failed");
  if (policy.keys.empty()) {
    return absl::InvalidArgumentError(
        "no account-token issuer keys configured: set [auth] issuer_keys");
  }
  if (policy.audience.empty()) {
    return absl::InvalidArgumentError(
        "no account-token audience configured: set [auth] audience");
  }
  for (const auto& k : policy.keys) {
    if (k.kid.empty()) {
      return absl::InvalidArgumentError("an issuer key has an empty kid");
    }
  }
  return std::unique_ptr<TokenVerifier>(new TokenVerifier(std::move(policy)));
}

absl::StatusOr<std::string> TokenVerifier::Verify(absl::string_view token,
                                                  absl::Time now) const {
  if (token.empty()) return Unauthenticated("missing");
  if (token.size() > kMaxTokenSize) return Unauthenticated("too large");
  uint8_t digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(digest, reinterpret_cast<const uint8_t*>(token.data()),
                     token.size());
  std::string key(reinterpret_cast<const char*>(digest), sizeof digest);
  {
    absl::MutexLock lock(&mu_);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      if (now <= it->second.expires) return it->second.account;
      cache_.erase(it);
      return Unauthenticated("has expired");
    }
  }
  auto verified = VerifyUncached(token, now);
  if (!verified.ok()) return verified.status();
  absl::MutexLock lock(&mu_);
  // Bounded: when full, forget everything (tokens just verify again).
  if (cache_.size() >= kMaxCached) cache_.clear();
  cache_.emplace(std::move(key), *verified);
  return verified->account;
}

absl::StatusOr<TokenVerifier::Verified> TokenVerifier::VerifyUncached(
    absl::string_view token, absl::Time now) const {
  std::vector<absl::string_view> parts = absl::StrSplit(token, '.');
  if (parts.size() != 3) {
    return Unauthenticated("is not a JWS compact serialization");
  }
  auto header = DecodeJsonPart(parts[0], "header");
  if (!header.ok()) return header.status();
  // Only EdDSA: never let the token choose a weaker algorithm ("none").
  const json& alg = (*header)["alg"];
  if (!alg.is_string() || alg.get<std::string>() != "EdDSA") {
    return Unauthenticated("must be signed with alg EdDSA");
  }
  // Extensions we don't implement must not be silently ignored (RFC 7515).
  if (header->contains("crit")) {
    return Unauthenticated("uses critical header extensions");
  }
  if (!(*header)["kid"].is_string()) {
    return Unauthenticated("header has no kid");
  }
  const std::string kid = (*header)["kid"].get<std::string>();
  const IssuerKey* key = nullptr;
  for (const auto& k : policy_.keys) {
    if (k.kid == kid) key = &k;
  }
  if (key == nullptr) {
    return Unauthenticated("is signed by an unknown key id");
  }
  std::string signature;
  if (!Base64UrlDecode(parts[2], &signature) ||
      signature.size() != crypto_sign_BYTES) {
    return Unauthenticated("has a malformed signature");
  }
  const size_t signed_len = parts[0].size() + 1 + parts[1].size();
  if (crypto_sign_verify_detached(
          reinterpret_cast<const unsigned char*>(signature.data()),
          reinterpret_cast<const unsigned char*>(token.data()), signed_len,
          key->public_key.data()) != 0) {
    return Unauthenticated("signature does not verify");
  }

  auto claims = DecodeJsonPart(parts[1], "payload");
  if (!claims.ok()) return claims.status();
  const json& c = *claims;
  if (!c.contains("sub") || !c["sub"].is_string() ||
      c["sub"].get<std::string>().empty() ||
      c["sub"].get<std::string>().size() > kMaxSubjectSize) {
    return Unauthenticated("has no valid sub (account id)");
  }
  if (!c.contains("aud") || !AudienceMatches(c["aud"], policy_.audience)) {
    return Unauthenticated(absl::StrCat("is for another audience (want \"",
                                        policy_.audience, "\")"));
  }
  if (!policy_.issuer.empty() &&
      (!c.contains("iss") || !c["iss"].is_string() ||
       c["iss"].get<std::string>() != policy_.issuer)) {
    return Unauthenticated("is from another issuer");
  }
  if (!c.contains("exp") || !c["exp"].is_number_integer() ||
      !c.contains("iat") || !c["iat"].is_number_integer()) {
    return Unauthenticated("needs integer exp and iat claims");
  }
  const absl::Time exp = absl::FromUnixSeconds(c["exp"].get<int64_t>());
  const absl::Time iat = absl::FromUnixSeconds(c["iat"].get<int64_t>());
  if (now > exp + policy_.clock_skew) return Unauthenticated("has expired");
  if (iat > now + policy_.clock_skew) {
    return Unauthenticated("is issued in the future (check clocks)");
  }
  if (exp - iat > policy_.max_lifetime) {
    return Unauthenticated("lifetime is longer than the vault accepts");
  }
  if (c.contains("nbf") && c["nbf"].is_number_integer() &&
      absl::FromUnixSeconds(c["nbf"].get<int64_t>()) >
          now + policy_.clock_skew) {
    return Unauthenticated("is not valid yet (nbf)");
  }
  return Verified{c["sub"].get<std::string>(), exp + policy_.clock_skew};
}

absl::StatusOr<std::string> MintToken(
    const SecretBytes& secret_key, absl::string_view kid,
    absl::string_view subject, absl::string_view audience,
    absl::string_view issuer, absl::Time issued_at, absl::Duration lifetime) {
  if (secret_key.size() != crypto_sign_SECRETKEYBYTES) {
    return absl::InvalidArgumentError(
        "an Ed25519 signing key must be 64 bytes (libsodium form)");
  }
  json header = {{"alg", "EdDSA"}, {"typ", "JWT"}, {"kid", std::string(kid)}};
  json claims = {{"sub", std::string(subject)},
                 {"aud", std::string(audience)},
                 {"iat", absl::ToUnixSeconds(issued_at)},
                 {"exp", absl::ToUnixSeconds(issued_at + lifetime)}};
  if (!issuer.empty()) claims["iss"] = std::string(issuer);
  const std::string h = header.dump(), p = claims.dump();
  std::string signing_input = absl::StrCat(
      Base64UrlEncode(reinterpret_cast<const uint8_t*>(h.data()), h.size()),
      ".",
      Base64UrlEncode(reinterpret_cast<const uint8_t*>(p.data()), p.size()));
  uint8_t sig[crypto_sign_BYTES];
  crypto_sign_detached(sig, nullptr,
                       reinterpret_cast<const uint8_t*>(signing_input.data()),
                       signing_input.size(), secret_key.Reveal().data());
  return absl::StrCat(signing_input, ".", Base64UrlEncode(sig, sizeof sig));
}

Ed25519KeyPair GenerateEd25519KeyPair() {
  if (sodium_init() < 0) std::abort();
  Ed25519KeyPair kp{SecretBytes(crypto_sign_SECRETKEYBYTES), {}};
  crypto_sign_keypair(kp.public_key.data(),
                      kp.secret_key.RevealMutable().data());
  return kp;
}

}  // namespace bkv::server
