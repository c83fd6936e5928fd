#include "client/cli/cli.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "bkv/vault/v1/error_detail.h"
#include "client/backup_set.h"
#include "client/blob_store.h"
#include "client/cancellable_blob_store.h"
#include "client/cli/interrupt.h"
#include "client/cli/password.h"
#include "client/cli/settings.h"
#include "client/cli/slot_command.h"
#include "client/key_slots.h"
#include "client/posix_file.h"
#include "client/repo/repository.h"
#include "client/vault_client.h"
#include "crypto/backup_key.h"
#include "crypto/status_macros.h"

namespace bkv::cli {
namespace {

constexpr char kHelp[] = R"(bkv - encrypted backups under a 64-digit key

usage:
  bkv key new [--out FILE]            make a backup key; print it, or write
                                      it to FILE (mode 0600, must not exist)
  bkv backup PATH --to URL --key-file F
                                      back up a file or a directory as a
                                      new snapshot: only changed files are
                                      read, only new chunks uploaded
  bkv restore --from URL --to PATH --key-file F
              [--snapshot ID|latest [--path P]]
                                      restore the newest snapshot (or ID;
                                      only P of it) to PATH, which must not
                                      exist or be an empty folder
  bkv snapshots --from URL --key-file F
                                      the snapshots, oldest first
  bkv forget --from URL --key-file F [--keep-last N] [--keep-daily N]
             [--keep-weekly N]        drop the snapshots no rule keeps
  bkv prune --from URL --key-file F   free the data no snapshot references
  bkv check --from URL --key-file F [--read-data]
                                      verify the repository (every chunk
                                      with --read-data); exit 4 when
                                      anything is wrong
  single-stream (v1) backup sets, written before v2 was the default:
  bkv restore ... [--backup ID|latest]
                                      restores them (the format is detected)
  bkv list --from URL [--key-file F]  backups in a v1 set (with the key), or
                                      the store's objects (without)
  bkv repair --from URL --key-file F  rebuild a v1 set's damaged list
  bkv backup ... --format 1 [--keep N]
                                      add a v1 backup (deprecated)
  bkv vault status                    the account's record in the vault
  bkv vault delete [--password-stdin] delete it (an active one needs its
                                      password or a due reset)
  bkv vault change-password           asks for the current and the new
                                      password (or two lines of stdin with
                                      --password-stdin)
  bkv vault reset --request|--complete
                                      forgot the password: ask for a reset,
                                      then set a new one once it is due
  bkv slot list|add|remove --from URL
                                      the set's ways in (key slots): add a
                                      passkey, a recovery key or the vault
                                      password; re-uploads nothing
  bkv rekey --from URL --to NEWURL    a new master key, into an empty store
  bkv completion bash                 a bash completion script for bkv
  bkv COMMAND --help                  the command's flags
a passkey instead of a key file (every command that opens a set):
  --passkey [--open] [--rp-id ID] [--passkey-timeout S]
                                      serves a one-time page on 127.0.0.1,
                                      prints its URL (opens $BROWSER with
                                      --open); rp id localhost by default
password instead of a key file (backup, restore, list):
  --vault ADDR [--password-stdin]     the key is kept by bkv-vault behind a
                                      password, asked on the terminal (twice
                                      when set; 8+ characters, 30+ bits by
                                      zxcvbn) or read from stdin; the first
                                      backup registers a new key;
                                      ADDR,ADDR,... names several nodes of
                                      one vault (failover, docs/operations.md)
  --vault-key HEX                     the vault's public key (64 hex digits,
                                      `bkv-vault hsm status`), pinned; or
                                      $BKV_VAULT_KEY
  --account ID                        or $BKV_ACCOUNT
  --token-file F                      account token; or $BKV_ACCOUNT_TOKEN
  --vault-ca F                        use TLS, trusting these PEM roots
                                      (required unless the vault is on
                                      loopback)
  --insecure-plaintext                plaintext to a non-loopback vault:
                                      DANGEROUS, the account token goes
                                      out in the clear
  --opaque-context S, --server-identity S
                                      must match the vault's (GetVaultInfo)
  --max-wait SECONDS                  longest wait when the vault asks to
                                      retry later (default 5)
options:
  --json          machine-readable output on stdout (schemas:
                  docs/operations.md, "JSON output")
  --lock-wait S   backup: wait up to S seconds (default 300) for a
                  running prune to finish
  --help          this text
  --version       the version
store URLs:
  file:///dir
  s3://bucket/prefix?endpoint=https://host:port&region=R
      credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
  webdav://host:port/path, webdavs://host/path
      credentials: BKV_WEBDAV_USER, BKV_WEBDAV_PASSWORD
settings: flags first, then the environment, then a config file
  (--config FILE, else $XDG_CONFIG_HOME/bkv/config.toml or
  ~/.config/bkv/config.toml; TOML, e.g. store = "file:///backups"):
  BKV_STORE (store: --to of backup, --from of the rest), BKV_KEY_FILE
  (key_file), BKV_VAULT (vault), BKV_VAULT_KEY (vault_key), BKV_ACCOUNT
  (account), BKV_TOKEN_FILE (token_file), BKV_VAULT_CA (vault_ca),
  BKV_ACCOUNT_TOKEN (never in the file: no secret is). docs/operations.md,
  "Client settings"
Keys are never taken from the command line: use --key-file.
A progress bar is drawn on stderr when it is a terminal.
exit codes:
  0 success
  1 other failure
  2 usage error, or a vault that is not the configured one
  3 wrong key (or the store refused its credentials)
  4 backup or backup list corrupted or tampered with (see bkv repair)
  5 not found
  6 store unavailable or I/O error
  7 the output already exists (a restore target that is not an empty
    folder, the FILE of key new --out)
  8 vault: locked, the key is destroyed (delete, then register anew)
  9 vault: the account token was refused
  10 passkey: the passkey used has no slot in this set (another passkey)
  11 passkey: its PRF output does not open its slot (another salt)
  12 passkey: the authenticator does not support the prf extension
  13 passkey page: no result before --passkey-timeout (default 120 s)
  14 passkey page: closed, or the browser's prompt was cancelled
  130 interrupted by SIGINT (Ctrl-C), 143 by SIGTERM: the run's temporary
      objects and partial files were deleted
)";

// Command-line mistakes carry this payload; ExitFor() maps them to kUsage.
constexpr char kUsageUrl[] = "bkv.cli/Usage";

absl::Status Usage(std::string_view msg) {
  absl::Status s =
      absl::InvalidArgumentError(absl::StrCat("usage: ", std::string(msg)));
  s.SetPayload(kUsageUrl, absl::Cord("1"));
  return s;
}

// A command stopped by a signal carries its number; the exit code is
// 128 + signal, as a shell reports a process the signal ended.
constexpr char kSignalUrl[] = "bkv.cli/Signal";

absl::Status Interrupted(int sig) {
  absl::Status s = absl::CancelledError(
      "interrupted: cleaned up: this run's temporary objects and partial "
      "files were deleted (objects it completed stay for the next run to "
      "reuse or prune)");
  s.SetPayload(kSignalUrl, absl::Cord(absl::StrCat(sig)));
  return s;
}

