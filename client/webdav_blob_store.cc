#include "client/webdav_blob_store.h"

#include <cstdlib>
#include <ctime>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/sigv4.h"
#include "crypto/hex.h"
#include "crypto/random.h"
#include "crypto/status_macros.h"

namespace bkv {
namespace {

HttpRequest Req(std::string method, std::string url) {
  HttpRequest r;
  r.method = std::move(method);
  r.url = std::move(url);
  return r;
}

}  // namespace

absl::StatusOr<std::unique_ptr<BlobStore>> WebDavBlobStore::Open(
    const std::string& url, const BlobStoreOptions& options) {
  const bool tls = absl::StartsWith(url, "webdavs://");
  std::string rest = url.substr(tls ? 10 : 9);
  const size_t slash = rest.find('/');
  std::string host = rest.substr(0, slash);
  std::string path = slash == std::string::npos ? "/" : rest.substr(slash);
  if (host.empty() || absl::StrContains(host, "@") ||
      absl::StrContains(path, "?")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "store URL '", url,
        "': expected webdav(s)://host[:port]/path; credentials go in "
        "BKV_WEBDAV_USER / BKV_WEBDAV_PASSWORD, not the URL"));
  }
  if (path.back() != '/') path += '/';
  std::unique_ptr<WebDavBlobStore> store(
      new WebDavBlobStore(url, absl::StrCat(tls ? "https://" : "http://", host),
                          SigV4UriEncode(path, false), options));
  if (const char* user = std::getenv("BKV_WEBDAV_USER")) {
    store->user_ = user;
    const char* pw = std::getenv("BKV_WEBDAV_PASSWORD");
    store->password_ = SecretBytes::Copy(std::string_view(pw ? pw : ""));
    store->has_auth_ = true;
  }
  return std::unique_ptr<BlobStore>(std::move(store));
}

WebDavBlobStore::WebDavBlobStore(std::string url, std::string base,
                                 std::string path,
                                 const BlobStoreOptions& options)
    : url_(std::move(url)),
      base_(std::move(base)),
      path_(std::move(path)),
      create_(options.create),
      http_(options.connect_timeout_s, options.low_speed_timeout_s) {}

absl::StatusOr<HttpResponse> WebDavBlobStore::Send(
    HttpRequest req, std::initializer_list<long> ok) {
  if (has_auth_) {
    req.user = user_;
    req.password = &password_;
  }
  auto resp = http_.Send(req);
  if (!resp.ok()) {
    return absl::Status(
        resp.status().code(),
        absl::StrCat("store ", url_, ": ", resp.status().message()));
  }
  for (long code : ok) {
    if (resp->status == code) return resp;
  }
  absl::Status s = HttpStatusError(req, *resp);
  return absl::Status(s.code(),
                      absl::StrCat("store ", url_, ": ", s.message()));
}

absl::Status WebDavBlobStore::EnsureCollection() {
  if (collection_ready_) return absl::OkStatus();
  // MKCOL each level; 405 means it exists already.
  std::string partial = "/";
  for (absl::string_view seg : absl::StrSplit(path_, '/', absl::SkipEmpty())) {
    absl::StrAppend(&partial, seg, "/");
    HttpRequest req = Req("MKCOL", base_ + partial);
    BKV_RETURN_IF_ERROR(Send(req, {201, 405}).status());
  }
  collection_ready_ = true;
  return absl::OkStatus();
}

absl::Status WebDavBlobStore::Put(std::string_view name, ByteSource& source) {
  BKV_RETURN_IF_ERROR(ValidateBlobName(name));
  BKV_RETURN_IF_ERROR(EnsureCollection());
  uint8_t rnd[8];
  SystemRandom().Bytes(rnd);
  const std::string tmp = absl::StrCat(base_, path_, kTempPrefix,
                                       HexEncode(rnd), "-", std::string(name));
  const std::string dest = absl::StrCat(base_, path_, std::string(name));
  HttpRequest put = Req("PUT", tmp);
  put.body_source = &source;
  absl::Status s = Send(put, {200, 201, 204}).status();
  if (s.ok()) {
    HttpRequest move = Req("MOVE", tmp);
    move.headers = {{"Destination", dest}, {"Overwrite", "T"}};
    s = Send(move, {201, 204}).status();
  }
  if (!s.ok()) (void)Send(Req("DELETE", tmp), {200, 204, 404});
  return s;
}

