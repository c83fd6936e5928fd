#include "client/s3_blob_store.h"

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "crypto/status_macros.h"

namespace bkv {
namespace {

std::string AmzDate() {
  std::time_t t = std::time(nullptr);
  std::tm tm;
  gmtime_r(&t, &tm);
  char buf[20];
  std::strftime(buf, sizeof(buf), "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

bool Retryable(const absl::Status& s) {
  return absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s);
}

absl::Status FillBuffer(ByteSource& source, std::vector<uint8_t>& buf,
                        size_t want) {
  buf.resize(want);
  size_t got = 0;
  while (got < want) {
    BKV_ASSIGN_OR_RETURN(size_t n, source.Read(std::span(buf).subspan(got)));
    if (n == 0) break;
    got += n;
  }
  buf.resize(got);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<BlobStore>> S3BlobStore::Open(
    const std::string& url, const BlobStoreOptions& options) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(
        "store URL '", url, "': ", absl::string_view(why.data(), why.size()),
        "; expected s3://bucket/prefix?endpoint=http://host:port&region=R"));
  };
  std::string rest = url.substr(5);
  std::string query;
  if (size_t q = rest.find('?'); q != std::string::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  std::string bucket = rest.substr(0, rest.find('/'));
  std::string prefix = rest.find('/') == std::string::npos
                           ? ""
                           : rest.substr(rest.find('/') + 1);
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  if (bucket.empty() || absl::StrContains(bucket, "@")) {
    return bad("missing bucket (or credentials in the URL)");
  }
  std::string endpoint, region = Env("AWS_REGION");
  for (absl::string_view kv : absl::StrSplit(query, '&', absl::SkipEmpty())) {
    std::pair<std::string, std::string> p = absl::StrSplit(kv, '=');
    if (p.first == "endpoint") {
      endpoint = p.second;
    } else if (p.first == "region") {
      region = p.second;
    } else {
      return bad(absl::StrCat("unknown parameter '", p.first, "'"));
    }
  }
  if (region.empty()) region = "us-east-1";
  if (endpoint.empty()) {
    endpoint = absl::StrCat("https://s3.", region, ".amazonaws.com");
  }
  while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
  if (!absl::StartsWith(endpoint, "http://") &&
      !absl::StartsWith(endpoint, "https://")) {
    return bad("endpoint must be http:// or https://");
  }
  SigV4Credentials creds;
  creds.access_key_id = Env("AWS_ACCESS_KEY_ID");
  creds.secret_access_key = SecretBytes::Copy(Env("AWS_SECRET_ACCESS_KEY"));
  creds.session_token = Env("AWS_SESSION_TOKEN");
  if (creds.access_key_id.empty() || creds.secret_access_key.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("store ", url,
                     ": S3 credentials missing; set AWS_ACCESS_KEY_ID and "
                     "AWS_SECRET_ACCESS_KEY"));
  }
  return std::unique_ptr<BlobStore>(new S3BlobStore(
      url, endpoint, bucket, prefix, region, std::move(creds), options));
}

S3BlobStore::S3BlobStore(std::string url, std::string endpoint,
                         std::string bucket, std::string prefix,
                         std::string region, SigV4Credentials credentials,
                         const BlobStoreOptions& options)
    : url_(std::move(url)),
      endpoint_(std::move(endpoint)),
      bucket_(std::move(bucket)),
      prefix_(std::move(prefix)),
      region_(std::move(region)),
      credentials_(std::move(credentials)),
      options_(options),
      http_(options.connect_timeout_s, options.low_speed_timeout_s) {
  host_ = endpoint_.substr(endpoint_.find("://") + 3);
}

std::string S3BlobStore::KeyOf(std::string_view name) const {
  return prefix_.empty() ? std::string(name)
                         : absl::StrCat(prefix_, "/", std::string(name));
}

absl::StatusOr<HttpResponse> S3BlobStore::Send(const Call& call) {
  SigV4Request sig;
  sig.method = call.method;
  sig.path = absl::StrCat("/", bucket_, call.key.empty() ? "" : "/", call.key);
  sig.query = call.query;
  sig.payload_hash = Sha256Hex(call.body);
  std::string qs;
  for (const auto& [k, v] : call.query) {
    absl::StrAppend(&qs, qs.empty() ? "?" : "&", SigV4UriEncode(k, true), "=",
                    SigV4UriEncode(v, true));
  }
  HttpRequest req;
  req.method = call.method;
  req.url = absl::StrCat(endpoint_, SigV4UriEncode(sig.path, false), qs);
  req.body = call.body;
  req.has_body = call.has_body;
  // Once bytes reached the caller's sink a retry would repeat them.
  bool delivered = false;
  ByteSink counted;
  if (call.sink != nullptr) {
    counted = [&](std::span<const uint8_t> d) {
      delivered = true;
      return (*call.sink)(d);
    };
    req.sink = &counted;
  }
  absl::Status last;
  for (int attempt = 0; attempt < std::max(1, options_.max_attempts);
       ++attempt) {
    if (attempt > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(
          options_.retry_base_delay_ms * (1 << (attempt - 1))));
    }
    SigV4Scope scope{AmzDate(), region_, "s3"};
    sig.headers = {{"host", host_},
                   {"x-amz-date", scope.amz_date},
                   {"x-amz-content-sha256", sig.payload_hash}};
    if (!credentials_.session_token.empty()) {
      sig.headers.emplace_back("x-amz-security-token",
                               credentials_.session_token);
    }
    req.headers = sig.headers;
    req.headers.emplace_back("authorization",
                             SigV4Authorization(sig, scope, credentials_));
    auto resp = http_.Send(req);
    if (resp.ok() && resp->status >= 200 && resp->status < 300) return resp;
    last = resp.ok() ? HttpStatusError(req, *resp) : resp.status();
    if (!Retryable(last) || delivered) break;
  }
  return absl::Status(last.code(),
                      absl::StrCat("store ", url_, ": ", last.message()));
}

