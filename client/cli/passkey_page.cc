#include "client/cli/passkey_page.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sodium.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "client/posix_file.h"
#include "crypto/hex.h"
#include "crypto/random.h"

namespace bkv {
namespace {

constexpr char kPasskeyErrorUrl[] = "bkv/passkey-error";
constexpr size_t kMaxRequest = 64 << 10;

// The page. CONFIG is replaced by a JSON object: mode, rp, salt (create) or
// creds [{id, salt}] (get), all bytes as hex. One credential is asked for
// as a discoverable credential, so that another passkey shows up as itself
// (its id) rather than as "no credential"; several need allowCredentials,
// which evalByCredential requires.
constexpr char kPage[] = R"(<!doctype html>
<meta charset="utf-8"><title>bkv passkey</title>
<p id="s">Waiting for your passkey...</p>
<script>
const C = CONFIG;
const hex = s => Uint8Array.from(s.match(/../g) || [], h => parseInt(h, 16));
const toHex = b => Array.from(new Uint8Array(b),
  x => x.toString(16).padStart(2, '0')).join('');
const b64u = b => btoa(String.fromCharCode(...b)).replace(/\+/g, '-')
  .replace(/\//g, '_').replace(/=+$/, '');
const rnd = n => crypto.getRandomValues(new Uint8Array(n));
let done = false;
const show = t => { document.getElementById('s').textContent = t; };
async function post(lines) {
  done = true;
  await fetch('result', {method: 'POST', body: lines.join('\n')});
}
async function create() {
  const cred = await navigator.credentials.create({publicKey: {
    rp: {id: C.rp, name: 'bkv backup'},
    user: {id: rnd(16), name: 'bkv backup', displayName: 'bkv backup'},
    challenge: rnd(32),
    pubKeyCredParams: [{type: 'public-key', alg: -7},
                       {type: 'public-key', alg: -257}],
    authenticatorSelection: {residentKey: 'required',
                             userVerification: 'required'},
    extensions: {prf: {eval: {first: hex(C.salt)}}}}});
  const prf = cred.getClientExtensionResults().prf;
  if (!prf || !prf.enabled) return [cred, null];
  if (prf.results) return [cred, prf];
  return get([{id: toHex(cred.rawId), salt: C.salt}], true);
}
async function get(creds, allow) {
  const pk = {challenge: rnd(32), rpId: C.rp, userVerification: 'required'};
  if (creds.length === 1 && !allow) {
    pk.extensions = {prf: {eval: {first: hex(creds[0].salt)}}};
  } else {
    pk.allowCredentials = creds.map(c => ({type: 'public-key', id: hex(c.id)}));
    const by = {};
    for (const c of creds) by[b64u(hex(c.id))] = {first: hex(c.salt)};
    pk.extensions = {prf: {evalByCredential: by}};
  }
  const a = await navigator.credentials.get({publicKey: pk});
  return [a, a.getClientExtensionResults().prf];
}
async function run() {
  try {
    const [cred, prf] = C.mode === 'create' ? await create()
                                            : await get(C.creds, false);
    if (!prf || !prf.results || !prf.results.first) {
      await post(['error', 'no-prf']);
      return show('This passkey does not support the prf extension.');
    }
    await post(['ok', toHex(cred.rawId), toHex(prf.results.first)]);
    show('Done: you can close this page and return to the terminal.');
  } catch (e) {
    await post(['error', e.name === 'NotAllowedError' ? 'cancelled' : 'failed',
                e.name]);
    show('Failed: ' + e.name);
  }
}
addEventListener('pagehide', () => { if (!done) navigator.sendBeacon('closed'); });
run();
</script>
)";

struct Request {
  std::string method, path, host, origin, cookie, body;
};

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

using Clock = std::chrono::steady_clock;

int MillisLeft(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - Clock::now());
  return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

// Reads one request (headers, then Content-Length bytes) before `deadline`.
std::optional<Request> ReadRequest(int fd, Clock::time_point deadline) {
  std::string in;
  size_t need = std::string::npos;
  char buf[4096];
  while (in.size() < kMaxRequest) {
    size_t end = in.find("\r\n\r\n");
    if (end != std::string::npos && need == std::string::npos) {
      need = end + 4;
      for (auto line : absl::StrSplit(in.substr(0, end), "\r\n")) {
        if (absl::StartsWithIgnoreCase(line, "content-length:")) {
          size_t n = 0;
          if (absl::SimpleAtoi(absl::StripAsciiWhitespace(line.substr(15)),
                               &n) &&
              n < kMaxRequest) {
            need += n;
          }
        }
      }
    }
    if (need != std::string::npos && in.size() >= need) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, MillisLeft(deadline)) <= 0) return std::nullopt;
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n <= 0) return std::nullopt;
    in.append(buf, static_cast<size_t>(n));
  }
  if (need == std::string::npos || in.size() < need) return std::nullopt;
  Request r;
  size_t end = in.find("\r\n\r\n");
  std::vector<std::string> lines = absl::StrSplit(in.substr(0, end), "\r\n");
  std::vector<std::string> first = absl::StrSplit(lines[0], ' ');
  if (first.size() != 3) return std::nullopt;
  r.method = first[0];
  r.path = first[1];
  for (size_t i = 1; i < lines.size(); ++i) {
    absl::string_view l = lines[i];
    size_t colon = l.find(':');
    if (colon == absl::string_view::npos) continue;
    std::string name = absl::AsciiStrToLower(l.substr(0, colon));
    std::string value(absl::StripAsciiWhitespace(l.substr(colon + 1)));
    if (name == "host") r.host = value;
    if (name == "origin") r.origin = value;
    if (name == "cookie") r.cookie = value;
  }
  r.body = in.substr(end + 4, need - end - 4);
  return r;
}

