#include "client/http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <mutex>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace bkv {
namespace {

constexpr size_t kMaxErrorBody = 64 << 10;

struct Transfer {
  const HttpRequest* req;
  HttpResponse* resp;
  CURL* curl;
  std::span<const uint8_t> body;
  absl::Status body_status;
  absl::Status sink_status;
};

size_t ReadCb(char* buf, size_t size, size_t n, void* p) {
  auto* t = static_cast<Transfer*>(p);
  std::span<uint8_t> out(reinterpret_cast<uint8_t*>(buf), size * n);
  if (t->req->body_source != nullptr) {
    auto got = t->req->body_source->Read(out);
    if (!got.ok()) {
      t->body_status = got.status();
      return CURL_READFUNC_ABORT;
    }
    return *got;
  }
  const size_t k = std::min(out.size(), t->body.size());
  if (k > 0) std::memcpy(out.data(), t->body.data(), k);
  t->body = t->body.subspan(k);
  return k;
}

size_t WriteCb(char* data, size_t size, size_t n, void* p) {
  auto* t = static_cast<Transfer*>(p);
  const size_t len = size * n;
  long code = 0;
  curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &code);
  if (t->req->sink != nullptr && code >= 200 && code < 300) {
    t->resp->sink_called = true;
    t->sink_status =
        (*t->req->sink)(std::span(reinterpret_cast<const uint8_t*>(data), len));
    return t->sink_status.ok() ? len : 0;
  }
  if (t->resp->body.size() < kMaxErrorBody) {
    t->resp->body.append(data, std::min(len, kMaxErrorBody));
  }
  return len;
}

size_t HeaderCb(char* data, size_t size, size_t n, void* p) {
  auto* t = static_cast<Transfer*>(p);
  absl::string_view line(data, size * n);
  const size_t colon = line.find(':');
  if (colon != absl::string_view::npos) {
    t->resp->headers[absl::AsciiStrToLower(line.substr(0, colon))] =
        std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
  }
  return size * n;
}

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace

HttpClient::HttpClient(long connect_timeout_s, long low_speed_timeout_s)
    : connect_timeout_s_(connect_timeout_s),
      low_speed_timeout_s_(low_speed_timeout_s) {
  GlobalInit();
  curl_ = curl_easy_init();
}

HttpClient::~HttpClient() { curl_easy_cleanup(static_cast<CURL*>(curl_)); }

absl::StatusOr<HttpResponse> HttpClient::Send(const HttpRequest& req) {
  CURL* c = static_cast<CURL*>(curl_);
  if (c == nullptr) return absl::InternalError("curl_easy_init failed");
  curl_easy_reset(c);
  HttpResponse resp;
  Transfer t{&req, &resp, c, req.body, absl::OkStatus(), absl::OkStatus()};
  curl_slist* headers = nullptr;
  for (const auto& [k, v] : req.headers) {
    headers = curl_slist_append(headers, absl::StrCat(k, ": ", v).c_str());
  }
  // No "Expect: 100-continue" round trip before uploads.
  headers = curl_slist_append(headers, "Expect:");
  curl_easy_setopt(c, CURLOPT_URL, req.url.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, connect_timeout_s_);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, low_speed_timeout_s_);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, WriteCb);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, HeaderCb);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
  if (req.method == "HEAD") {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (req.method != "GET") {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  }
  if (req.has_body || req.body_source != nullptr) {
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, ReadCb);
    curl_easy_setopt(c, CURLOPT_READDATA, &t);
    if (req.body_source == nullptr) {
      curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE,
                       static_cast<curl_off_t>(req.body.size()));
    } else {
      headers = curl_slist_append(headers, "Transfer-Encoding: chunked");
    }
  }
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  std::string userpwd;
  if (req.password != nullptr) {
    userpwd =
        absl::StrCat(req.user, ":",
                     absl::string_view(req.password->RevealAsString().data(),
                                       req.password->size()));
    curl_easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
    curl_easy_setopt(c, CURLOPT_USERPWD, userpwd.c_str());
  }
  const CURLcode rc = curl_easy_perform(c);
  curl_slist_free_all(headers);
  if (!userpwd.empty()) {
    std::fill(userpwd.begin(), userpwd.end(), '\0');
    curl_easy_setopt(c, CURLOPT_USERPWD, nullptr);
  }
  if (!t.body_status.ok()) return t.body_status;
  if (!t.sink_status.ok()) return t.sink_status;
  if (rc != CURLE_OK) {
    const std::string msg = absl::StrCat(req.method, " ", req.url,
                                         " failed: ", curl_easy_strerror(rc));
    if (rc == CURLE_OPERATION_TIMEDOUT) return absl::DeadlineExceededError(msg);
    return absl::UnavailableError(msg);
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp.status);
  return resp;
}

absl::Status HttpStatusError(const HttpRequest& req, const HttpResponse& resp) {
  std::string detail = resp.body.substr(0, 300);
  for (char& ch : detail) {
    if (ch == '\n' || ch == '\r') ch = ' ';
  }
  std::string msg =
      absl::StrCat("HTTP ", resp.status, " from ", req.method, " ", req.url,
                   detail.empty() ? "" : ": ", detail);
  if (resp.status == 404) return absl::NotFoundError(msg);
  if (resp.status == 401 || resp.status == 403) {
    return absl::PermissionDeniedError(
        absl::StrCat(msg, " (check the store credentials)"));
  }
  // Not Implemented: the server lacks the operation; retrying cannot help.
  if (resp.status == 501) return absl::UnimplementedError(msg);
  if (resp.status == 429 || resp.status >= 500) {
    return absl::UnavailableError(msg);
  }
  return absl::FailedPreconditionError(msg);
}

bool NextXmlElement(std::string_view xml, std::string_view tag, size_t* pos,
                    std::string* value) {
  // Matches <tag>, <x:tag> and <tag attr=...>.
  while (*pos < xml.size()) {
    size_t open = xml.find('<', *pos);
    if (open == std::string_view::npos) return false;
    size_t end = xml.find('>', open);
    if (end == std::string_view::npos) return false;
    std::string_view name = xml.substr(open + 1, end - open - 1);
    *pos = end + 1;
    if (name.empty() || name[0] == '/' || name.back() == '/') continue;
    name = name.substr(0, name.find(' '));
    if (size_t colon = name.find(':'); colon != std::string_view::npos) {
      name = name.substr(colon + 1);
    }
    if (name != tag) continue;
    size_t close = xml.find("</", *pos);
    if (close == std::string_view::npos) return false;
    *value = std::string(xml.substr(*pos, close - *pos));
    *pos = close;
    return true;
  }
  return false;
}

int64_t ParseUtcTime(const std::string& text, const char* format) {
  struct tm tm = {};
  const char* end = ::strptime(text.c_str(), format, &tm);
  return end == nullptr ? 0 : static_cast<int64_t>(::timegm(&tm));
}

}  // namespace bkv
