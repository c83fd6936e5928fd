#include "crypto/hash.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <sodium.h>

#include <cstdlib>
#include <memory>
#include <vector>

#include "absl/status/status.h"

namespace bkv {

Sha512Digest Sha512(std::initializer_list<std::span<const uint8_t>> parts) {
  crypto_hash_sha512_state st;
  crypto_hash_sha512_init(&st);
  for (auto p : parts) {
    if (!p.empty()) crypto_hash_sha512_update(&st, p.data(), p.size());
  }
  Sha512Digest out;
  crypto_hash_sha512_final(&st, out.data());
  sodium_memzero(&st, sizeof st);  // it may have absorbed a password
  return out;
}

SecretBytes HmacSha512(std::span<const uint8_t> key,
                       std::initializer_list<std::span<const uint8_t>> parts) {
  // OpenSSL's SHA-512 has AVX2 code, about 1.5x libsodium's portable one;
  // chunk ids hash every byte of a backup and of a restore with it.
  static EVP_MAC* const kHmac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  std::unique_ptr<EVP_MAC_CTX, decltype(&EVP_MAC_CTX_free)> ctx(
      kHmac ? EVP_MAC_CTX_new(kHmac) : nullptr, &EVP_MAC_CTX_free);
  char digest[] = "SHA512";
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string("digest", digest, 0),
      OSSL_PARAM_construct_end()};
  // HMAC pads a key with zeros to the block size, so one zero byte is the
  // empty key (OpenSSL refuses a zero-length one).
  static constexpr uint8_t kNoKey = 0;
  bool ok = ctx && EVP_MAC_init(ctx.get(), key.empty() ? &kNoKey : key.data(),
                                key.empty() ? 1 : key.size(), params) == 1;
  for (auto p : parts) {
    ok =
        ok && (p.empty() || EVP_MAC_update(ctx.get(), p.data(), p.size()) == 1);
  }
  SecretBytes out(kSha512Size);
  size_t n = 0;
  ok = ok && EVP_MAC_final(ctx.get(), out.RevealMutable().data(), &n,
                           kSha512Size) == 1;
  // Out of memory is the only way here; a wrong MAC must never be used.
  if (!ok || n != kSha512Size) std::abort();
  return out;
}

SecretBytes HkdfExtract(std::span<const uint8_t> salt,
                        std::span<const uint8_t> ikm) {
  // HMAC pads a short key with zeros, so an empty salt already equals
  // HashLen zero bytes.
  return HmacSha512(salt, {ikm});
}

namespace {

// HKDF-Expand over any HMAC oracle.
template <typename Mac>
absl::StatusOr<SecretBytes> ExpandWith(Mac&& mac, std::span<const uint8_t> info,
                                       size_t length) {
  if (length > 255 * kSha512Size) {
    return absl::InvalidArgumentError("HKDF-Expand length over 255*HashLen");
  }
  SecretBytes out(length);
  std::vector<uint8_t> block;  // T(i-1) || info || i
  SecretBytes t;
  size_t done = 0;
  for (uint8_t i = 1; done < length; ++i) {
    block.assign(t.Reveal().begin(), t.Reveal().end());
    block.insert(block.end(), info.begin(), info.end());
    block.push_back(i);
    absl::StatusOr<SecretBytes> next = mac(block);
    sodium_memzero(block.data(), block.size());
    if (!next.ok()) return next.status();
    t = *std::move(next);
    size_t n = std::min(kSha512Size, length - done);
    std::copy_n(t.Reveal().begin(), n, out.RevealMutable().begin() + done);
    done += n;
  }
  return out;
}

}  // namespace

SecretBytes HkdfExpand(std::span<const uint8_t> prk,
                       std::span<const uint8_t> info, size_t length) {
  auto out = ExpandWith(
      [&](std::span<const uint8_t> m) -> absl::StatusOr<SecretBytes> {
        return HmacSha512(prk, {m});
      },
      info, length);
  if (!out.ok()) std::abort();  // only for length misuse by our own code
  return *std::move(out);
}

absl::StatusOr<SecretBytes> HkdfExpand(const KeyedHash& prk,
                                       std::span<const uint8_t> info,
                                       size_t length) {
  return ExpandWith(
      [&](std::span<const uint8_t> m) { return prk.HmacSha512(m); }, info,
      length);
}

absl::StatusOr<SecretBytes> HmacSha512KeyedHash::HmacSha512(
    std::span<const uint8_t> message) const {
  return bkv::HmacSha512(key_.Reveal(), {message});
}

}  // namespace bkv