void Respond(int fd, int code, std::string_view type, std::string_view body,
             std::string_view extra_headers = "") {
  std::string out = absl::StrCat(
      "HTTP/1.1 ", code, code == 200 ? " OK" : " Refused",
      "\r\nContent-Type: ", std::string(type),
      "\r\nCache-Control: no-store\r\nReferrer-Policy: no-referrer\r\n"
      "Content-Security-Policy: default-src 'none'; script-src "
      "'unsafe-inline'; connect-src 'self'\r\n",
      std::string(extra_headers), "Content-Length: ", body.size(),
      "\r\nConnection: close\r\n\r\n", std::string(body));
  (void)::send(fd, out.data(), out.size(), MSG_NOSIGNAL);
}

struct Outcome {
  bool finished = false;
  // Review #8: the URL loads once; that load gets this cookie (a second
  // random secret), and only requests carrying it may post a result.
  bool loaded = false;
  std::string cookie;  // "bkv-page=<32 hex>"
  absl::StatusOr<PasskeyPageResult> result = absl::UnknownError("no result");
};

absl::StatusOr<PasskeyPageResult> ParseResult(const std::string& body) {
  std::vector<std::string> f = absl::StrSplit(body, '\n');
  if (f.size() >= 2 && f[0] == "error") {
    if (f[1] == "no-prf") {
      return PasskeyStatus(
          PasskeyError::kNoPrf,
          absl::FailedPreconditionError(
              "the authenticator does not support the WebAuthn prf "
              "extension, so it cannot protect a backup; use a passkey "
              "provider that does (Chrome/Android, iCloud Keychain, a "
              "recent security key)"));
    }
    return PasskeyStatus(
        PasskeyError::kClosed,
        absl::CancelledError(absl::StrCat(
            "the passkey prompt was cancelled or failed in the browser (",
            f.size() > 2 ? f[2] : f[1], "); nothing was changed")));
  }
  if (f.size() != 3 || f[0] != "ok") {
    return absl::InvalidArgumentError("the page sent a malformed result");
  }
  auto cred = HexDecode(f[1]);
  auto out = HexDecode(f[2]);
  if (!cred.ok() || cred->empty() || !out.ok() || out->size() != 32) {
    return absl::InvalidArgumentError("the page sent a malformed result");
  }
  PasskeyPageResult r{*std::move(cred), SecretBytes::Copy(*out)};
  sodium_memzero(out->data(), out->size());
  return r;
}