absl::Status WebDavBlobStore::Get(std::string_view name, const ByteSink& sink) {
  BKV_RETURN_IF_ERROR(ValidateBlobName(name));
  HttpRequest req = Req("GET", absl::StrCat(base_, path_, std::string(name)));
  req.sink = &sink;
  return Send(req, {200}).status();
}

absl::StatusOr<std::vector<WebDavBlobStore::Member>>
WebDavBlobStore::Members() {
  HttpRequest req = Req("PROPFIND", base_ + path_);
  req.headers = {{"Depth", "1"}};
  auto r = Send(req, {207});
  if (absl::IsNotFound(r.status())) {
    // A writer's first Put makes the collection; a reader names the typo.
    if (create_) return std::vector<Member>{};
    return absl::NotFoundError(absl::StrCat(
        "store ", url_, ": no collection at ", path_,
        " (a mistyped path?); nothing to read. A first backup creates it"));
  }
  if (!r.ok()) return r.status();
  std::vector<Member> out;
  size_t pos = 0;
  std::string href;
  while (NextXmlElement(r->body, "href", &pos, &href)) {
    // This response's properties run to the next href.
    size_t next = pos;
    std::string ignored, len, modified;
    size_t end = NextXmlElement(r->body, "href", &next, &ignored)
                     ? next
                     : r->body.size();
    std::string_view props = std::string_view(r->body).substr(pos, end - pos);
    Member m;
    m.name = href.substr(href.rfind('/') + 1);
    m.collection = absl::StrContains(
        absl::string_view(props.data(), props.size()), "collection");
    size_t p = 0;
    if (NextXmlElement(props, "getcontentlength", &p, &len)) {
      (void)absl::SimpleAtoi(len, &m.size);
    }
    p = 0;
    if (NextXmlElement(props, "getlastmodified", &p, &modified)) {
      m.modified_unix = ParseUtcTime(modified, "%a, %d %b %Y %H:%M:%S");
    }
    out.push_back(std::move(m));
  }
  return out;
}

absl::StatusOr<std::vector<BlobInfo>> WebDavBlobStore::List() {
  BKV_ASSIGN_OR_RETURN(std::vector<Member> members, Members());
  std::vector<BlobInfo> out;
  for (const Member& m : members) {
    // Temporaries and odd names are not objects.
    if (m.collection || !ValidateBlobName(m.name).ok()) continue;
    out.push_back({m.name, m.size});
  }
  std::sort(out.begin(), out.end(), [](const BlobInfo& a, const BlobInfo& b) {
    return a.name < b.name;
  });
  return out;
}

// A `tmp~*` member is a live Put's only while it is written (nginx keeps
// the body elsewhere until the PUT completes) or between its PUT and MOVE:
// either way modified in the last kLeftoverMinAgeS. An undated one is kept.
absl::StatusOr<std::vector<BlobInfo>> WebDavBlobStore::Leftovers(bool remove) {
  BKV_ASSIGN_OR_RETURN(std::vector<Member> members, Members());
  std::vector<BlobInfo> out;
  const int64_t now = std::time(nullptr);
  for (const Member& m : members) {
    if (m.collection || !absl::StartsWith(m.name, kTempPrefix) ||
        m.modified_unix == 0 || m.modified_unix + kLeftoverMinAgeS >= now) {
      continue;
    }
    if (remove) {
      BKV_RETURN_IF_ERROR(
          Send(Req("DELETE", absl::StrCat(base_, path_, m.name)),
               {200, 204, 404})
              .status());
    }
    out.push_back({m.name, m.size});
  }
  return out;
}

absl::Status WebDavBlobStore::Delete(std::string_view name) {
  BKV_RETURN_IF_ERROR(ValidateBlobName(name));
  HttpRequest req =
      Req("DELETE", absl::StrCat(base_, path_, std::string(name)));
  return Send(req, {200, 204, 404}).status();
}

absl::StatusOr<BlobInfo> WebDavBlobStore::Stat(std::string_view name) {
  BKV_RETURN_IF_ERROR(ValidateBlobName(name));
  HttpRequest req = Req("HEAD", absl::StrCat(base_, path_, std::string(name)));
  auto r = Send(req, {200});
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
