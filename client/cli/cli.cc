#include "client/cli/cli.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/backup_set.h"
#include "client/blob_store.h"
#include "client/posix_file.h"
#include "client/vault_client.h"
#include "crypto/backup_key.h"
#include "crypto/status_macros.h"

namespace bkv::cli {
namespace {

constexpr char kHelp[] = R"(bkv - encrypted backups under a 64-digit key

usage:
  bkv key new [--out FILE]            make a backup key; print it, or write
                                      it to FILE (mode 0600, must not exist)
  bkv backup PATH --to URL --key-file F [--keep N] [--no-compress]
                                      back up a file or a directory
  bkv restore --from URL --to PATH --key-file F [--backup ID]
                                      restore the newest (or ID) to PATH,
                                      which must not exist
  bkv list --from URL [--key-file F]  backups in the set (with the key), or
                                      the store's objects (without)
  bkv check --from URL --key-file F [--read-data]
                                      verify the backup list against the
                                      objects (every chunk with --read-data);
                                      exit 4 when anything is wrong
  bkv repair --from URL --key-file F  rebuild a damaged or missing backup
                                      list from the backup objects
  bkv vault status|delete             the account's record in the vault
  bkv vault change-password           reads the old and the new password
                                      (two lines) from stdin
password instead of a key file (backup, restore, list):
  --vault ADDR --password-stdin       the key is kept by bkv-vault behind a
                                      password read from stdin; the first
                                      backup registers a new key
  --vault-key HEX                     the vault's public key (64 hex digits,
                                      `bkv-vault hsm status`), pinned; or
                                      $BKV_VAULT_KEY
  --account ID                        or $BKV_ACCOUNT
  --token-file F                      account token; or $BKV_ACCOUNT_TOKEN
  --vault-ca F                        use TLS, trusting these PEM roots
options:
  --json          machine-readable output on stdout
  --chunk-size N  plaintext bytes per chunk (default 65536)
  --help          this text
store URLs:
  file:///dir
  s3://bucket/prefix?endpoint=https://host:port&region=R
      credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
  webdav://host:port/path, webdavs://host/path
      credentials: BKV_WEBDAV_USER, BKV_WEBDAV_PASSWORD
Keys are never taken from the command line: use --key-file.
A progress bar is drawn on stderr when it is a terminal.
exit codes:
  0 success
  1 other failure
  2 usage error
  3 wrong key (or the store refused its credentials)
  4 backup or backup list corrupted or tampered with (see bkv repair)
  5 not found
  6 store unavailable or I/O error
  7 restore target already exists
  8 vault: locked, the key is destroyed (delete, then register anew)
  9 vault: the account token was refused
)";

// Command-line mistakes; ExitFor() maps them to kUsage.
absl::Status Usage(std::string_view msg) {
  return absl::InvalidArgumentError(absl::StrCat("usage: ", std::string(msg)));
}

// The one place a Status becomes an exit code.
int ExitFor(const absl::Status& s) {
  if (absl::IsInvalidArgument(s) && absl::StartsWith(s.message(), "usage: ")) {
    return kUsage;
  }
  if (s.GetPayload("type.googleapis.com/bkv.vault.v1.ErrorDetail")) {
    switch (client::VaultError::From(s).kind) {
      case client::VaultErrorKind::kLocked:
        return kLocked;
      case client::VaultErrorKind::kInvalidPassword:
        return kWrongKey;
      case client::VaultErrorKind::kNotRegistered:
        return kNotFound;
      default:
        break;
    }
  }
  if (s.code() == absl::StatusCode::kUnauthenticated) return kVaultAuth;
  switch (s.code()) {
    case absl::StatusCode::kOk:
      return kOk;
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
      return kWrongKey;
    case absl::StatusCode::kDataLoss:
      return kCorrupted;
    case absl::StatusCode::kNotFound:
      return kNotFound;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kResourceExhausted:
      return kUnavailable;
    case absl::StatusCode::kAlreadyExists:
      return kAlreadyExists;
    default:
      return kFailure;
  }
}

struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::string> values;
  bool json = false;
  bool no_compress = false;
  bool read_data = false;
};

// Flags that take a value. Secrets have no flag by design.
const char* const kValueFlags[] = {
    "--to",        "--from",    "--key-file",   "--out",
    "--backup",    "--keep",    "--chunk-size", "--vault",
    "--vault-key", "--account", "--token-file", "--vault-ca"};

absl::StatusOr<Args> ParseArgs(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--json") {
      a.json = true;
    } else if (arg == "--no-compress") {
      a.no_compress = true;
    } else if (arg == "--read-data") {
      a.read_data = true;
    } else if (arg == "--key" || arg == "--password") {
      return Usage(
          arg +
          " is not accepted: secrets never go on the command line; use "
          "--key-file FILE (or --password-stdin with --vault)");
    } else if (arg == "--password-stdin") {
      a.values[arg] = std::string("1");
    } else if (arg.rfind("--", 0) == 0) {
      bool known = false;
      for (const char* f : kValueFlags) known |= arg == f;
      if (!known) return Usage("unknown option " + arg);
      if (i + 1 >= argc) return Usage(arg + " needs a value");
      a.values[arg] = argv[++i];
    } else {
      a.positional.push_back(arg);
    }
  }
  return a;
}

absl::StatusOr<std::string> Need(const Args& a, const std::string& flag) {
  auto it = a.values.find(flag);
  if (it == a.values.end() || it->second.empty()) {
    return Usage(flag + " is required");
  }
  return it->second;
}

std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

absl::StatusOr<std::string> ReadSmallFile(const std::string& path,
                                          const std::string& what) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, what + " " + path);
  std::string buf(16384, '\0');
  ssize_t n = ::read(fd, buf.data(), buf.size());
  ::close(fd);
  if (n < 0) return ErrnoStatus(errno, "read " + what + " " + path);
  buf.resize(n);
  while (!buf.empty() && (buf.back() == '\n' || buf.back() == '\r')) {
    buf.pop_back();
  }
  return buf;
}

// One line of stdin (the password), without its newline. Never echoed.
absl::StatusOr<SecretBytes> ReadPasswordLine(const char* what) {
  SecretBytes buf(1024);
  size_t n = 0;
  char c;
  while (n < buf.size()) {
    ssize_t r = ::read(STDIN_FILENO, &c, 1);
    if (r < 0) return ErrnoStatus(errno, "read password from stdin");
    if (r == 0 || c == '\n') break;
    buf.RevealMutable()[n++] = static_cast<uint8_t>(c);
  }
  if (n > 0 && buf.Reveal()[n - 1] == '\r') --n;
  if (n == 0) {
    return Usage(absl::StrCat("--password-stdin: no ", what, " on stdin"));
  }
  return SecretBytes::Copy(buf.Reveal().first(n));
}

std::string EnvOr(const Args& a, const std::string& flag, const char* env) {
  if (auto it = a.values.find(flag); it != a.values.end()) return it->second;
  const char* v = std::getenv(env);
  return v ? v : "";
}

struct Vault {
  std::unique_ptr<client::VaultClient> client;
  std::string account;
};

absl::StatusOr<Vault> OpenVault(const Args& a) {
  BKV_ASSIGN_OR_RETURN(std::string address, Need(a, "--vault"));
  client::VaultOptions o;
  o.address = address;
  const std::string key_hex = EnvOr(a, "--vault-key", "BKV_VAULT_KEY");
  if (key_hex.empty()) {
    return Usage("--vault needs --vault-key HEX (or BKV_VAULT_KEY) to pin it");
  }
  BKV_ASSIGN_OR_RETURN(o.server_public_key,
                       client::ParseServerPublicKey(key_hex));
  Vault v;
  v.account = EnvOr(a, "--account", "BKV_ACCOUNT");
  if (v.account.empty())
    return Usage("--vault needs --account (or BKV_ACCOUNT)");
  std::string token;
  if (auto it = a.values.find("--token-file"); it != a.values.end()) {
    BKV_ASSIGN_OR_RETURN(token, ReadSmallFile(it->second, "token file"));
  } else if (const char* t = std::getenv("BKV_ACCOUNT_TOKEN")) {
    token = t;
  }
  if (token.empty()) {
    return Usage(
        "--vault needs an account token: --token-file F or "
        "BKV_ACCOUNT_TOKEN");
  }
  o.account_token = [token] { return token; };
  if (auto it = a.values.find("--vault-ca"); it != a.values.end()) {
    BKV_ASSIGN_OR_RETURN(o.tls_root_certs,
                         ReadSmallFile(it->second, "CA file"));
    o.tls = true;
  }
  BKV_ASSIGN_OR_RETURN(v.client, client::VaultClient::Create(std::move(o)));
  return v;
}

