#ifndef BKV_CLIENT_HTTP_CLIENT_H_
#define BKV_CLIENT_HTTP_CLIENT_H_

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "client/blob_store.h"
#include "crypto/secret_bytes.h"

namespace bkv {

struct HttpRequest {
  std::string method;
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  // At most one body: bytes (retryable) or a stream of unknown length sent
  // with chunked transfer encoding.
  std::span<const uint8_t> body;
  ByteSource* body_source = nullptr;
  bool has_body = false;
  // Receives the body of a 2xx response as it arrives; other bodies are
  // kept (up to 64 KiB) in HttpResponse::body for error messages.
  const ByteSink* sink = nullptr;
  // HTTP basic auth; the password never appears in a message.
  std::string user;
  const SecretBytes* password = nullptr;
};

struct HttpResponse {
  long status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
  bool sink_called = false;
};

// libcurl behind one easy handle (connections are reused between requests).
// Transport failures become Unavailable/DeadlineExceeded naming the URL; a
// failing body source or sink returns that source's or sink's own status.
// Thread-compatible.
class HttpClient {
 public:
  HttpClient(long connect_timeout_s, long low_speed_timeout_s);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  absl::StatusOr<HttpResponse> Send(const HttpRequest& request);

 private:
  void* curl_;
  long connect_timeout_s_;
  long low_speed_timeout_s_;
};

// For error messages: "HTTP 503 from PUT <url>: <first line of body>".
absl::Status HttpStatusError(const HttpRequest& req, const HttpResponse& resp);

// The value of the first <tag>...</tag> (any namespace prefix) in xml, from
// position *pos on; advances *pos past it. Minimal, for S3/WebDAV replies.
bool NextXmlElement(std::string_view xml, std::string_view tag, size_t* pos,
                    std::string* value);

// A UTC time in a server's reply (strptime `format`, e.g. S3's
// "%Y-%m-%dT%H:%M:%S", WebDAV's RFC 1123 "%a, %d %b %Y %H:%M:%S") as Unix
// time; 0 when unreadable.
int64_t ParseUtcTime(const std::string& text, const char* format);

}  // namespace bkv

#endif  // BKV_CLIENT_HTTP_CLIENT_H_