bool SameSecret(absl::string_view a, absl::string_view b) {
  return a.size() == b.size() &&
         sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

// Whether the request's Cookie header holds the page's cookie.
bool HasCookie(const Request& req, const Outcome& outcome) {
  if (!outcome.loaded) return false;
  for (absl::string_view c : absl::StrSplit(req.cookie, ';')) {
    if (SameSecret(absl::StripAsciiWhitespace(c), outcome.cookie)) return true;
  }
  return false;
}

// The page's one load. A second GET means someone else read the URL: the
// ceremony ends rather than race them.
void ServePage(int fd, const std::string& prefix, const std::string& page,
               Outcome& outcome) {
  if (outcome.loaded) {
    outcome.result = PasskeyStatus(
        PasskeyError::kClosed,
        absl::AbortedError(
            "the passkey page's one-time URL was loaded a second time (by "
            "another program that read it, or a reload): the ceremony is "
            "aborted and nothing was changed; run the command again"));
    outcome.finished = true;
    return Respond(fd, 410, "text/plain", "this one-time page was used\n");
  }
  uint8_t secret[16];
  SystemRandom().Bytes(secret);
  outcome.loaded = true;
  outcome.cookie = "bkv-page=" + HexEncode(secret);
  sodium_memzero(secret, sizeof(secret));
  Respond(fd, 200, "text/html; charset=utf-8", page,
          absl::StrCat("Set-Cookie: ", outcome.cookie, "; Path=", prefix,
                       "; HttpOnly; SameSite=Strict\r\n"));
}

// Handles one request; a result (or the page closing) finishes the run.
void Serve(int fd, const std::string& prefix, const std::string& origin,
           const std::string& page, Outcome& outcome,
           Clock::time_point deadline) {
  auto req = ReadRequest(
      fd, std::min(deadline, Clock::now() + std::chrono::seconds(10)));
  if (!req) return;
  const std::string host = origin.substr(7);  // after "http://"
  if (req->host != host || (!req->origin.empty() && req->origin != origin)) {
    return Respond(fd, 403, "text/plain", "wrong host or origin\n");
  }
  if (req->method == "GET" && SameSecret(req->path, prefix)) {
    return ServePage(fd, prefix, page, outcome);
  }
  if (req->method != "POST" || req->origin != origin) {
    return Respond(fd, 404, "text/plain", "not found\n");
  }
  const bool result = SameSecret(req->path, prefix + "result");
  if (!result && !SameSecret(req->path, prefix + "closed")) {
    return Respond(fd, 404, "text/plain", "not found\n");
  }
  if (!HasCookie(*req, outcome)) {
    return Respond(fd, 403, "text/plain", "not the page's loader\n");
  }
  outcome.result =
      result ? ParseResult(req->body)
             : PasskeyStatus(
                   PasskeyError::kClosed,
                   absl::CancelledError("the passkey page was closed before "
                                        "it finished; nothing was changed"));
  outcome.finished = true;
  Respond(fd, 200, "text/plain", "ok\n");
}

absl::StatusOr<PasskeyPageResult> RunPage(const std::string& config,
                                          const PasskeyPageOptions& options) {
  Fd sock(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (sock.get() < 0) return ErrnoStatus(errno, "passkey page socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (::bind(sock.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      ::listen(sock.get(), 16) != 0 ||
      ::getsockname(sock.get(), reinterpret_cast<sockaddr*>(&addr), &len)) {
    return ErrnoStatus(errno, "passkey page on 127.0.0.1");
  }
  uint8_t secret[16];
  SystemRandom().Bytes(secret);
  const std::string origin =
      absl::StrCat("http://", options.rp_id, ":", ntohs(addr.sin_port));
  const std::string prefix = absl::StrCat("/", HexEncode(secret), "/");
  const std::string page = absl::StrReplaceAll(kPage, {{"CONFIG", config}});
  options.on_url(origin + prefix);
  const auto deadline = Clock::now() + std::chrono::seconds(options.timeout_s);
  Outcome outcome;
  while (!outcome.finished) {
    pollfd p{sock.get(), POLLIN, 0};
    int n = ::poll(&p, 1, MillisLeft(deadline));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return PasskeyStatus(
          PasskeyError::kTimedOut,
          absl::DeadlineExceededError(absl::StrCat(
              "no passkey result from the browser within ", options.timeout_s,
              " s (--passkey-timeout); nothing was changed")));
    }
    Fd conn(::accept4(sock.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (conn.get() >= 0) {
      Serve(conn.get(), prefix, origin, page, outcome, deadline);
    }
  }
  return std::move(outcome.result);
}

bool ValidRpId(const std::string& rp) {
  for (char c : rp) {
    if (!absl::ascii_isalnum(c) && c != '.' && c != '-') return false;
  }
  // The page is served from loopback, so the rp id must resolve there:
  // "localhost" or a name under it (browsers treat both as secure).
  return rp == "localhost" || absl::EndsWith(rp, ".localhost");
}

// Without --rp-id: the default when a slot has it, else the first
// slot's (one ceremony runs under one rp id).
std::string RpIdOfSlots(const std::vector<PasskeyParams>& enrolled) {
  for (const PasskeyParams& p : enrolled) {
    if (p.rp_id == kDefaultRpId) return p.rp_id;
  }
  return enrolled.empty() ? kDefaultRpId : enrolled.front().rp_id;
}

}  // namespace

absl::Status PasskeyStatus(PasskeyError kind, absl::Status status) {
  status.SetPayload(kPasskeyErrorUrl,
                    absl::Cord(absl::StrCat(static_cast<int>(kind))));
  return status;
}

std::optional<PasskeyError> PasskeyErrorOf(const absl::Status& status) {
  auto p = status.GetPayload(kPasskeyErrorUrl);
  if (!p) return std::nullopt;
  int v = std::string(*p)[0] - '0';
  if (v < 0 || v > static_cast<int>(PasskeyError::kClosed)) return std::nullopt;
  return static_cast<PasskeyError>(v);
}

std::string RpIdToEnrol(const PasskeyPageOptions& options) {
  return options.rp_id.empty() ? kDefaultRpId : options.rp_id;
}

absl::StatusOr<PasskeyPageResult> CreatePasskeyOnPage(
    const std::array<uint8_t, PasskeyParams::kSaltSize>& salt,
    const PasskeyPageOptions& given) {
  PasskeyPageOptions options = given;
  options.rp_id = RpIdToEnrol(given);
  if (!ValidRpId(options.rp_id)) {
    return absl::InvalidArgumentError(
        "--rp-id must be localhost or a name under .localhost: the page is "
        "served on loopback");
  }
  return RunPage(absl::StrCat("{\"mode\":\"create\",\"rp\":\"", options.rp_id,
                              "\",\"salt\":\"", HexEncode(salt), "\"}"),
                 options);
}

absl::StatusOr<PasskeyPageResult> GetPasskeyOnPage(
    const std::vector<PasskeyParams>& enrolled,
    const PasskeyPageOptions& given) {
  PasskeyPageOptions options = given;
  if (options.rp_id.empty()) options.rp_id = RpIdOfSlots(enrolled);
  if (!ValidRpId(options.rp_id)) {
    return absl::InvalidArgumentError(
        "--rp-id must be localhost or a name under .localhost");
  }
  std::string creds;
  for (const PasskeyParams& p : enrolled) {
    if (p.rp_id != options.rp_id) continue;
    absl::StrAppend(&creds, creds.empty() ? "" : ",", "{\"id\":\"",
                    HexEncode(p.credential_id), "\",\"salt\":\"",
                    HexEncode(p.salt), "\"}");
  }
  if (creds.empty()) {
    return PasskeyStatus(
        PasskeyError::kOtherPasskey,
        absl::NotFoundError(absl::StrCat("this set has no passkey slot for "
                                         "relying party ",
                                         options.rp_id, " (bkv slot list)")));
  }
  return RunPage(absl::StrCat("{\"mode\":\"get\",\"rp\":\"", options.rp_id,
                              "\",\"creds\":[", creds, "]}"),
                 options);
}

}  // namespace bkv