// Where the backup key comes from: a key file, or the vault behind a
// password. With the vault, a backup into an account that has no key yet
// registers a fresh one (`registered` tells the caller).
absl::StatusOr<BackupKey> LoadKey(const Args& a, FILE* err,
                                  bool register_if_absent = false) {
  if (a.values.count("--vault")) {
    if (!a.values.count("--password-stdin")) {
      return Usage(
          "--vault needs --password-stdin (passwords never go on "
          "the command line)");
    }
    BKV_ASSIGN_OR_RETURN(Vault v, OpenVault(a));
    BKV_ASSIGN_OR_RETURN(SecretBytes password, ReadPasswordLine("password"));
    BKV_ASSIGN_OR_RETURN(client::VaultStatus st, v.client->Status());
    if (st.state == client::VaultStatus::State::kNone && register_if_absent) {
      BackupKey key = BackupKey::Generate();
      BKV_RETURN_IF_ERROR(
          v.client->Register(v.account, password, key.secret()));
      std::fprintf(err,
                   "bkv: registered a new backup key in the vault for %s "
                   "(%u attempts)\n",
                   v.account.c_str(), st.attempt_limit ? st.attempt_limit : 10);
      return key;
    }
    auto secret = v.client->Recover(v.account, password);
    if (!secret.ok()) {
      client::VaultError e = client::VaultError::From(secret.status());
      if (e.kind == client::VaultErrorKind::kInvalidPassword) {
        absl::Status s(secret.status().code(),
                       absl::StrCat("wrong password; ", e.attempts_remaining,
                                    " attempts remaining"));
        if (auto p = secret.status().GetPayload(
                "type.googleapis.com/bkv.vault.v1.ErrorDetail")) {
          s.SetPayload("type.googleapis.com/bkv.vault.v1.ErrorDetail", *p);
        }
        return s;
      }
      return secret.status();
    }
    return BackupKey::FromBytes(*secret);
  }
  if (a.values.count("--password-stdin")) {
    return Usage("--password-stdin needs --vault ADDR");
  }
  BKV_ASSIGN_OR_RETURN(std::string path, Need(a, "--key-file"));
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, "key file " + path);
  SecretBytes buf(4096);
  ssize_t n = ::read(fd, buf.RevealMutable().data(), buf.size());
  ::close(fd);
  if (n < 0) return ErrnoStatus(errno, "read key file " + path);
  std::string_view text = buf.RevealAsString().substr(0, n);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) {
    text.remove_suffix(1);
  }
  auto key = BackupKey::Parse(text);
  if (!key.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("key file ", path, ": ", key.status().message()));
  }
  return key;
}

std::string Human(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), u == 0 ? "%.0f %s" : "%.1f %s", bytes,
                units[u]);
  return buf;
}

// A progress bar on stderr, redrawn at most 5 times a second, only on a TTY.
class Progress {
 public:
  Progress(FILE* err, bool enabled) : err_(err), enabled_(enabled) {}
  ProgressFn Fn() {
    if (!enabled_) return nullptr;
    return [this](uint64_t done, uint64_t total) { Update(done, total); };
  }
  void Done() {
    std::lock_guard lock(mu_);
    if (drawn_) std::fputs("\n", err_);
  }