absl::Status S3BlobStore::Put(std::string_view name, ByteSource& source) {
  BKV_RETURN_IF_ERROR(ValidateBlobName(name));
  const std::string key = KeyOf(name);
  std::vector<uint8_t> buf;
  BKV_RETURN_IF_ERROR(FillBuffer(source, buf, options_.s3_part_size));
  if (buf.size() < options_.s3_part_size) {
    return Send({"PUT", key, {}, buf, true, nullptr}).status();
  }
  return PutMultipart(key, buf, source);
}

absl::Status S3BlobStore::PutMultipart(const std::string& key,
                                       std::vector<uint8_t>& part,
                                       ByteSource& source) {
  BKV_ASSIGN_OR_RETURN(
      HttpResponse created,
      Send({"POST", key, {{"uploads", ""}}, {}, true, nullptr}));
  std::string upload_id;
  size_t pos = 0;
  if (!NextXmlElement(created.body, "UploadId", &pos, &upload_id)) {
    return absl::InternalError(absl::StrCat(
        "store ", url_, ": CreateMultipartUpload reply has no UploadId"));
  }
  std::string complete = "<CompleteMultipartUpload>";
  absl::Status s = [&]() -> absl::Status {
    for (int number = 1; !part.empty(); ++number) {
      if (number > 10000) {
        return absl::OutOfRangeError(
            "object needs more than 10000 parts; raise the part size");
      }
      BKV_ASSIGN_OR_RETURN(
          HttpResponse r,
          Send({"PUT",
                key,
                {{"partNumber", absl::StrCat(number)}, {"uploadId", upload_id}},
                part,
                true,
                nullptr}));
      absl::StrAppend(&complete, "<Part><PartNumber>", number,
                      "</PartNumber><ETag>", r.headers["etag"],
                      "</ETag></Part>");
      BKV_RETURN_IF_ERROR(FillBuffer(source, part, options_.s3_part_size));
    }
    complete += "</CompleteMultipartUpload>";
    BKV_ASSIGN_OR_RETURN(
        HttpResponse done,
        Send({"POST",
              key,
              {{"uploadId", upload_id}},
              std::span(reinterpret_cast<const uint8_t*>(complete.data()),
                        complete.size()),
              true,
              nullptr}));
    // S3 may report a failed completion inside a 200 reply.
    if (absl::StrContains(done.body, "<Error>")) {
      return absl::UnavailableError(absl::StrCat(
          "store ", url_,
          ": CompleteMultipartUpload failed: ", done.body.substr(0, 300)));
    }
    return absl::OkStatus();
  }();
  if (!s.ok()) {
    // The parts are not an object, but they take space until aborted.
    absl::Status aborted =
        Send({"DELETE", key, {{"uploadId", upload_id}}, {}, false, nullptr})
            .status();
    if (!aborted.ok()) {
      std::lock_guard<std::mutex> lock(failed_cleanups_mu_);
      failed_cleanups_.push_back(absl::StrCat(
          "multipart upload ", upload_id, " of ", key,
          " (AbortMultipartUpload failed: ", aborted.message(), ")"));
    }
  }
  return s;
}

std::vector<std::string> S3BlobStore::FailedCleanups() {
  std::lock_guard<std::mutex> lock(failed_cleanups_mu_);
  return failed_cleanups_;
}

absl::Status S3BlobStore::Get(std::string_view name, const ByteSink& sink) {
  BKV_RETURN_IF_ERROR(ValidateBlobName(name));
  return Send({"GET", KeyOf(name), {}, {}, false, &sink}).status();
}

