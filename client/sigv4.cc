#include "client/sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <algorithm>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "crypto/hash.h"
#include "crypto/hex.h"

namespace bkv {
namespace {

std::string NormalizePath(std::string_view path) {
  std::vector<std::string_view> out;
  for (absl::string_view seg :
       absl::StrSplit(absl::string_view(path.data(), path.size()), '/')) {
    if (seg.empty() || seg == ".") continue;
    if (seg == "..") {
      if (!out.empty()) out.pop_back();
      continue;
    }
    out.emplace_back(seg.data(), seg.size());
  }
  std::string joined = "/";
  for (size_t i = 0; i < out.size(); ++i) {
    absl::StrAppend(&joined, i ? "/" : "",
                    absl::string_view(out[i].data(), out[i].size()));
  }
  if (!out.empty() && path.size() > 1 && path.back() == '/') joined += '/';
  return joined;
}

std::string CollapseSpaces(std::string_view v) {
  std::string out;
  bool space = false;
  for (char c : v) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      space = true;
      continue;
    }
    if (space && !out.empty()) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

std::vector<uint8_t> Hmac(std::span<const uint8_t> key, std::string_view msg) {
  std::vector<uint8_t> out(32);
  unsigned int len = 32;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const uint8_t*>(msg.data()), msg.size(), out.data(),
       &len);
  return out;
}

std::string SignedHeaders(const SigV4Request& r) {
  std::vector<std::string> names;
  for (const auto& [k, v] : r.headers) {
    names.push_back(absl::AsciiStrToLower(k));
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return absl::StrJoin(names, ";");
}

std::string CredentialScope(const SigV4Scope& s) {
  return absl::StrCat(s.amz_date.substr(0, 8), "/", s.region, "/", s.service,
                      "/aws4_request");
}

}  // namespace

std::string Sha256Hex(std::span<const uint8_t> data) {
  uint8_t d[SHA256_DIGEST_LENGTH];
  SHA256(data.data(), data.size(), d);
  return HexEncode(d);
}

std::string SigV4UriEncode(std::string_view s, bool encode_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.' ||
        c == '~' || (c == '/' && !encode_slash)) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string SigV4CanonicalRequest(const SigV4Request& r) {
  const std::string path = r.normalize_path ? NormalizePath(r.path) : r.path;
  std::vector<std::pair<std::string, std::string>> q;
  for (const auto& [k, v] : r.query) {
    q.emplace_back(SigV4UriEncode(k, true), SigV4UriEncode(v, true));
  }
  std::sort(q.begin(), q.end());
  std::vector<std::string> qparts;
  for (const auto& [k, v] : q) qparts.push_back(absl::StrCat(k, "=", v));

  std::map<std::string, std::string> headers;
  for (const auto& [k, v] : r.headers) {
    std::string& slot = headers[absl::AsciiStrToLower(k)];
    absl::StrAppend(&slot, slot.empty() ? "" : ",", CollapseSpaces(v));
  }
  std::string canonical_headers;
  for (const auto& [k, v] : headers) {
    absl::StrAppend(&canonical_headers, k, ":", v, "\n");
  }
  return absl::StrCat(r.method, "\n", SigV4UriEncode(path, false), "\n",
                      absl::StrJoin(qparts, "&"), "\n", canonical_headers, "\n",
                      SignedHeaders(r), "\n", r.payload_hash);
}

std::string SigV4StringToSign(const SigV4Request& r, const SigV4Scope& s) {
  const std::string canonical = SigV4CanonicalRequest(r);
  return absl::StrCat("AWS4-HMAC-SHA256\n", s.amz_date, "\n",
                      CredentialScope(s), "\n", Sha256Hex(AsBytes(canonical)));
}

std::string SigV4Signature(const SigV4Request& r, const SigV4Scope& s,
                           const SigV4Credentials& c) {
  std::string k0 = absl::StrCat(
      "AWS4", absl::string_view(c.secret_access_key.RevealAsString().data(),
                                c.secret_access_key.size()));
  auto k_date = Hmac(AsBytes(k0), s.amz_date.substr(0, 8));
  std::fill(k0.begin(), k0.end(), '\0');
  auto k_region = Hmac(k_date, s.region);
  auto k_service = Hmac(k_region, s.service);
  auto k_signing = Hmac(k_service, "aws4_request");
  return HexEncode(Hmac(k_signing, SigV4StringToSign(r, s)));
}

std::string SigV4Authorization(const SigV4Request& r, const SigV4Scope& s,
                               const SigV4Credentials& c) {
  return absl::StrCat("AWS4-HMAC-SHA256 Credential=", c.access_key_id, "/",
                      CredentialScope(s), ", SignedHeaders=", SignedHeaders(r),
                      ", Signature=", SigV4Signature(r, s, c));
}

}  // namespace bkv