 private:
  void Update(uint64_t done, uint64_t total) {
    std::lock_guard lock(mu_);
    const auto now = std::chrono::steady_clock::now();
    if (drawn_ && now - last_ < std::chrono::milliseconds(200) &&
        done != total) {
      return;
    }
    last_ = now;
    drawn_ = true;
    const double secs =
        std::chrono::duration<double>(now - start_).count() + 1e-9;
    const double rate = done / secs;
    std::string line = absl::StrCat("\r", Human(done));
    if (total > 0) {
      const double frac = std::min(1.0, static_cast<double>(done) / total);
      const int width = 24, fill = static_cast<int>(frac * width);
      const double eta = rate > 0 ? (total - std::min(done, total)) / rate : 0;
      absl::StrAppend(&line, " / ", Human(total), " [", std::string(fill, '#'),
                      std::string(width - fill, '.'), "] ",
                      static_cast<int>(frac * 100), "%  ", Human(rate),
                      "/s  ETA ", static_cast<int>(eta) / 60, ":",
                      absl::Dec(static_cast<int>(eta) % 60, absl::kZeroPad2));
    } else {
      absl::StrAppend(&line, "  ", Human(rate), "/s");
    }
    std::fputs((line + "\033[K").c_str(), err_);
    std::fflush(err_);
  }

  FILE* err_;
  bool enabled_;
  std::mutex mu_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_ =
      std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_;
};

struct Context {
  Args args;
  FILE* out;
  FILE* err;
};

absl::Status KeyNew(Context& c) {
  BackupKey key = BackupKey::Generate();
  SecretBytes text = key.Format();
  auto it = c.args.values.find("--out");
  if (it == c.args.values.end()) {
    if (c.args.json) {
      std::fprintf(c.out, "{\"key\":\"%.*s\"}\n", static_cast<int>(text.size()),
                   text.RevealAsString().data());
    } else {
      std::fprintf(c.out, "%.*s\n", static_cast<int>(text.size()),
                   text.RevealAsString().data());
    }
    return absl::OkStatus();
  }
  BKV_ASSIGN_OR_RETURN(PosixFile file, PosixFile::Create(it->second));
  BKV_RETURN_IF_ERROR(file.Write(text.Reveal()));
  const uint8_t nl = '\n';
  BKV_RETURN_IF_ERROR(file.Write({&nl, 1}));
  BKV_RETURN_IF_ERROR(file.SyncAndClose());
  if (c.args.json) {
    std::fprintf(c.out, "{\"key_file\":%s}\n", JsonString(it->second).c_str());
  } else {
    std::fprintf(c.err,
                 "wrote a new backup key to %s (mode 0600); keep a copy "
                 "offline: without it the backups cannot be read\n",
                 it->second.c_str());
  }
  return absl::OkStatus();
}

// --to creates a file store; --from only reads one, so a vanished store
// directory is "not found" instead of an empty store.
absl::StatusOr<std::unique_ptr<BlobStore>> Store(const Args& a,
                                                 const std::string& flag) {
  BKV_ASSIGN_OR_RETURN(std::string url, Need(a, flag));
  BlobStoreOptions options;
  options.create = flag == "--to";
  return OpenBlobStore(url, options);
}

