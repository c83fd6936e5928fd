#include "crypto/hash.h"

#include <sodium.h>

#include <cstdlib>
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
  crypto_auth_hmacsha512_state st;
  // An empty span may have a null data(); libsodium's arguments are nonnull.
  static constexpr uint8_t kNoKey = 0;
  crypto_auth_hmacsha512_init(&st, key.empty() ? &kNoKey : key.data(),
                              key.size());
  for (auto p : parts) {
    if (!p.empty()) crypto_auth_hmacsha512_update(&st, p.data(), p.size());
  }
  SecretBytes out(kSha512Size);
  crypto_auth_hmacsha512_final(&st, out.RevealMutable().data());
  sodium_memzero(&st, sizeof st);
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
