#ifndef BKV_CLIENT_SIGV4_H_
#define BKV_CLIENT_SIGV4_H_

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "crypto/secret_bytes.h"

namespace bkv {

// AWS Signature Version 4, header form ("Signing AWS API requests",
// docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html).
// Checked against the AWS SigV4 test suite in tests/vectors/sigv4/.
// Pure functions; thread-safe.

struct SigV4Credentials {
  std::string access_key_id;
  SecretBytes secret_access_key;
  std::string session_token;  // empty if none
};

struct SigV4Request {
  std::string method;
  // The path as sent, before URI encoding ("/bucket/a b"). Encoded once per
  // segment; `normalize_path` removes "." / ".." segments and duplicate
  // slashes (never for S3, whose keys may contain them).
  std::string path;
  bool normalize_path = false;
  // Decoded query parameters; encoded and sorted by the signer.
  std::vector<std::pair<std::string, std::string>> query;
  // Every header to sign, including host and x-amz-date. Repeated names are
  // joined with ',' in order; values are trimmed and inner runs of spaces
  // collapsed.
  std::vector<std::pair<std::string, std::string>> headers;
  // Hex SHA-256 of the body, or "UNSIGNED-PAYLOAD".
  std::string payload_hash;
};

struct SigV4Scope {
  std::string amz_date;  // "20150830T123600Z"
  std::string region;
  std::string service;
};

// RFC 3986 percent-encoding of everything but unreserved characters (and '/'
// when !encode_slash), upper-case hex, as SigV4 requires.
std::string SigV4UriEncode(std::string_view s, bool encode_slash);

std::string SigV4CanonicalRequest(const SigV4Request& request);
std::string SigV4StringToSign(const SigV4Request& request,
                              const SigV4Scope& scope);
// Lower-case hex signature.
std::string SigV4Signature(const SigV4Request& request, const SigV4Scope& scope,
                           const SigV4Credentials& credentials);
// The Authorization header value.
std::string SigV4Authorization(const SigV4Request& request,
                               const SigV4Scope& scope,
                               const SigV4Credentials& credentials);

// Hex SHA-256, for payload hashes.
std::string Sha256Hex(std::span<const uint8_t> data);

}  // namespace bkv

#endif  // BKV_CLIENT_SIGV4_H_