absl::Status Backup(Context& c) {
  if (c.args.positional.size() != 2) {
    return Usage("bkv backup PATH --to URL ...");
  }
  BKV_ASSIGN_OR_RETURN(auto store, Store(c.args, "--to"));
  BKV_ASSIGN_OR_RETURN(BackupKey key,
                       LoadKey(c.args, c.err, /*register_if_absent=*/true));
  BackupOptions opts;
  opts.compress = !c.args.no_compress;
  if (auto it = c.args.values.find("--keep"); it != c.args.values.end()) {
    if (!absl::SimpleAtoi(it->second, &opts.keep)) {
      return Usage("--keep needs a number");
    }
  }
  if (auto it = c.args.values.find("--chunk-size"); it != c.args.values.end()) {
    if (!absl::SimpleAtoi(it->second, &opts.chunk_size)) {
      return Usage("--chunk-size needs a number");
    }
  }
  Progress progress(c.err, !c.args.json && ::isatty(::fileno(c.err)));
  opts.stream.progress = progress.Fn();
  BackupSet set(*store, key);
  auto r = set.Backup(c.args.positional[1], opts);
  progress.Done();
  if (!r.ok()) return r.status();
  if (c.args.json) {
    std::fprintf(c.out,
                 "{\"id\":\"%s\",\"object\":%s,\"store\":%s,"
                 "\"input_bytes\":%llu,\"stored_bytes\":%llu}\n",
                 r->id.c_str(), JsonString(r->object).c_str(),
                 JsonString(store->url()).c_str(),
                 static_cast<unsigned long long>(r->input_bytes),
                 static_cast<unsigned long long>(r->stored_bytes));
  } else {
    std::fprintf(c.out, "backup %s: %s -> %s (%s)\n", r->id.c_str(),
                 Human(r->input_bytes).c_str(), r->object.c_str(),
                 Human(r->stored_bytes).c_str());
  }
  return absl::OkStatus();
}

absl::Status Restore(Context& c) {
  if (c.args.positional.size() != 1) {
    return Usage("bkv restore --from URL --to PATH --key-file F");
  }
  BKV_ASSIGN_OR_RETURN(auto store, Store(c.args, "--from"));
  BKV_ASSIGN_OR_RETURN(std::string target, Need(c.args, "--to"));
  BKV_ASSIGN_OR_RETURN(BackupKey key, LoadKey(c.args, c.err));
  std::string id;
  if (auto it = c.args.values.find("--backup"); it != c.args.values.end()) {
    id = it->second;
  }
  Progress progress(c.err, !c.args.json && ::isatty(::fileno(c.err)));
  StreamOptions opts;
  opts.progress = progress.Fn();
  BackupSet set(*store, key);
  auto r = set.Restore(id, target, opts);
  progress.Done();
  if (!r.ok()) return r.status();
  if (c.args.json) {
    std::fprintf(c.out, "{\"id\":\"%s\",\"restored_to\":%s}\n", r->id.c_str(),
                 JsonString(target).c_str());
  } else {
    std::fprintf(c.out, "restored backup %s to %s\n", r->id.c_str(),
                 target.c_str());
  }
  return absl::OkStatus();
}

absl::Status List(Context& c) {
  if (c.args.positional.size() != 1) {
    return Usage("bkv list --from URL");
  }
  BKV_ASSIGN_OR_RETURN(auto store, Store(c.args, "--from"));
  if (!c.args.values.count("--key-file") && !c.args.values.count("--vault")) {
    BKV_ASSIGN_OR_RETURN(auto objects, store->List());
    std::string json = "{\"objects\":[";
    for (size_t i = 0; i < objects.size(); ++i) {
      absl::StrAppend(&json, i ? "," : "",
                      "{\"name\":", JsonString(objects[i].name),
                      ",\"size\":", objects[i].size, "}");
      if (!c.args.json) {
        std::fprintf(c.out, "%12llu  %s\n",
                     static_cast<unsigned long long>(objects[i].size),
                     objects[i].name.c_str());
      }
    }
    if (c.args.json) std::fprintf(c.out, "%s]}\n", json.c_str());
    return absl::OkStatus();
  }
  BKV_ASSIGN_OR_RETURN(BackupKey key, LoadKey(c.args, c.err));
  BackupSet set(*store, key);
  BKV_ASSIGN_OR_RETURN(auto records, set.List());
  std::string json = "{\"backups\":[";
  for (size_t i = 0; i < records.size(); ++i) {
    const BackupRecord& r = records[i];
    const char* kind = r.content == BackupContent::kTree ? "tree" : "file";
    absl::StrAppend(&json, i ? "," : "", "{\"id\":\"", r.id,
                    "\",\"object\":", JsonString(r.object),
                    ",\"created\":", r.created_unix, ",\"content\":\"", kind,
                    "\",\"input_bytes\":", r.input_bytes,
                    ",\"stored_bytes\":", r.stored_bytes, "}");
    if (!c.args.json) {
      std::fprintf(c.out, "%s  %s  %-4s  %s\n", r.id.c_str(), r.object.c_str(),
                   kind, Human(r.input_bytes).c_str());
    }
  }
  if (c.args.json) std::fprintf(c.out, "%s]}\n", json.c_str());
  return absl::OkStatus();
}