absl::StatusOr<std::vector<BlobInfo>> S3BlobStore::List() {
  std::vector<BlobInfo> out;
  const std::string prefix = prefix_.empty() ? "" : prefix_ + "/";
  std::string token;
  for (int page = 0; page < 100000; ++page) {
    std::vector<std::pair<std::string, std::string>> q = {{"list-type", "2"},
                                                          {"prefix", prefix}};
    if (!token.empty()) q.emplace_back("continuation-token", token);
    auto listed = Send({"GET", "", q, {}, false, nullptr});
    if (absl::IsNotFound(listed.status())) {
      // Only the bucket can be missing (an empty prefix lists as empty).
      return absl::NotFoundError(absl::StrCat(
          "store ", url(), ": bucket ", bucket_,
          " does not exist (a mistyped bucket?); nothing to read. Buckets are "
          "made by their owner, never by bkv"));
    }
    BKV_ASSIGN_OR_RETURN(HttpResponse r, std::move(listed));
    size_t pos = 0;
    std::string contents;
    while (NextXmlElement(r.body, "Key", &pos, &contents)) {
      std::string size;
      size_t spos = pos;
      NextXmlElement(r.body, "Size", &spos, &size);
      std::string name = contents.substr(prefix.size());
      uint64_t n = 0;
      (void)absl::SimpleAtoi(size, &n);
      if (name.find('/') == std::string::npos && ValidateBlobName(name).ok()) {
        out.push_back({name, n});
      }
    }
    pos = 0;
    std::string truncated;
    NextXmlElement(r.body, "IsTruncated", &pos, &truncated);
    pos = 0;
    if (truncated != "true" ||
        !NextXmlElement(r.body, "NextContinuationToken", &pos, &token)) {
      break;
    }
  }
  std::sort(out.begin(), out.end(), [](const BlobInfo& a, const BlobInfo& b) {
    return a.name < b.name;
  });
  return out;
}

absl::StatusOr<std::vector<BlobInfo>> S3BlobStore::Leftovers(bool remove) {
  const std::string prefix = prefix_.empty() ? "" : prefix_ + "/";
  auto listed = Send(
      {"GET", "", {{"prefix", prefix}, {"uploads", ""}}, {}, false, nullptr});
  if (absl::IsUnimplemented(listed.status())) {
    return absl::UnimplementedError(absl::StrCat(
        "store ", url_,
        ": the server cannot list unfinished multipart uploads; give the "
        "bucket a lifecycle rule (AbortIncompleteMultipartUpload) instead"));
  }
  BKV_ASSIGN_OR_RETURN(HttpResponse r, std::move(listed));
  std::vector<BlobInfo> out;
  const int64_t now = std::time(nullptr);
  // <Upload> holds elements, which NextXmlElement does not span.
  for (size_t at = r.body.find("<Upload>"), end;
       at != std::string::npos &&
       (end = r.body.find("</Upload>", at)) != std::string::npos;
       at = r.body.find("<Upload>", end)) {
    const std::string upload = r.body.substr(at, end - at);
    std::string key, id, initiated;
    size_t p = 0;
    NextXmlElement(upload, "Key", &p, &key);
    p = 0;
    NextXmlElement(upload, "UploadId", &p, &id);
    p = 0;
    NextXmlElement(upload, "Initiated", &p, &initiated);
    const int64_t started = ParseUtcTime(initiated, "%Y-%m-%dT%H:%M:%S");
    if (id.empty() || !absl::StartsWith(key, prefix) || started == 0 ||
        started + kS3UploadLeftoverAgeS >= now) {
      continue;
    }
    if (remove) {
      BKV_RETURN_IF_ERROR(
          Send({"DELETE", key, {{"uploadId", id}}, {}, false, nullptr})
              .status());
    }
    out.push_back(
        {absl::StrCat(key.substr(prefix.size()), " (upload ", id, ")"), 0});
  }
  return out;
}

absl::Status S3BlobStore::Delete(std::string_view name) {
  BKV_RETURN_IF_ERROR(ValidateBlobName(name));
  auto r = Send({"DELETE", KeyOf(name), {}, {}, false, nullptr});
  if (absl::IsNotFound(r.status())) return absl::OkStatus();
  return r.status();
}

absl::StatusOr<BlobInfo> S3BlobStore::Stat(std::string_view name) {
  BKV_RETURN_IF_ERROR(ValidateBlobName(name));
  auto r = Send({"HEAD", KeyOf(name), {}, {}, false, nullptr});
  if (absl::IsNotFound(r.status())) {
    return absl::NotFoundError(
        absl::StrCat("object '", std::string(name), "' not found in ", url_));
  }
  if (!r.ok()) return r.status();
  uint64_t size = 0;
  (void)absl::SimpleAtoi(r->headers["content-length"], &size);
  return BlobInfo{std::string(name), size};
}

}  // namespace bkv