// The one place a Status becomes an exit code.
int ExitFor(const absl::Status& s) {
  if (s.GetPayload(kUsageUrl)) return kUsage;
  if (auto kind = PasskeyErrorOf(s)) {
    switch (*kind) {
      case PasskeyError::kOtherPasskey:
        return kOtherPasskey;
      case PasskeyError::kWrongOutput:
        return kPasskeyOutput;
      case PasskeyError::kNoPrf:
        return kNoPrf;
      case PasskeyError::kTimedOut:
        return kPageTimedOut;
      case PasskeyError::kClosed:
        return kPageClosed;
    }
  }
  if (auto sig = s.GetPayload(kSignalUrl)) {
    int n = 0;
    (void)absl::SimpleAtoi(std::string(*sig), &n);
    return kInterruptedBase + n;
  }
  if (vault::v1::ErrorDetailOf(s).has_value()) {
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
  if (client::VaultError::From(s).kind == client::VaultErrorKind::kConfig) {
    return kUsage;
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

// Flags that take no value.
const char* const kBoolFlags[] = {"--password-stdin",
                                  "--insecure-plaintext",
                                  "--request",
                                  "--complete",
                                  "--incremental",
                                  "--passkey",
                                  "--open"};

// Accepted and ignored, with a note on stderr.
constexpr char kIncrementalNote[] =
    "bkv: --incremental is deprecated: incremental (v2) is the default\n";

// Flags that take a value. Secrets have no flag by design.
const char* const kValueFlags[] = {"--to",
                                   "--from",
                                   "--key-file",
                                   "--out",
                                   "--backup",
                                   "--snapshot",
                                   "--keep-last",
                                   "--keep-daily",
                                   "--keep-weekly",
                                   "--format",
                                   "--lock-wait",
                                   "--path",
                                   "--keep",
                                   "--chunk-size",
                                   "--vault",
                                   "--vault-key",
                                   "--account",
                                   "--token-file",
                                   "--vault-ca",
                                   "--opaque-context",
                                   "--server-identity",
                                   "--max-wait",
                                   "--config",
                                   "--rp-id",
                                   "--passkey-timeout"};

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
    } else if (std::find(std::begin(kBoolFlags), std::end(kBoolFlags), arg) !=
               std::end(kBoolFlags)) {
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

std::string JsonArray(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) {
    absl::StrAppend(&out, i ? "," : "", JsonString(items[i]));
  }
  return out + "]";
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

// The vault password from stdin (--password-stdin) or the terminal's prompt
// (client/cli/password.h); a missing or mistyped one is a usage error.
absl::StatusOr<SecretBytes> AskPassword(const Args& a, const char* what) {
  auto pw = cli::ReadPassword(a.values.count("--password-stdin") > 0, what);
  if (!pw.ok()) return Usage(std::string(pw.status().message()));
  return pw;
}

// A password being set: asked twice on a terminal, and strong enough.
absl::Status ConfirmNewPassword(const Args& a, const SecretBytes& pw,
                                const std::string& account) {
  absl::Status s = cli::ConfirmNewPassword(
      a.values.count("--password-stdin") > 0, pw, account);
  return s.ok() ? s : Usage(std::string(s.message()));
}

// A flag's value, or "" (settings.h already filled in the environment's
// and the config file's).
std::string Value(const Args& a, const std::string& flag) {
  auto it = a.values.find(flag);
  return it == a.values.end() ? "" : it->second;
}

// A vault failure with the message the classifier gives it: what happened
// and what it did to the attempt counter. Payloads (the typed error) kept.
absl::Status Explained(const absl::Status& s) {
  if (s.ok()) return s;
  absl::Status out(s.code(),
                   client::DescribeVaultError(client::VaultError::From(s)));
  s.ForEachPayload([&out](absl::string_view url, const absl::Cord& payload) {
    out.SetPayload(url, payload);
  });
  return out;
}

struct Vault {
  std::unique_ptr<client::VaultClient> client;
  std::string account;
};

absl::Status VaultOptionsFrom(const Args& a, FILE* err,
                              client::VaultOptions& o) {
  if (auto it = a.values.find("--vault-ca"); it != a.values.end()) {
    BKV_ASSIGN_OR_RETURN(o.tls_root_certs,
                         ReadSmallFile(it->second, "CA file"));
    o.tls = true;
  }
  o.insecure_plaintext = a.values.count("--insecure-plaintext") > 0;
  if (auto it = a.values.find("--opaque-context"); it != a.values.end()) {
    o.opaque_context = it->second;
  }
  if (auto it = a.values.find("--server-identity"); it != a.values.end()) {
    o.server_identity = it->second;
  }
  int max_wait_s = 5;
  if (auto it = a.values.find("--max-wait"); it != a.values.end()) {
    if (!absl::SimpleAtoi(it->second, &max_wait_s) || max_wait_s < 0) {
      return Usage("--max-wait needs a number of seconds");
    }
  }
  o.max_retry_wait = std::chrono::seconds(max_wait_s);
  o.on_wait = [err](std::chrono::milliseconds wait,
                    const client::VaultError& why) {
    if (wait <= std::chrono::seconds(1)) return;
    std::fprintf(err, "bkv: the vault asked to wait (%s); retrying in %.1f s\n",
                 client::VaultErrorKindName(why.kind), wait.count() / 1000.0);
  };
  return absl::OkStatus();
}

absl::StatusOr<Vault> OpenVault(const Args& a, FILE* err) {
  BKV_ASSIGN_OR_RETURN(std::string address, Need(a, "--vault"));
  client::VaultOptions o;
  // ADDR,ADDR,...: nodes of one vault; the first is tried first.
  std::vector<std::string> nodes =
      absl::StrSplit(address, ',', absl::SkipWhitespace());
  if (nodes.empty()) return Usage("--vault needs an address");
  o.address = nodes[0];
  o.failover_addresses.assign(nodes.begin() + 1, nodes.end());
  const std::string key_hex = Value(a, "--vault-key");
  if (key_hex.empty()) {
    return Usage("--vault needs --vault-key HEX (or BKV_VAULT_KEY) to pin it");
  }
  BKV_ASSIGN_OR_RETURN(o.server_public_key,
                       client::ParseServerPublicKey(key_hex));
  Vault v;
  v.account = Value(a, "--account");
  if (v.account.empty())
    return Usage("--vault needs --account (or BKV_ACCOUNT)");
  std::string token;
  if (auto it = a.values.find("--token-file"); it != a.values.end()) {
    BKV_ASSIGN_OR_RETURN(token, ReadSmallFile(it->second, "token file"));
  } else if (auto t = ProcessEnv("BKV_ACCOUNT_TOKEN")) {
    token = *t;
  }
  if (token.empty()) {
    return Usage(
        "--vault needs an account token: --token-file F, BKV_TOKEN_FILE, "
        "BKV_ACCOUNT_TOKEN or token_file in the config file");
  }
  o.account_token = [token] { return token; };
  BKV_RETURN_IF_ERROR(VaultOptionsFrom(a, err, o));
  auto client = client::VaultClient::Create(std::move(o));
  if (!client.ok()) return Usage(std::string(client.status().message()));
  v.client = *std::move(client);
  return v;
}

absl::StatusOr<BackupKey> ReadKeyFile(const std::string& path) {
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

// A new key is registered only into an empty store: a store that already
// holds backups was made under some key, and a vault that answers "no
// record" (lost data, or an answer we cannot authenticate) must not lead to
// a second key whose backups then supersede and prune the first ones.
absl::Status RefuseIfStoreHasBackups(BlobStore& store,
                                     const std::string& account) {
  BKV_ASSIGN_OR_RETURN(auto objects, store.List());
  for (const auto& o : objects) {
    if (o.name == BackupSet::kManifestName ||
        o.name == Repository::kConfigName ||
        absl::StartsWith(o.name, "backup-")) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the vault holds no key for ", account, ", but ", store.url(),
          " already holds backups, so no new key is registered. If you have "
          "their 64-digit key, put it back behind a password: bkv vault "
          "reset --complete --key-file F; or back up to an empty store"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<BackupKey> RegisterNewKey(Vault& v, const SecretBytes& password,
                                         BlobStore& store, FILE* err) {
  BKV_RETURN_IF_ERROR(RefuseIfStoreHasBackups(store, v.account));
  BackupKey key = BackupKey::Generate();
  auto reg = v.client->Register(v.account, password, key.secret());
  if (!reg.ok()) return Explained(reg.status());
  std::fprintf(err,
               "bkv: registered a new backup key in the vault for %s "
               "(%u attempts)\n",
               v.account.c_str(), reg->attempt_limit);
  return key;
}

// Where the client remembers each repository's newest snapshot sequence and
// each keyring's generation, to detect a store that rolls back: $BKV_STATE_DIR,
// else $XDG_STATE_HOME/bkv, else ~/.local/state/bkv.
std::string StateDir() {
  if (const char* d = std::getenv("BKV_STATE_DIR"); d && *d) return d;
  if (const char* d = std::getenv("XDG_STATE_HOME"); d && *d) {
    return absl::StrCat(d, "/bkv");
  }
  if (const char* h = std::getenv("HOME"); h && *h) {
    return absl::StrCat(h, "/.local/state/bkv");
  }
  return "";
}

// A vault slot names the pinned vault key and the account.
absl::StatusOr<VaultParams> VaultSlotParams(const Args& a, const Vault& v) {
  BKV_ASSIGN_OR_RETURN(auto key,
                       client::ParseServerPublicKey(Value(a, "--vault-key")));
  return VaultParams{key, v.account};
}

// $BROWSER, else xdg-open, with the URL as its one argument. The URL's
// secret then shows in that process's argv to local users: docs/sdk.md.
void OpenBrowser(const std::string& url, FILE* err) {
  const char* browser = std::getenv("BROWSER");
  std::string prog = browser && *browser ? browser : "xdg-open";
  pid_t pid = ::fork();
  if (pid == 0) {
    ::execlp(prog.c_str(), prog.c_str(), url.c_str(), nullptr);
    ::_exit(127);
  }
  if (pid < 0) std::fprintf(err, "bkv: could not start %s\n", prog.c_str());
}

// The secret the user holds: a key file, or what the vault releases behind
// a password. With the vault, a backup (`register_into` is its store) into
// an account that has no key yet registers a fresh one.
absl::StatusOr<SlotSecret> LoadSecret(const Args& a, FILE* err,
                                      BlobStore* register_into = nullptr) {
  if (a.values.count("--vault")) {
    BKV_ASSIGN_OR_RETURN(Vault v, OpenVault(a, err));
    BKV_ASSIGN_OR_RETURN(VaultParams params, VaultSlotParams(a, v));
    BKV_ASSIGN_OR_RETURN(SecretBytes password, AskPassword(a, "password"));
    auto st = v.client->Status();
    if (!st.ok()) return Explained(st.status());
    if (st->state == client::VaultStatus::State::kNone && register_into) {
      BKV_RETURN_IF_ERROR(ConfirmNewPassword(a, password, v.account));
      BKV_ASSIGN_OR_RETURN(BackupKey key,
                           RegisterNewKey(v, password, *register_into, err));
      return SlotSecret::Vault(key.secret(), std::move(params));
    }
    auto secret = v.client->Recover(v.account, password);
    if (!secret.ok()) return Explained(secret.status());
    return SlotSecret::Vault(*secret, std::move(params));
  }
  if (a.values.count("--password-stdin")) {
    return Usage("--password-stdin needs --vault ADDR");
  }
  BKV_ASSIGN_OR_RETURN(std::string path, Need(a, "--key-file"));
  BKV_ASSIGN_OR_RETURN(BackupKey key, ReadKeyFile(path));
  return SlotSecret::RecoveryKey(key);
}

absl::StatusOr<PasskeyPageOptions> PasskeyOptions(const Args& a, FILE* err) {
  PasskeyPageOptions o;
  if (auto it = a.values.find("--rp-id"); it != a.values.end()) {
    o.rp_id = it->second;
  }
  if (auto it = a.values.find("--passkey-timeout"); it != a.values.end()) {
    if (!absl::SimpleAtoi(it->second, &o.timeout_s) || o.timeout_s <= 0) {
      return Usage("--passkey-timeout needs a number of seconds");
    }
  }
  const bool open = a.values.count("--open") > 0;
  o.on_url = [err, open](const std::string& url) {
    std::fprintf(err, "bkv: open this page to use your passkey: %s\n",
                 url.c_str());
    std::fflush(err);
    if (open) OpenBrowser(url, err);
  };
  return o;
}

// Where the master key comes from: the secret above opens a slot of the
// store's keyring (or is the key itself in a set from before key slots), or
// a passkey does on the one-time page.
absl::StatusOr<BackupKey> LoadKey(const Args& a, FILE* err, BlobStore& store,
                                  bool may_register = false) {
  KeySlots slots(store, {StateDir()});
  if (a.values.count("--passkey")) {
    BKV_ASSIGN_OR_RETURN(PasskeyPageOptions o, PasskeyOptions(a, err));
    return UnlockWithPasskey(slots, o);
  }
  if (a.values.count("--vault") && !Value(a, "--vault-key").empty()) {
    // A set whose keyring has no slot for this vault and account refuses
    // before the login: no attempt is spent on it.
    SlotSecret who;
    who.type = SlotType::kVault;
    BKV_ASSIGN_OR_RETURN(who.vault.vault_key,
                         client::ParseServerPublicKey(Value(a, "--vault-key")));
    who.vault.account = Value(a, "--account");
    BKV_RETURN_IF_ERROR(slots.ExpectSlot(who));
  }
  BKV_ASSIGN_OR_RETURN(SlotSecret secret,
                       LoadSecret(a, err, may_register ? &store : nullptr));
  return slots.Unlock(secret);
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
  bool enabled() const { return enabled_; }
  ProgressFn Fn() {
    if (!enabled_) return nullptr;
    return [this](uint64_t done, uint64_t total) { Update(done, total); };
  }
  // `note` (e.g. new vs deduplicated bytes) is built only when drawn.
  void Update(uint64_t done, uint64_t total,
              const std::function<std::string()>& note = nullptr) {
    std::lock_guard lock(mu_);
    const auto now = std::chrono::steady_clock::now();
    if (drawn_ && now - last_ < std::chrono::milliseconds(200) &&
        done != total) {
      return;
    }
    last_ = now;
    drawn_ = true;
    std::string line = Bar(done, total, now);
    if (note) line += note();
    std::fputs((line + "\033[K").c_str(), err_);
    std::fflush(err_);
  }
  void Done() {
    std::lock_guard lock(mu_);
    if (drawn_) std::fputs("\n", err_);
  }

 private:
  std::string Bar(uint64_t done, uint64_t total,
                  std::chrono::steady_clock::time_point now) const {
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
    return line;
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
  Context(Args a, FILE* o, FILE* e) : args(std::move(a)), out(o), err(e) {}
  Args args;
  FILE* out;
  FILE* err;
  // Cancelled by SIGINT/SIGTERM once a command arms `interrupts`; every
  // store operation and vault RPC observes it.
  CancelToken cancel;
  std::optional<InterruptWatcher> interrupts;
};

// Armed after the password prompts (which keep Ctrl-C's default: it ends
// the process before anything was written).
void CatchInterrupts(Context& c) { c.interrupts.emplace(c.cancel); }

// A store seen through the command's cancellation (CancellableBlobStore):
// a stopped operation deletes what it wrote.
class InterruptibleStore final : public BlobStore {
 public:
  InterruptibleStore(std::unique_ptr<BlobStore> inner, CancelToken& cancel)
      : inner_(std::move(inner)), view_(*inner_) {
    view_.set_call(&cancel);
  }
  absl::Status Put(std::string_view name, ByteSource& source) override {
    return view_.Put(name, source);
  }
  absl::Status Get(std::string_view name, const ByteSink& sink) override {
    return view_.Get(name, sink);
  }
  absl::StatusOr<std::vector<BlobInfo>> List() override { return view_.List(); }
  // Not stopped: deleting (its lock, say) is how a stopped run cleans up.
  absl::Status Delete(std::string_view name) override {
    return inner_->Delete(name);
  }
  absl::StatusOr<BlobInfo> Stat(std::string_view name) override {
    return view_.Stat(name);
  }
  std::string url() const override { return view_.url(); }
  absl::StatusOr<std::vector<BlobInfo>> SweepTemporaries() override {
    return inner_->SweepTemporaries();
  }

 private:
  std::unique_ptr<BlobStore> inner_;
  CancellableBlobStore view_;
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
  BKV_RETURN_IF_ERROR(WriteKeyFile(it->second, key));
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
absl::StatusOr<std::unique_ptr<BlobStore>> Store(Context& c,
                                                 const std::string& flag) {
  BKV_ASSIGN_OR_RETURN(std::string url, Need(c.args, flag));
  BlobStoreOptions options;
  options.create = flag == "--to";
  BKV_ASSIGN_OR_RETURN(std::unique_ptr<BlobStore> store,
                       OpenBlobStore(url, options));
  return std::make_unique<InterruptibleStore>(std::move(store), c.cancel);
}

// Repository format v2 (issue 13); defined below Check.
absl::Status BackupIncremental(Context& c, BlobStore& store,
                               const BackupKey& key);
absl::Status RestoreSnapshot(Context& c, BlobStore& store, const BackupKey& key,
                             const std::string& target);
absl::Status CheckRepository(Context& c, BlobStore& store,
                             const BackupKey& key);

// What a store holds. v1 sets stay v1 (their backups restore as before);
// everything else gets the incremental repository (docs/backup-format.md).
enum class StoreFormat { kEmpty, kV1, kV2 };

absl::StatusOr<StoreFormat> DetectFormat(BlobStore& store) {
  BKV_ASSIGN_OR_RETURN(auto objects, store.List());
  StoreFormat f = StoreFormat::kEmpty;
  for (const BlobInfo& o : objects) {
    if (o.name == Repository::kConfigName) return StoreFormat::kV2;
    if (o.name == BackupSet::kManifestName || IsBackupObjectName(o.name)) {
      f = StoreFormat::kV1;
    }
  }
  return f;
}

// The format `bkv backup` writes: --format, else the store's, else 2.
absl::StatusOr<int> BackupFormat(Context& c, BlobStore& store) {
  if (c.args.values.count("--incremental")) std::fputs(kIncrementalNote, c.err);
  BKV_ASSIGN_OR_RETURN(StoreFormat have, DetectFormat(store));
  auto it = c.args.values.find("--format");
  if (it == c.args.values.end()) {
    if (have != StoreFormat::kV1) return 2;
    std::fprintf(c.err,
                 "bkv: %s holds a single-stream (v1) backup set, so this "
                 "backup is v1 too; back up into a new store for incremental "
                 "backups\n",
                 store.url().c_str());
    return 1;
  }
  if (it->second != "1" && it->second != "2") {
    return Usage("--format is 1 (single-stream, deprecated) or 2");
  }
  const int want = it->second == "1" ? 1 : 2;
  if ((want == 1 && have == StoreFormat::kV2) ||
      (want == 2 && have == StoreFormat::kV1)) {
    return Usage(absl::StrCat(store.url(), " holds format ", 3 - want,
                              " backups; use a new store for format ", want));
  }
  return want;
}

absl::Status BackupSingleStream(Context& c, BlobStore& store,
                                const BackupKey& key);

// What a killed run (SIGKILL, power cut) left in the store: temporaries no
// running Put holds, deleted by the next backup or prune.
void SweepStore(Context& c, BlobStore& store) {
  auto swept = store.SweepTemporaries();
  if (!swept.ok() || swept->empty()) return;  // best effort
  uint64_t bytes = 0;
  for (const BlobInfo& b : *swept) bytes += b.size;
  std::fprintf(c.err,
               "bkv: deleted %zu temporary object%s (%s) that an interrupted "
               "run left in %s\n",
               swept->size(), swept->size() == 1 ? "" : "s",
               Human(bytes).c_str(), store.url().c_str());
}

// Staging folders (.bkv-restore-*) that a killed restore left next to
// `target`, with decrypted data in them: deleted unless a running restore
// holds one locked (repo_restore.cc) or it was written in the last minute.
void SweepStaging(Context& c, const std::string& target) {
  const std::filesystem::path parent =
      std::filesystem::absolute(target).lexically_normal().parent_path();
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(parent, ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    const std::string path = it->path().string();
    if (it->path().filename().string().rfind(".bkv-restore-", 0) != 0) {
      continue;
    }
    int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) continue;
    struct stat st;
    const bool stale = ::fstat(fd, &st) == 0 &&
                       st.st_mtime + kLeftoverMinAgeS < std::time(nullptr) &&
                       ::flock(fd, LOCK_EX | LOCK_NB) == 0;
    std::error_code rm;
    if (stale && std::filesystem::remove_all(path, rm) > 0 && !rm) {
      std::fprintf(c.err,
                   "bkv: deleted %s, the staging folder of an interrupted "
                   "restore\n",
                   path.c_str());
    }
    ::close(fd);
  }
}

absl::Status Backup(Context& c) {
  if (c.args.positional.size() != 2) {
    return Usage("bkv backup PATH --to URL ...");
  }
  BKV_ASSIGN_OR_RETURN(auto store, Store(c, "--to"));
  BKV_ASSIGN_OR_RETURN(int format, BackupFormat(c, *store));
  BKV_ASSIGN_OR_RETURN(BackupKey key, LoadKey(c.args, c.err, *store, true));
  CatchInterrupts(c);
  SweepStore(c, *store);
  if (format == 2) return BackupIncremental(c, *store, key);
  return BackupSingleStream(c, *store, key);
}

absl::Status BackupSingleStream(Context& c, BlobStore& store,
                                const BackupKey& key) {
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
  BackupSet set(store, key);
  auto r = set.Backup(c.args.positional[1], opts);
  progress.Done();
  if (!r.ok()) return r.status();
  if (c.args.json) {
    std::fprintf(c.out,
                 "{\"format\":1,\"id\":\"%s\",\"object\":%s,\"store\":%s,"
                 "\"input_bytes\":%llu,\"stored_bytes\":%llu}\n",
                 r->id.c_str(), JsonString(r->object).c_str(),
                 JsonString(store.url()).c_str(),
                 static_cast<unsigned long long>(r->input_bytes),
                 static_cast<unsigned long long>(r->stored_bytes));
  } else {
    std::fprintf(c.out, "backup %s: %s -> %s (%s)\n", r->id.c_str(),
                 Human(r->input_bytes).c_str(), r->object.c_str(),
                 Human(r->stored_bytes).c_str());
  }
  return absl::OkStatus();
}

absl::Status RestoreSingleStream(Context& c, BlobStore& store,
                                 const BackupKey& key,
                                 const std::string& target) {
  std::string id;
  if (auto it = c.args.values.find("--backup"); it != c.args.values.end()) {
    id = it->second == "latest" ? "" : it->second;  // "": the newest
  }
  Progress progress(c.err, !c.args.json && ::isatty(::fileno(c.err)));
  StreamOptions opts;
  opts.progress = progress.Fn();
  BackupSet set(store, key);
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

// A restore target as people type it: without its trailing slashes ("/"
// stays "/"), so the restore lands at that path and not inside it.
std::string TargetPath(std::string target) {
  while (target.size() > 1 && target.back() == '/') target.pop_back();
  return target;
}

// An existing empty folder is a fine target: it is removed so the restore
// can rename its result into place, and put back if the restore fails. The
// folder's mode, or nullopt when the target is anything else.
std::optional<mode_t> TakeEmptyFolder(const std::string& target) {
  struct stat st;
  if (::lstat(target.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return std::nullopt;
  }
  // rmdir fails on a folder that is not empty, so nothing is lost.
  if (::rmdir(target.c_str()) != 0) return std::nullopt;
  return st.st_mode & 07777;
}

absl::Status Restore(Context& c) {
  if (c.args.positional.size() != 1) {
    return Usage("bkv restore --from URL --to PATH --key-file F");
  }
  BKV_ASSIGN_OR_RETURN(auto store, Store(c, "--from"));
  BKV_ASSIGN_OR_RETURN(std::string target, Need(c.args, "--to"));
  target = TargetPath(target);
  BKV_ASSIGN_OR_RETURN(BackupKey key, LoadKey(c.args, c.err, *store));
  CatchInterrupts(c);
  BKV_ASSIGN_OR_RETURN(bool v2, Repository::Exists(*store));
  const bool snapshot =
      v2 || c.args.values.count("--snapshot") || c.args.values.count("--path");
  if (snapshot && c.args.values.count("--backup")) {
    return Usage(
        "--backup ID names a single-stream (v1) backup; this store holds "
        "snapshots: use --snapshot ID (bkv snapshots lists them)");
  }
  SweepStaging(c, target);
  const std::optional<mode_t> folder = TakeEmptyFolder(target);
  absl::Status s = snapshot ? RestoreSnapshot(c, *store, key, target)
                            : RestoreSingleStream(c, *store, key, target);
  if (!s.ok() && folder) (void)::mkdir(target.c_str(), *folder);
  return s;
}

absl::Status List(Context& c) {
  if (c.args.positional.size() != 1) {
    return Usage("bkv list --from URL");
  }
  BKV_ASSIGN_OR_RETURN(auto store, Store(c, "--from"));
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
  BKV_ASSIGN_OR_RETURN(BackupKey key, LoadKey(c.args, c.err, *store));
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

absl::StatusOr<std::unique_ptr<Repository>> OpenRepo(const Args& a,
                                                     BlobStore& store,
                                                     const BackupKey& key,
                                                     bool create,
                                                     RepoOptions o = {}) {
  o.create = create;
  o.state_dir = StateDir();
  if (auto it = a.values.find("--lock-wait"); it != a.values.end()) {
    if (!absl::SimpleAtoi(it->second, &o.lock_wait_s) || o.lock_wait_s < 0) {
      return Usage("--lock-wait needs a number of seconds");
    }
  }
  return Repository::Open(store, key, o);
}

// Fifos, sockets and devices are not backed up; say which (on stderr, so
// --json output stays one object; the JSON has them as skipped_special).
void ReportSkipped(Context& c, const std::vector<std::string>& special) {
  if (special.empty()) return;
  constexpr size_t kShown = 5;
  std::string names;
  for (size_t i = 0; i < special.size() && i < kShown; ++i) {
    absl::StrAppend(&names, i ? ", " : "", special[i]);
  }
  if (special.size() > kShown) {
    absl::StrAppend(&names, " and ", special.size() - kShown, " more");
  }
  std::fprintf(c.err,
               "bkv: skipped %zu special file%s (fifo, socket or device): "
               "%s\n",
               special.size(), special.size() == 1 ? "" : "s", names.c_str());
}

absl::Status BackupIncremental(Context& c, BlobStore& store,
                               const BackupKey& key) {
  for (const char* flag : {"--keep", "--chunk-size"}) {
    if (c.args.values.count(flag)) {
      return Usage(absl::StrCat(
          flag,
          " is for single-stream (v1) backups (--format 1); an incremental "
          "repository uses `bkv forget --keep-last N` and chunks by "
          "content"));
    }
  }
  Progress progress(c.err, !c.args.json && ::isatty(::fileno(c.err)));
  RepoOptions o;
  o.cancelled = [&c] { return c.cancel.cancelled(); };
  if (progress.enabled()) {
    o.progress = [&progress](const RepoBackupStats& st) {
      progress.Update(st.new_bytes + st.dedup_bytes, st.planned_bytes, [&] {
        return absl::StrCat("  new ", Human(st.new_bytes), ", dedup ",
                            Human(st.dedup_bytes));
      });
    };
  }
  BKV_ASSIGN_OR_RETURN(auto repo, OpenRepo(c.args, store, key, true, o));
  RepoBackupStats st;
  auto snap = repo->Backup(c.args.positional[1], &st);
  progress.Done();
  BKV_ASSIGN_OR_RETURN(SnapshotInfo s, std::move(snap));
  ReportSkipped(c, st.skipped_special);
  if (c.args.json) {
    std::fprintf(
        c.out,
        "{\"format\":2,\"snapshot\":\"%s\",\"seq\":%llu,\"store\":%s,"
        "\"files\":%llu,"
        "\"files_read\":%llu,\"files_unchanged\":%llu,\"bytes\":%llu,"
        "\"new_bytes\":%llu,\"dedup_bytes\":%llu,\"new_chunks\":%llu,"
        "\"chunks\":%llu,\"uploaded_bytes\":%llu,\"packs_uploaded\":%llu,"
        "\"packs_adopted\":%llu,\"skipped_special\":%s}\n",
        s.id.c_str(), static_cast<unsigned long long>(s.seq),
        JsonString(store.url()).c_str(),
        static_cast<unsigned long long>(st.files),
        static_cast<unsigned long long>(st.files_read),
        static_cast<unsigned long long>(st.files_unchanged),
        static_cast<unsigned long long>(st.bytes),
        static_cast<unsigned long long>(st.new_bytes),
        static_cast<unsigned long long>(st.dedup_bytes),
        static_cast<unsigned long long>(st.new_chunks),
        static_cast<unsigned long long>(st.chunks),
        static_cast<unsigned long long>(st.uploaded_bytes),
        static_cast<unsigned long long>(st.packs_uploaded),
        static_cast<unsigned long long>(st.packs_adopted),
        JsonArray(st.skipped_special).c_str());
  } else {
    std::fprintf(c.out,
                 "snapshot %s (#%llu): %llu files, %s; read %llu changed "
                 "files, %s new, %s already stored; uploaded %s\n",
                 s.id.c_str(), static_cast<unsigned long long>(s.seq),
                 static_cast<unsigned long long>(st.files),
                 Human(st.bytes).c_str(),
                 static_cast<unsigned long long>(st.files_read),
                 Human(st.new_bytes).c_str(), Human(st.dedup_bytes).c_str(),
                 Human(st.uploaded_bytes).c_str());
  }
  return absl::OkStatus();
}

absl::Status RestoreSnapshot(Context& c, BlobStore& store, const BackupKey& key,
                             const std::string& target) {
  BKV_ASSIGN_OR_RETURN(auto repo, OpenRepo(c.args, store, key, false));
  std::string id, path;
  if (auto it = c.args.values.find("--snapshot"); it != c.args.values.end()) {
    id = it->second == "latest" ? "" : it->second;
  }
  if (auto it = c.args.values.find("--path"); it != c.args.values.end()) {
    path = it->second;
  }
  BKV_ASSIGN_OR_RETURN(SnapshotInfo s, repo->Restore(id, path, target));
  if (c.args.json) {
    std::fprintf(c.out,
                 "{\"snapshot\":\"%s\",\"restored_to\":%s,\"files\":%llu,"
                 "\"bytes\":%llu}\n",
                 s.id.c_str(), JsonString(target).c_str(),
                 static_cast<unsigned long long>(s.files),
                 static_cast<unsigned long long>(s.bytes));
  } else {
    std::fprintf(c.out, "restored snapshot %s%s to %s (%llu files, %s)\n",
                 s.id.c_str(), path.empty() ? "" : (" path " + path).c_str(),
                 target.c_str(), static_cast<unsigned long long>(s.files),
                 Human(s.bytes).c_str());
  }
  return absl::OkStatus();
}

absl::Status Snapshots(Context& c) {
  if (c.args.positional.size() != 1) {
    return Usage("bkv snapshots --from URL --key-file F");
  }
  BKV_ASSIGN_OR_RETURN(auto store, Store(c, "--from"));
  BKV_ASSIGN_OR_RETURN(BackupKey key, LoadKey(c.args, c.err, *store));
  BKV_ASSIGN_OR_RETURN(auto repo, OpenRepo(c.args, *store, key, false));
  BKV_ASSIGN_OR_RETURN(auto snaps, repo->Snapshots());
  std::string json = "{\"snapshots\":[";
  for (size_t i = 0; i < snaps.size(); ++i) {
    const SnapshotInfo& s = snaps[i];
    absl::StrAppend(&json, i ? "," : "", "{\"id\":\"", s.id,
                    "\",\"seq\":", s.seq, ",\"time_ms\":", s.time_ms,
                    ",\"source\":", JsonString(s.source),
                    ",\"files\":", s.files, ",\"bytes\":", s.bytes, "}");
    if (!c.args.json) {
      std::fprintf(c.out, "%s  #%-4llu  %llu files  %s  %s\n", s.id.c_str(),
                   static_cast<unsigned long long>(s.seq),
                   static_cast<unsigned long long>(s.files),
                   Human(s.bytes).c_str(), s.source.c_str());
    }
  }
  if (c.args.json) std::fprintf(c.out, "%s]}\n", json.c_str());
  return absl::OkStatus();
}

absl::Status Forget(Context& c) {
  if (c.args.positional.size() != 1) {
    return Usage("bkv forget --from URL --key-file F --keep-last N ...");
  }
  ForgetPolicy policy;
  for (auto [flag, count] : {std::pair{"--keep-last", &policy.keep_last},
                             std::pair{"--keep-daily", &policy.keep_daily},
                             std::pair{"--keep-weekly", &policy.keep_weekly}}) {
    auto it = c.args.values.find(flag);
    if (it != c.args.values.end() && !absl::SimpleAtoi(it->second, count)) {
      return Usage(absl::StrCat(flag, " needs a number"));
    }
  }
  if (policy.keep_last + policy.keep_daily + policy.keep_weekly == 0) {
    return Usage(
        "forget needs --keep-last N, --keep-daily N or --keep-weekly N "
        "(N >= 1)");
  }
  BKV_ASSIGN_OR_RETURN(auto store, Store(c, "--from"));
  BKV_ASSIGN_OR_RETURN(BackupKey key, LoadKey(c.args, c.err, *store));
  BKV_ASSIGN_OR_RETURN(auto repo, OpenRepo(c.args, *store, key, false));
  BKV_ASSIGN_OR_RETURN(auto gone, repo->Forget(policy));
  std::string json = "{\"forgotten\":[";
  for (size_t i = 0; i < gone.size(); ++i) {
    absl::StrAppend(&json, i ? "," : "", "\"", gone[i].id, "\"");
    if (!c.args.json) {
      std::fprintf(c.out, "forgot snapshot %s (#%llu)\n", gone[i].id.c_str(),
                   static_cast<unsigned long long>(gone[i].seq));
    }
  }
  if (c.args.json) std::fprintf(c.out, "%s]}\n", json.c_str());
  if (!c.args.json && !gone.empty()) {
    std::fprintf(c.out, "run `bkv prune` to free their data\n");
  }
  return absl::OkStatus();
}

absl::Status Prune(Context& c) {
  if (c.args.positional.size() != 1) {
    return Usage("bkv prune --from URL --key-file F");
  }
  BKV_ASSIGN_OR_RETURN(auto store, Store(c, "--from"));
  BKV_ASSIGN_OR_RETURN(BackupKey key, LoadKey(c.args, c.err, *store));
  BKV_ASSIGN_OR_RETURN(auto repo, OpenRepo(c.args, *store, key, false));
  SweepStore(c, *store);
  BKV_ASSIGN_OR_RETURN(PruneStats p, repo->Prune());
  if (c.args.json) {
    std::fprintf(c.out,
                 "{\"packs_deleted\":%llu,\"packs_repacked\":%llu,"
                 "\"indexes_deleted\":%llu,\"chunks_dropped\":%llu,"
                 "\"bytes_freed\":%llu}\n",
                 static_cast<unsigned long long>(p.packs_deleted),
                 static_cast<unsigned long long>(p.packs_repacked),
                 static_cast<unsigned long long>(p.indexes_deleted),
                 static_cast<unsigned long long>(p.chunks_dropped),
                 static_cast<unsigned long long>(p.bytes_freed));
  } else {
    std::fprintf(c.out,
                 "pruned: %llu unused chunks dropped, %llu packs deleted "
                 "(%llu repacked), %s freed\n",
                 static_cast<unsigned long long>(p.chunks_dropped),
                 static_cast<unsigned long long>(p.packs_deleted),
                 static_cast<unsigned long long>(p.packs_repacked),
                 Human(p.bytes_freed).c_str());
  }
  return absl::OkStatus();
}

absl::Status CheckRepository(Context& c, BlobStore& store,
                             const BackupKey& key) {
  BKV_ASSIGN_OR_RETURN(auto repo, OpenRepo(c.args, store, key, false));
  BKV_ASSIGN_OR_RETURN(RepoCheckReport r, repo->Check(c.args.read_data));
  const std::string summary = absl::StrCat(
      r.snapshots, " snapshots, ", r.indexes, " indexes, ", r.packs, " packs, ",
      r.chunks, " chunks",
      c.args.read_data
          ? absl::StrCat(" (", r.chunks_read, " read and verified)")
          : std::string(" (structure)"),
      "; ", r.problems.size(), " problems");
  absl::Status result = absl::OkStatus();
  if (!r.clean()) {
    result = absl::DataLossError(absl::StrCat(store.url(), ": ", summary));
  }
  if (c.args.json) {
    std::string json = absl::StrCat(
        "{\"format\":2,\"snapshots\":", r.snapshots, ",\"indexes\":", r.indexes,
        ",\"packs\":", r.packs, ",\"chunks\":", r.chunks,
        ",\"chunks_read\":", r.chunks_read,
        ",\"read_data\":", c.args.read_data ? "true" : "false",
        ",\"problems\":", JsonArray(r.problems),
        ",\"exit_code\":", ExitFor(result), "}");
    std::fprintf(c.out, "%s\n", json.c_str());
    result.SetPayload(kReportedPayload, absl::Cord("1"));
  } else {
    for (const std::string& p : r.problems) {
      std::fprintf(c.out, "problem: %s\n", p.c_str());
    }
    for (const std::string& n : r.notes)
      std::fprintf(c.out, "note: %s\n", n.c_str());
    std::fprintf(c.out, "%s\n", summary.c_str());
  }
  return result;
}

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
  BKV_ASSIGN_OR_RETURN(auto store, Store(c, "--from"));
  BKV_ASSIGN_OR_RETURN(BackupKey key, LoadKey(c.args, c.err, *store));
  BKV_ASSIGN_OR_RETURN(bool v2, Repository::Exists(*store));
  if (v2) return CheckRepository(c, *store, key);
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
        ",\"problems\":", JsonArray(r.problems),
        ",\"exit_code\":", ExitFor(result), "}");
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
  BKV_ASSIGN_OR_RETURN(auto store, Store(c, "--from"));
  BKV_ASSIGN_OR_RETURN(bool v2, Repository::Exists(*store));
  if (v2) {
    return absl::FailedPreconditionError(
        "this store holds an incremental (v2) repository, which has no list "
        "to rebuild: its snapshots are found by listing; run `bkv check` "
        "(`bkv prune` re-indexes)");
  }
  BKV_ASSIGN_OR_RETURN(BackupKey key, LoadKey(c.args, c.err, *store));
  BackupSet set(*store, key);
  BKV_ASSIGN_OR_RETURN(RepairReport r, set.Repair());
  if (c.args.json) {
    std::string json = absl::StrCat(
        "{\"list_before\":\"", ListStateName(r.before),
        "\",\"rewritten\":", r.rewritten ? "true" : "false",
        ",\"backups\":", r.records.size(), ",\"added\":", r.added,
        ",\"dropped\":", r.dropped, ",\"skipped\":", JsonArray(r.skipped), "}");
    std::fprintf(c.out, "%s\n", json.c_str());
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

std::string UtcTime(int64_t unix_ms) {
  const time_t t = static_cast<time_t>(unix_ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

const char* StateName(client::VaultStatus::State s) {
  return s == client::VaultStatus::State::kActive   ? "active"
         : s == client::VaultStatus::State::kLocked ? "locked"
                                                    : "none";
}

absl::Status VaultStatusCmd(Context& c) {
  BKV_ASSIGN_OR_RETURN(Vault v, OpenVault(c.args, c.err));
  auto st = v.client->Status();
  if (!st.ok()) return Explained(st.status());
  if (c.args.json) {
    std::fprintf(c.out,
                 "{\"status\":\"%s\",\"attempts_remaining\":%u,"
                 "\"attempt_limit\":%u,\"registration_id\":%llu,"
                 "\"reset_due_unix_ms\":%lld}\n",
                 StateName(st->state), st->attempts_remaining,
                 st->attempt_limit,
                 static_cast<unsigned long long>(st->registration_id),
                 static_cast<long long>(st->reset_due_unix_ms));
    return absl::OkStatus();
  }
  std::fprintf(c.out, "%s: %s, %u of %u attempts remaining\n",
               v.account.c_str(), StateName(st->state), st->attempts_remaining,
               st->attempt_limit);
  if (st->registration_id != 0) {
    std::fprintf(c.out, "registration: %016llx\n",
                 static_cast<unsigned long long>(st->registration_id));
  }
  if (st->reset_due_unix_ms != 0) {
    std::fprintf(c.out,
                 "reset requested: due %s (a successful recovery cancels "
                 "it)\n",
                 UtcTime(st->reset_due_unix_ms).c_str());
  }
  return absl::OkStatus();
}

// An ACTIVE record is deleted with a proof of its password (one recovery),
// or without one once a requested reset is due.
absl::Status VaultDeleteCmd(Context& c) {
  BKV_ASSIGN_OR_RETURN(Vault v, OpenVault(c.args, c.err));
  std::string proof;
  {
    auto st = v.client->Status();
    if (!st.ok()) return Explained(st.status());
    // Without a way to ask, the vault's refusal below says what to do.
    auto pw = st->state == client::VaultStatus::State::kActive
                  ? AskPassword(c.args, "password")
                  : absl::StatusOr<SecretBytes>(absl::NotFoundError(""));
    if (pw.ok()) {
      auto r = v.client->RecoverWithProof(v.account, *pw);
      if (!r.ok()) return Explained(r.status());
      proof = std::move(r->proof);
    }
  }
  absl::Status s = v.client->Delete(proof);
  if (client::VaultError::From(s).kind ==
      client::VaultErrorKind::kProofRequired) {
    return Usage(
        "the record is active: deleting it needs its password (typed at "
        "the prompt, or --password-stdin), or `bkv vault reset --request` and, "
        "once the "
        "reset is due, delete again");
  }
  BKV_RETURN_IF_ERROR(Explained(s));
  if (c.args.json) {
    std::fprintf(c.out, "{\"deleted\":true}\n");
  } else {
    std::fprintf(c.out, "%s: record and key deleted from the vault\n",
                 v.account.c_str());
  }
  return absl::OkStatus();
}

absl::Status VaultChangePasswordCmd(Context& c) {
  BKV_ASSIGN_OR_RETURN(Vault v, OpenVault(c.args, c.err));
  BKV_ASSIGN_OR_RETURN(SecretBytes old_pw,
                       AskPassword(c.args, "current password"));
  BKV_ASSIGN_OR_RETURN(SecretBytes new_pw, AskPassword(c.args, "new password"));
  BKV_RETURN_IF_ERROR(ConfirmNewPassword(c.args, new_pw, v.account));
  auto reg = v.client->ChangePassword(v.account, old_pw, new_pw);
  if (!reg.ok()) return Explained(reg.status());
  if (c.args.json) {
    std::fprintf(c.out, "{\"password_changed\":true,\"attempt_limit\":%u}\n",
                 reg->attempt_limit);
    return absl::OkStatus();
  }
  std::fprintf(c.out,
               "%s: password changed; the backup key is the same (%u "
               "attempts)\n",
               v.account.c_str(), reg->attempt_limit);
  return absl::OkStatus();
}

absl::Status ResetRequest(Context& c, Vault& v) {
  auto due = v.client->RequestReset();
  if (!due.ok()) return Explained(due.status());
  if (c.args.json) {
    std::fprintf(c.out, "{\"reset_due_unix_ms\":%lld}\n",
                 static_cast<long long>(*due));
  } else {
    std::fprintf(c.out,
                 "%s: reset requested; from %s a new password can be set "
                 "without the old one (bkv vault reset --complete). A "
                 "successful recovery before then cancels it.\n",
                 v.account.c_str(), UtcTime(*due).c_str());
  }
  return absl::OkStatus();
}

// Once the reset is due: a new password, with the user's 64-digit key
// (--key-file; old backups stay readable) or a new key (they do not).
absl::Status ResetComplete(Context& c, Vault& v) {
  BKV_ASSIGN_OR_RETURN(SecretBytes pw, AskPassword(c.args, "new password"));
  BKV_RETURN_IF_ERROR(ConfirmNewPassword(c.args, pw, v.account));
  std::optional<BackupKey> key;
  if (auto it = c.args.values.find("--key-file"); it != c.args.values.end()) {
    BKV_ASSIGN_OR_RETURN(key, ReadKeyFile(it->second));
  }
  auto st = v.client->Status();
  if (!st.ok()) return Explained(st.status());
  if (st->state == client::VaultStatus::State::kLocked) {
    BKV_RETURN_IF_ERROR(Explained(v.client->Delete()));
  }
  if (!key) key = BackupKey::Generate();
  auto reg = v.client->Register(v.account, pw, key->secret());
  if (client::VaultError::From(reg.status()).kind ==
      client::VaultErrorKind::kProofRequired) {
    return Usage(
        st->reset_due_unix_ms == 0
            ? std::string("no reset is pending: bkv vault reset --request")
            : absl::StrCat("the reset is not due until ",
                           UtcTime(st->reset_due_unix_ms)));
  }
  if (!reg.ok()) return Explained(reg.status());
  const bool new_key = !c.args.values.count("--key-file");
  if (c.args.json) {
    std::fprintf(c.out, "{\"attempt_limit\":%u,\"new_key\":%s}\n",
                 reg->attempt_limit, new_key ? "true" : "false");
  } else {
    std::fprintf(c.out, "%s: new password set (%u attempts)\n",
                 v.account.c_str(), reg->attempt_limit);
  }
  if (new_key) {
    std::fprintf(c.err,
                 "bkv: a NEW backup key was registered: backups made with "
                 "the old key cannot be read unless you have its 64-digit "
                 "key\n");
  }
  return absl::OkStatus();
}

absl::Status VaultResetCmd(Context& c) {
  const bool request = c.args.values.count("--request") > 0;
  const bool complete = c.args.values.count("--complete") > 0;
  if (request == complete) {
    return Usage("bkv vault reset --request | --complete [--key-file F]");
  }
  BKV_ASSIGN_OR_RETURN(Vault v, OpenVault(c.args, c.err));
  return request ? ResetRequest(c, v) : ResetComplete(c, v);
}

absl::Status KeyGroup(Context&) { return Usage("bkv key new [--out FILE]"); }
absl::Status SlotGroup(Context&) {
  return Usage("bkv slot list|add|remove; see bkv slot --help");
}

// How a slot command opens the set: a key file, a passkey, or the vault.
SecretSource OpenedWith(Context& c, BlobStore& store) {
  return [&c, &store]() -> absl::StatusOr<SlotSecret> {
    // A key file first: the --vault flags may name the new slot's vault.
    if (auto it = c.args.values.find("--key-file"); it != c.args.values.end()) {
      BKV_ASSIGN_OR_RETURN(BackupKey key, ReadKeyFile(it->second));
      return SlotSecret::RecoveryKey(key);
    }
    if (!c.args.values.count("--passkey")) return LoadSecret(c.args, c.err);
    BKV_ASSIGN_OR_RETURN(PasskeyPageOptions o, PasskeyOptions(c.args, c.err));
    KeySlots slots(store, {StateDir()});
    return PasskeySecret(slots, o);
  };
}

// A new vault slot's secret: fresh random bytes registered behind a new
// password for an account that holds no key yet.
SecretSource NewVaultSecret(Context& c) {
  return [&c]() -> absl::StatusOr<SlotSecret> {
    BKV_ASSIGN_OR_RETURN(Vault v, OpenVault(c.args, c.err));
    BKV_ASSIGN_OR_RETURN(VaultParams params, VaultSlotParams(c.args, v));
    BKV_ASSIGN_OR_RETURN(SecretBytes password,
                         AskPassword(c.args, "new password"));
    BKV_RETURN_IF_ERROR(ConfirmNewPassword(c.args, password, v.account));
    SecretBytes secret = SecretBytes::Random(32);
    auto reg = v.client->Register(v.account, password, secret);
    if (!reg.ok()) return Explained(reg.status());
    return SlotSecret::Vault(secret, std::move(params));
  };
}

absl::Status SlotCmd(Context& c, SlotCommandOptions o) {
  BKV_ASSIGN_OR_RETURN(auto store, Store(c, "--from"));
  o.state_dir = StateDir();
  o.json = c.args.json;
  o.out = c.out;
  o.err = c.err;
  if (o.action != SlotCommandOptions::Action::kList) {
    BKV_ASSIGN_OR_RETURN(o.passkey, PasskeyOptions(c.args, c.err));
  }
  return RunSlotCommand(*store, o, OpenedWith(c, *store), NewVaultSecret(c));
}

absl::Status SlotListCmd(Context& c) {
  SlotCommandOptions o;
  o.action = SlotCommandOptions::Action::kList;
  return SlotCmd(c, std::move(o));
}

absl::Status SlotAddCmd(Context& c) {
  const auto& p = c.args.positional;
  SlotCommandOptions o;
  o.action = SlotCommandOptions::Action::kAdd;
  const std::string kind = p.size() == 3 ? p[2] : "";
  if (kind == "passkey") {
    o.add_type = SlotType::kPasskey;
  } else if (kind == "recovery-key") {
    o.add_type = SlotType::kRecoveryKey;
    o.new_key_file = Value(c.args, "--out");
  } else if (kind == "vault") {
    o.add_type = SlotType::kVault;
    if (!c.args.values.count("--key-file") &&
        !c.args.values.count("--passkey")) {
      return Usage(
          "slot add vault: open the set with --key-file F or --passkey (the "
          "--vault flags name the new slot's vault)");
    }
  } else {
    return Usage("bkv slot add passkey|recovery-key|vault --from URL ...");
  }
  return SlotCmd(c, std::move(o));
}

absl::Status SlotRemoveCmd(Context& c) {
  if (c.args.positional.size() != 3) {
    return Usage("bkv slot remove SLOT-ID --from URL ...");
  }
  SlotCommandOptions o;
  o.action = SlotCommandOptions::Action::kRemove;
  o.remove_id = c.args.positional[2];
  return SlotCmd(c, std::move(o));
}

absl::Status RekeyCmd(Context& c) {
  BKV_ASSIGN_OR_RETURN(auto from, Store(c, "--from"));
  BKV_ASSIGN_OR_RETURN(auto to, Store(c, "--to"));
  SlotCommandOptions o;
  o.state_dir = StateDir();
  o.json = c.args.json;
  o.out = c.out;
  o.err = c.err;
  const char* tmp = std::getenv("TMPDIR");
  return RunRekeyCommand(*from, *to, OpenedWith(c, *from),
                         tmp && *tmp ? tmp : "/tmp", o);
}

absl::Status VaultGroup(Context&) {
  return Usage(
      "bkv vault status|delete|change-password|reset; see bkv vault "
      "--help");
}

constexpr char kVaultFlags[] = R"(vault flags:
  --vault ADDR            the vault (host:port)
  --vault-key HEX         its public key, pinned (or $BKV_VAULT_KEY)
  --account ID            or $BKV_ACCOUNT
  --token-file F          account token (or $BKV_ACCOUNT_TOKEN)
  --vault-ca F            TLS, trusting these PEM roots (required unless the
                          vault is on loopback)
  --insecure-plaintext    allow plaintext to a non-loopback vault: DANGEROUS,
                          the account token (a bearer credential) and the
                          whole exchange cross the network in the clear
  --opaque-context S      the vault's OPAQUE context (default "bkv OPAQUE v1")
  --server-identity S     the vault's OPAQUE server identity, if configured
  --max-wait SECONDS      longest total wait when the vault asks to retry
                          later (default 5)
  --json                  machine-readable output
)";

struct Command {
  const char* name;  // the words after `bkv`
  const char* usage;
  absl::Status (*run)(Context&);
  bool vault_flags;  // lists kVaultFlags in its help
};

absl::Status CompletionCmd(Context& c);

const Command kCommands[] = {
    {"key", "bkv key new [--out FILE]\n  backup keys\n", KeyGroup, false},
    {"key new",
     "bkv key new [--out FILE] [--json]\n  make a backup key; print it, or "
     "write it to FILE (mode 0600, must not exist)\n  --out FILE\n  --json\n",
     KeyNew, false},
    {"backup",
     "bkv backup PATH --to URL (--key-file F | --vault ADDR --password-stdin)"
     " [--lock-wait S] [--json]\n  back up a file or directory as a new "
     "snapshot of the store's incremental (v2) repository: only changed "
     "files are read and only new chunks uploaded; a progress line on a "
     "terminal shows new vs deduplicated bytes; waits up to S seconds "
     "(default 300) for a running prune. A store holding a single-stream (v1) "
     "set gets v1 backups (--format 1 [--keep N] [--no-compress] "
     "[--chunk-size N], deprecated). With --vault, the first backup into an "
     "empty store registers a new key\n  --to URL\n  --key-file F\n"
     "  --password-stdin\n  --lock-wait S\n  --format 1|2\n  --keep N\n"
     "  --no-compress\n  --chunk-size N\n  --incremental  (deprecated, the "
     "default)\n",
     Backup, true},
    {"restore",
     "bkv restore --from URL --to PATH (--key-file F | --vault ADDR "
     "--password-stdin) [--snapshot ID|latest [--path P] | --backup "
     "ID|latest] "
     "[--json]\n  restore the newest snapshot (or ID, a unique prefix; only "
     "P of it with --path) to PATH, which must not exist or be an empty "
     "folder; a single-stream (v1) set is detected and its newest backup (or "
     "--backup ID) restored\n  "
     "--from URL\n  --to PATH\n"
     "  --key-file F\n  --password-stdin\n  --backup ID\n  --snapshot ID\n"
     "  --path P\n",
     Restore, true},
    {"snapshots",
     "bkv snapshots --from URL (--key-file F | --vault ADDR --password-stdin) "
     "[--json]\n  the snapshots of an incremental (v2) repository, oldest "
     "first\n  --from URL\n  --key-file F\n  --password-stdin\n",
     Snapshots, true},
    {"forget",
     "bkv forget --from URL (--key-file F | --vault ADDR --password-stdin) "
     "[--keep-last N] [--keep-daily N] [--keep-weekly N] [--json]\n  delete "
     "the snapshots no rule keeps: the newest N, the newest of each of the "
     "last N days (UTC) that have one, the newest of each of the last N ISO "
     "weeks; `bkv prune` then frees their data\n  --from URL\n"
     "  --key-file F\n  --password-stdin\n  --keep-last N\n"
     "  --keep-daily N\n  --keep-weekly N\n",
     Forget, true},
    {"prune",
     "bkv prune --from URL (--key-file F | --vault ADDR --password-stdin) "
     "[--json]\n  delete the data no snapshot references (mark and sweep; "
     "safe to interrupt); refuses (exit 6) while a backup runs\n  --from URL\n "
     " --key-file F\n  --password-stdin"
     "\n",
     Prune, true},
    {"list",
     "bkv list --from URL [--key-file F | --vault ADDR --password-stdin] "
     "[--json]\n  backups in the set (with the key), or the store's objects "
     "(without)\n  --from URL\n  --key-file F\n  --password-stdin\n",
     List, true},
    {"check",
     "bkv check --from URL --key-file F [--read-data] [--json]\n  verify the "
     "repository's structure (every byte with --read-data), or a v1 set's "
     "list against its objects; exit 4 when anything is wrong\n  --from URL\n  "
     "--key-file F\n"
     "  --read-data\n",
     Check, false},
    {"repair",
     "bkv repair --from URL --key-file F [--json]\n  rebuild a damaged or "
     "missing backup list from the authenticated backup objects; deletes "
     "nothing\n  --from URL\n  --key-file F\n",
     Repair, false},
    {"vault",
     "bkv vault status|delete|change-password|reset\n  the account's record "
     "in the vault; `bkv vault SUBCOMMAND --help`\n",
     VaultGroup, true},
    {"vault status",
     "bkv vault status [--json]\n  state, attempts remaining of the vault's "
     "limit, registration id, a pending reset; spends no attempt\n",
     VaultStatusCmd, true},
    {"vault delete",
     "bkv vault delete [--password-stdin]\n  delete the record and its key. "
     "An active record needs its password (one attempt, proves it) or a due "
     "reset\n  --password-stdin\n",
     VaultDeleteCmd, true},
    {"vault change-password",
     "bkv vault change-password [--password-stdin]\n  asks for the current "
     "and the new password (the new one twice) on the terminal, or reads "
     "them (two lines) with --password-stdin; proves the current one (one "
     "attempt), then stores the same backup key behind the new one\n"
     "  --password-stdin\n",
     VaultChangePasswordCmd, true},
    {"vault reset",
     "bkv vault reset --request | --complete [--key-file F]\n  forgot the "
     "password: --request starts the vault's reset delay and prints when it "
     "is due; once due, --complete reads a new password from stdin and "
     "registers the 64-digit key of --key-file behind it, or a NEW key "
     "(backups made with the old key are then unreadable unless you have its "
     "64-digit key)\n  --request\n  --complete\n  --key-file F\n",
     VaultResetCmd, true},
    {"slot",
     "bkv slot list|add|remove\n  the set's ways in (key slots): a passkey, "
     "the 64-digit key, the vault password; `bkv slot SUBCOMMAND --help`\n",
     SlotGroup, false},
    {"slot list",
     "bkv slot list --from URL [--json]\n  the set's slots (id, type, "
     "parameters); needs no key, verifies nothing\n  --from URL\n",
     SlotListCmd, false},
    {"slot add",
     "bkv slot add passkey|recovery-key|vault --from URL (--key-file F | "
     "--vault ADDR ... | --passkey) [--out F] [--rp-id ID] [--open] "
     "[--passkey-timeout S] [--json]\n  add a way in, opening the set with "
     "one it has; re-uploads nothing. passkey: serves a one-time page on "
     "127.0.0.1 and prints its URL (opens $BROWSER with --open); "
     "recovery-key: writes a new 64-digit key to --out F; vault: registers "
     "a new secret behind a new password (open with --key-file or "
     "--passkey). A set from before key slots gets its keyring here\n"
     "  --from URL\n  --key-file F\n  --passkey\n  --out F\n"
     "  --rp-id ID\n  --open\n  --passkey-timeout S\n",
     SlotAddCmd, true},
    {"slot remove",
     "bkv slot remove SLOT-ID --from URL (--key-file F | --vault ADDR ... | "
     "--passkey) [--json]\n  remove a slot (a unique prefix of its id); the "
     "last one is refused. Whoever already unwrapped the master key keeps "
     "it: bkv rekey\n  --from URL\n  --key-file F\n  --passkey\n",
     SlotRemoveCmd, true},
    {"rekey",
     "bkv rekey --from URL --to NEWURL (--key-file F | --vault ADDR ... | "
     "--passkey) [--json]\n  a new master key: every snapshot is "
     "re-encrypted into the empty store NEWURL (restored to a private "
     "directory under $TMPDIR, then backed up, keeping its path and time); "
     "its keyring has only the slot you opened with. Whoever kept the old "
     "master key (a removed slot) reads nothing written there\n"
     "  --from URL\n  --to NEWURL\n  --key-file F\n  --passkey\n",
     RekeyCmd, true},
    {"completion",
     "bkv completion bash\n  print a bash completion script for bkv "
     "(`cmake --install` puts it in share/bash-completion/completions)\n",
     CompletionCmd, false},
};

// The longest command whose words start the positional arguments.
const Command* Find(const std::vector<std::string>& p) {
  const Command* best = nullptr;
  size_t best_words = 0;
  for (const Command& cmd : kCommands) {
    std::vector<std::string> words = absl::StrSplit(cmd.name, ' ');
    if (words.size() > p.size() || words.size() <= best_words) continue;
    if (std::equal(words.begin(), words.end(), p.begin())) {
      best = &cmd;
      best_words = words.size();
    }
  }
  return best;
}

absl::Status Dispatch(Context& c) {
  const auto& p = c.args.positional;
  if (p.empty()) return Usage("no command; see bkv --help");
  const Command* cmd = Find(p);
  if (cmd == nullptr) {
    return Usage(absl::StrCat("unknown command '", p[0], "'; see bkv --help"));
  }
  return cmd->run(c);
}

void PrintHelp(const std::vector<std::string>& words, FILE* out) {
  const Command* cmd = Find(words);
  if (cmd == nullptr) {
    std::fputs(kHelp, out);
    return;
  }
  // The first line is the synopsis, the second a description wrapped here,
  // the rest one flag each.
  const std::vector<std::string> lines = absl::StrSplit(cmd->usage, '\n');
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].empty()) continue;
    if (i != 1) {
      std::fprintf(out, "%s%s\n", i == 0 ? "usage: " : "", lines[i].c_str());
      continue;
    }
    std::string line;
    for (absl::string_view word : absl::StrSplit(lines[i], ' ')) {
      if (word.empty()) continue;
      if (line.size() + word.size() + 1 > 76) {
        std::fprintf(out, "%s\n", line.c_str());
        line.clear();
      }
      absl::StrAppend(&line, line.empty() ? "  " : " ", word);
    }
    std::fprintf(out, "%s\n", line.c_str());
  }
  std::fputs("  --help\n", out);
  if (cmd->vault_flags) std::fputs(kVaultFlags, out);
}

// The flags a command's help lists ("  --flag ..." lines), vault flags too.
std::string FlagsOf(const Command& cmd) {
  std::string flags = "--help";
  const std::string text =
      absl::StrCat(cmd.usage, cmd.vault_flags ? kVaultFlags : "");
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!absl::ConsumePrefix(&line, "  --")) continue;
    const size_t end = line.find_first_of(" =");
    absl::StrAppend(&flags, " --", line.substr(0, end));
  }
  return flags;
}

// One case per command, from kCommands: the script cannot drift from the
// commands it completes.
absl::Status CompletionCmd(Context& c) {
  const auto& p = c.args.positional;
  if (p.size() != 2 || p[1] != "bash") {
    return Usage("usage: bkv completion bash");
  }
  std::string top = "--help --version", cases;
  for (const Command& cmd : kCommands) {
    const std::string name = cmd.name;
    const size_t space = name.find(' ');
    if (space == std::string::npos) absl::StrAppend(&top, " ", name);
    std::string subs;
    for (const Command& sub : kCommands) {
      const std::string s = sub.name;
      if (s.size() > name.size() + 1 && s.starts_with(name + " ")) {
        absl::StrAppend(&subs, " ", s.substr(name.size() + 1));
      }
    }
    absl::StrAppend(&cases, "    \"", name, "\") echo \"", FlagsOf(cmd), subs,
                    "\" ;;\n");
  }
  std::fprintf(
      c.out,
      "# bash completion for bkv (generated by `bkv completion bash`)\n"
      "_bkv_words() {\n"
      "  case $1 in\n"
      "    \"\") echo \"%s\" ;;\n"
      "%s"
      "    *) return 1 ;;\n"
      "  esac\n"
      "}\n"
      "_bkv() {\n"
      "  local cur=${COMP_WORDS[COMP_CWORD]} words\n"
      "  if ((COMP_CWORD > 2)) &&\n"
      "    words=$(_bkv_words \"${COMP_WORDS[1]} ${COMP_WORDS[2]}\"); then :\n"
      "  elif ((COMP_CWORD > 1)); then\n"
      "    words=$(_bkv_words \"${COMP_WORDS[1]}\") || words=\"\"\n"
      "  else\n"
      "    words=$(_bkv_words \"\")\n"
      "  fi\n"
      "  COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n"
      "}\n"
      "complete -o default -F _bkv bkv\n",
      top.c_str(), cases.c_str());
  return absl::OkStatus();
}

}  // namespace

std::vector<std::string> CommandNames() {
  std::vector<std::string> names;
  for (const Command& cmd : kCommands) names.push_back(cmd.name);
  return names;
}

int Run(int argc, char** argv, FILE* out, FILE* err) {
  if (argc == 2 && std::string_view(argv[1]) == "--version") {
    std::fprintf(out,
                 "bkv %s (vault protocol 2, repository format 2, backup "
                 "stream format 1)\n",
                 BKV_PROJECT_VERSION);
    return kOk;
  }
  std::vector<std::string> words;  // the command words before --help
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      PrintHelp(words, out);
      return kOk;
    }
    if (!arg.starts_with("-")) words.emplace_back(arg);
  }
  auto args = ParseArgs(argc, argv);
  if (args.ok()) {
    const auto& p = args->positional;
    absl::Status applied = ApplySettings(args->values, p.empty() ? "" : p[0],
                                         Value(*args, "--config"), ProcessEnv);
    if (!applied.ok()) args = Usage(std::string(applied.message()));
  }
  if (!args.ok()) {
    std::fprintf(err, "bkv: %s\n",
                 std::string(args.status().message()).c_str());
    return kUsage;
  }
  Context c{std::move(*args), out, err};
  CancelScope vault_calls(&c.cancel);
  absl::Status s = Dispatch(c);
  if (s.ok()) return kOk;
  if (c.interrupts && c.interrupts->signal() != 0) {
    s = Interrupted(c.interrupts->signal());
  }
  std::fprintf(err, "bkv: %s\n", std::string(s.message()).c_str());
  if (c.args.json && !s.GetPayload(kReportedPayload)) {
    std::fprintf(out, "{\"error\":%s,\"exit_code\":%d}\n",
                 JsonString(std::string(s.message())).c_str(), ExitFor(s));
  }
  return ExitFor(s);
}

}  // namespace bkv::cli