// A status whose details the command already printed as JSON.
constexpr char kReportedPayload[] = "bkv.cli/reported";

const char* ListStateName(CheckReport::ListState s) {
  switch (s) {
    case CheckReport::ListState::kOk:
      return "ok";
    case CheckReport::ListState::kMissing:
      return "missing";
    case CheckReport::ListState::kDamaged:
      return "damaged";
  }
  return "?";
}

absl::Status Check(Context& c) {
  if (c.args.positional.size() != 1) {
    return Usage("bkv check --from URL --key-file F [--read-data]");
  }
  BKV_ASSIGN_OR_RETURN(auto store, Store(c.args, "--from"));
  BKV_ASSIGN_OR_RETURN(BackupKey key, LoadKey(c.args, c.err));
  BackupSet set(*store, key);
  BKV_ASSIGN_OR_RETURN(CheckReport r, set.Check(c.args.read_data));
  const std::string summary = absl::StrCat(
      "backup list ", ListStateName(r.list), "; ", r.verified, " of ", r.listed,
      " listed backups verified",
      c.args.read_data ? " (all data)" : " (headers)", "; ", r.objects,
      " backup objects; ", r.problems.size(), " problems");
  absl::Status result = absl::OkStatus();
  if (!r.clean()) {
    result = absl::DataLossError(
        absl::StrCat(store->url(), ": ", summary, "; run `bkv repair --from ",
                     store->url(), "` to rebuild the list from the objects"));
  }
  if (c.args.json) {
    std::string json = absl::StrCat(
        "{\"list\":\"", ListStateName(r.list), "\",\"listed\":", r.listed,
        ",\"verified\":", r.verified, ",\"objects\":", r.objects,
        ",\"read_data\":", c.args.read_data ? "true" : "false",
        ",\"problems\":[");
    for (size_t i = 0; i < r.problems.size(); ++i) {
      absl::StrAppend(&json, i ? "," : "", JsonString(r.problems[i]));
    }
    absl::StrAppend(&json, "],\"exit_code\":", ExitFor(result), "}");
    std::fprintf(c.out, "%s\n", json.c_str());
    result.SetPayload(kReportedPayload, absl::Cord("1"));
  } else {
    for (const std::string& p : r.problems) {
      std::fprintf(c.out, "problem: %s\n", p.c_str());
    }
    std::fprintf(c.out, "%s\n", summary.c_str());
  }
  return result;
}

absl::Status Repair(Context& c) {
  if (c.args.positional.size() != 1) {
    return Usage("bkv repair --from URL --key-file F");
  }
  BKV_ASSIGN_OR_RETURN(auto store, Store(c.args, "--from"));
  BKV_ASSIGN_OR_RETURN(BackupKey key, LoadKey(c.args, c.err));
  BackupSet set(*store, key);
  BKV_ASSIGN_OR_RETURN(RepairReport r, set.Repair());
  if (c.args.json) {
    std::string json =
        absl::StrCat("{\"list_before\":\"", ListStateName(r.before),
                     "\",\"rewritten\":", r.rewritten ? "true" : "false",
                     ",\"backups\":", r.records.size(), ",\"added\":", r.added,
                     ",\"dropped\":", r.dropped, ",\"skipped\":[");
    for (size_t i = 0; i < r.skipped.size(); ++i) {
      absl::StrAppend(&json, i ? "," : "", JsonString(r.skipped[i]));
    }
    std::fprintf(c.out, "%s]}\n", json.c_str());
    return absl::OkStatus();
  }
  for (const std::string& s : r.skipped) {
    std::fprintf(c.out, "left out: %s\n", s.c_str());
  }
  if (r.rewritten) {
    std::fprintf(c.out,
                 "backup list was %s; rebuilt it with %zu backups (%zu added, "
                 "%zu dropped)\n",
                 ListStateName(r.before), r.records.size(), r.added, r.dropped);
  } else {
    std::fprintf(c.out, "backup list is intact (%zu backups); nothing to do\n",
                 r.records.size());
  }
  return absl::OkStatus();
}

