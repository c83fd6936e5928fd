#include "client/cli/command.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <ctime>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "bkv/vault/v1/error_detail.h"
#include "client/cancellable_blob_store.h"
#include "client/cli/cli.h"
#include "client/cli/passkey_page.h"
#include "client/posix_file.h"
#include "crypto/status_macros.h"

namespace bkv::cli {
namespace {

// A store seen through the command's cancellation (CancellableBlobStore):
// a stopped operation deletes what it wrote.
class InterruptibleStore final : public BlobStore {
 public:
  InterruptibleStore(std::unique_ptr<BlobStore> inner, Context& c)
      : inner_(std::move(inner)), view_(*inner_), c_(c) {
    view_.set_call(&c.cancel);
  }
  // What the store could not clean up outlives it, for the final message.
  ~InterruptibleStore() override {
    for (std::string& f : inner_->FailedCleanups()) {
      c_.failed_cleanups.push_back(std::move(f));
    }
  }
  absl::Status Put(std::string_view name, ByteSource& source) override {
    return view_.Put(name, source);
  }
  absl::Status PutIfAbsent(std::string_view name, ByteSource& source) override {
    return view_.PutIfAbsent(name, source);
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
  absl::StatusOr<std::vector<BlobInfo>> FindLeftovers() override {
    return inner_->FindLeftovers();
  }
  std::vector<std::string> FailedCleanups() override {
    return inner_->FailedCleanups();
  }

 private:
  std::unique_ptr<BlobStore> inner_;
  CancellableBlobStore view_;
  Context& c_;
};

}  // namespace

void CatchInterrupts(Context& c) { c.interrupts.emplace(c.cancel); }

// Command-line mistakes carry this payload; ExitFor() maps them to kUsage.
constexpr char kUsageUrl[] = "bkv.cli/Usage";

absl::Status Usage(std::string_view msg) {
  absl::Status s =
      absl::InvalidArgumentError(absl::StrCat("usage: ", std::string(msg)));
  s.SetPayload(kUsageUrl, absl::Cord("1"));
  return s;
}

// An outcome with an exit code of its own (15, 16) carries the code.
constexpr char kExitUrl[] = "bkv.cli/Exit";

absl::Status WithExit(ExitCode code, std::string_view msg) {
  absl::Status s = absl::FailedPreconditionError(std::string(msg));
  s.SetPayload(kExitUrl, absl::Cord(absl::StrCat(static_cast<int>(code))));
  return s;
}

// A command stopped by a signal carries its number; the exit code is
// 128 + signal, as a shell reports a process the signal ended.
constexpr char kSignalUrl[] = "bkv.cli/Signal";

absl::Status Interrupted(int sig, const std::vector<std::string>& failed) {
  absl::Status s = absl::CancelledError(
      failed.empty()
          ? "interrupted: cleaned up: this run's temporary objects and "
            "partial files were deleted (objects it completed stay for the "
            "next run to reuse or prune)"
          : absl::StrCat(
                "interrupted: NOT all cleaned up: the store kept ",
                absl::StrJoin(failed, "; "),
                ". Its parts take space until the store aborts them: give "
                "the bucket a lifecycle rule (AbortIncompleteMultipartUpload) "
                "or abort them with the store's own tools; `bkv check` lists "
                "those it can see. This run's other temporary objects and "
                "partial files were deleted"));
  s.SetPayload(kSignalUrl, absl::Cord(absl::StrCat(sig)));
  return s;
}

// The one place a Status becomes an exit code.
namespace {
int PasskeyExit(PasskeyError kind) {
  switch (kind) {
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
  return kFailure;
}
}  // namespace

int ExitFor(const absl::Status& s) {
  if (s.GetPayload(kUsageUrl)) return kUsage;
  if (auto code = s.GetPayload(kExitUrl)) {
    int n = kFailure;
    (void)absl::SimpleAtoi(std::string(*code), &n);
    return n;
  }
  if (auto kind = PasskeyErrorOf(s)) return PasskeyExit(*kind);
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
                                          const std::string& what,
                                          bool no_symlink) {
  int fd = ::open(path.c_str(),
                  O_RDONLY | O_CLOEXEC | (no_symlink ? O_NOFOLLOW : 0));
  if (fd < 0 && errno == ELOOP && no_symlink) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, " ", path,
                     " is a symbolic link: refused (put the file itself "
                     "there, or name its target)"));
  }
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

// A flag's value, or "" (settings.h already filled in the environment's
// and the config file's).
std::string Value(const Args& a, const std::string& flag) {
  auto it = a.values.find(flag);
  return it == a.values.end() ? "" : it->second;
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

std::string UtcTime(int64_t unix_ms) {
  const time_t t = static_cast<time_t>(unix_ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
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
  return std::make_unique<InterruptibleStore>(std::move(store), c);
}

// What a killed run (SIGKILL, power cut) left in the store: temporaries no
// running Put holds, deleted by the next backup or prune.
namespace {

StoreLeftovers Summed(const absl::StatusOr<std::vector<BlobInfo>>& found) {
  StoreLeftovers l;
  if (!found.ok()) {
    l.unlisted = std::string(found.status().message());
    return l;
  }
  l.objects = found->size();
  for (const BlobInfo& b : *found) l.bytes += b.size;
  return l;
}

}  // namespace

StoreLeftovers SweepStore(Context& c, BlobStore& store) {
  StoreLeftovers swept = Summed(store.SweepTemporaries());
  if (swept.objects == 0) return swept;  // best effort
  std::fprintf(c.err,
               "bkv: deleted %zu temporary object%s (%s) that an interrupted "
               "run left in %s\n",
               swept.objects, swept.objects == 1 ? "" : "s",
               Human(swept.bytes).c_str(), store.url().c_str());
  return swept;
}

StoreLeftovers FindStoreLeftovers(BlobStore& store) {
  return Summed(store.FindLeftovers());
}

std::string StoreLeftovers::JsonField(std::string_view key) const {
  return absl::StrCat(",\"", std::string(key), "\":{\"objects\":", objects,
                      ",\"bytes\":", bytes,
                      ",\"listed\":", unlisted.empty() ? "true" : "false", "}");
}

std::string StoreLeftovers::Line() const {
  if (!unlisted.empty())
    return absl::StrCat("leftovers: not listed: ", unlisted);
  if (objects == 0) return "leftovers: none";
  return absl::StrCat("leftovers: ", objects, " temporary object",
                      objects == 1 ? "" : "s", " (", Human(bytes),
                      ") of interrupted runs; the next backup or `bkv prune` "
                      "deletes them");
}

// Where the client remembers each repository's newest snapshot sequence and
// each keyring's generation, to detect a store that rolls back:
// $BKV_STATE_DIR, else $XDG_STATE_HOME/bkv, else ~/.local/state/bkv.
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

absl::StatusOr<std::unique_ptr<Repository>> OpenRepo(const Args& a,
                                                     BlobStore& store,
                                                     const BackupKey& key,
                                                     bool create,
                                                     RepoOptions o) {
  o.create = create;
  o.state_dir = StateDir();
  if (auto it = a.values.find("--lock-wait"); it != a.values.end()) {
    if (!absl::SimpleAtoi(it->second, &o.lock_wait_s) || o.lock_wait_s < 0) {
      return Usage("--lock-wait needs a number of seconds");
    }
  }
  return Repository::Open(store, key, o);
}

}  // namespace bkv::cli