absl::Status VaultCommand(Context& c) {
  const auto& p = c.args.positional;
  if (p.size() != 2) return Usage("bkv vault status|delete|change-password");
  BKV_ASSIGN_OR_RETURN(Vault v, OpenVault(c.args));
  if (p[1] == "status") {
    BKV_ASSIGN_OR_RETURN(client::VaultStatus st, v.client->Status());
    const char* state =
        st.state == client::VaultStatus::State::kActive   ? "active"
        : st.state == client::VaultStatus::State::kLocked ? "locked"
                                                          : "none";
    if (c.args.json) {
      std::fprintf(c.out,
                   "{\"status\":\"%s\",\"attempts_remaining\":%u,"
                   "\"attempt_limit\":%u}\n",
                   state, st.attempts_remaining, st.attempt_limit);
    } else {
      std::fprintf(c.out, "%s: %s, %u of %u attempts remaining\n",
                   v.account.c_str(), state, st.attempts_remaining,
                   st.attempt_limit);
    }
    return absl::OkStatus();
  }
  if (p[1] == "delete") {
    BKV_RETURN_IF_ERROR(v.client->Delete());
    if (c.args.json) {
      std::fprintf(c.out, "{\"deleted\":true}\n");
    } else {
      std::fprintf(c.out, "%s: record and key deleted from the vault\n",
                   v.account.c_str());
    }
    return absl::OkStatus();
  }
  if (p[1] == "change-password") {
    BKV_ASSIGN_OR_RETURN(SecretBytes old_pw, ReadPasswordLine("old password"));
    BKV_ASSIGN_OR_RETURN(SecretBytes new_pw, ReadPasswordLine("new password"));
    BKV_ASSIGN_OR_RETURN(SecretBytes key, v.client->Recover(v.account, old_pw));
    BKV_RETURN_IF_ERROR(v.client->Register(v.account, new_pw, key));
    std::fprintf(c.out, "%s: password changed; the backup key is the same\n",
                 v.account.c_str());
    return absl::OkStatus();
  }
  return Usage("bkv vault status|delete|change-password");
}

absl::Status Dispatch(Context& c) {
  const auto& p = c.args.positional;
  if (p.empty()) return Usage("no command; see bkv --help");
  if (p[0] == "key" && p.size() == 2 && p[1] == "new") return KeyNew(c);
  if (p[0] == "backup") return Backup(c);
  if (p[0] == "restore") return Restore(c);
  if (p[0] == "list") return List(c);
  if (p[0] == "check") return Check(c);
  if (p[0] == "repair") return Repair(c);
  if (p[0] == "vault") return VaultCommand(c);
  return Usage(absl::StrCat("unknown command '", p[0], "'; see bkv --help"));
}

}  // namespace

int Run(int argc, char** argv, FILE* out, FILE* err) {
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--help" ||
        std::string_view(argv[i]) == "-h") {
      std::fputs(kHelp, out);
      return kOk;
    }
  }
  auto args = ParseArgs(argc, argv);
  if (!args.ok()) {
    std::fprintf(err, "bkv: %s\n",
                 std::string(args.status().message()).c_str());
    return kUsage;
  }
  Context c{std::move(*args), out, err};
  absl::Status s = Dispatch(c);
  if (s.ok()) return kOk;
  std::fprintf(err, "bkv: %s\n", std::string(s.message()).c_str());
  if (c.args.json && !s.GetPayload(kReportedPayload)) {
    std::fprintf(out, "{\"error\":%s,\"exit_code\":%d}\n",
                 JsonString(std::string(s.message())).c_str(), ExitFor(s));
  }
  return ExitFor(s);
}

}  // namespace bkv::cli
