#include "client/repo/repo_lock.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/repo/settled_read.h"
#include "crypto/hex.h"
#include "crypto/random.h"

namespace bkv {
namespace {

constexpr absl::string_view kLockPrefix = "lock-";

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string HostName() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof(buf) - 1) != 0) return "?";
  return buf;
}

std::vector<uint8_t> LockAd(const ObjectId& repo, const ObjectId& id) {
  std::vector<uint8_t> ad(repo.begin(), repo.end());
  ad.insert(ad.end(), id.begin(), id.end());
  return ad;
}

// Stale: not refreshed for a lease, or held by a process of this host that
// no longer exists (a killed backup or prune).
bool Stale(const LockRecord& l, int64_t lease_s) {
  if (NowMs() - l.time_ms > lease_s * 1000) return true;
  return l.host == HostName() && l.pid != 0 &&
         ::kill(static_cast<pid_t>(l.pid), 0) != 0 && errno == ESRCH;
}

}  // namespace

RepoLock::RepoLock(BlobStore& store, const RepoKeys& keys, const ObjectId& repo,
                   const Params& params)
    : store_(store), keys_(keys), repo_(repo), params_(params) {
  SystemRandom().Bytes(id_);
  name_ = absl::StrCat(kLockPrefix, HexEncode(id_));
}

RepoLock::~RepoLock() {
  if (written_) (void)store_.Delete(name_);
}

absl::StatusOr<std::unique_ptr<RepoLock>> RepoLock::Acquire(
    BlobStore& store, const RepoKeys& keys, const ObjectId& repo,
    const Params& params) {
  std::unique_ptr<RepoLock> lock(new RepoLock(store, keys, repo, params));
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(params.wait_s);
  while (true) {  // bounded by the deadline
    if (auto s = lock->Write(); !s.ok()) return s;
    auto conflict = lock->Conflict();
    if (!conflict.ok()) return conflict.status();
    if (conflict->empty()) return lock;
    // Out of the way while waiting, so the prune we wait for is not
    // blocked by us.
    if (auto s = store.Delete(lock->name_); !s.ok()) return s;
    lock->written_ = false;
    if (params.exclusive || std::chrono::steady_clock::now() >= deadline) {
      return absl::UnavailableError(absl::StrCat(
          store.url(), ": ", *conflict,
          params.exclusive ? "; run prune again when it has finished"
                           : "; run the backup again when it has finished",
          " (a lock of a process that died goes stale after ",
          params.lease_s / 60, " minutes)"));
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}

absl::Status RepoLock::Write() {
  LockRecord rec{params_.exclusive, NowMs(), static_cast<uint32_t>(::getpid()),
                 HostName()};
  auto sealed =
      keys_.Seal(RepoObjectKind::kLock, LockAd(repo_, id_), EncodeLock(rec));
  if (!sealed.ok()) return sealed.status();
  if (auto s = PutBytes(store_, name_, *sealed); !s.ok()) return s;
  written_ = true;
  refreshed_ = std::chrono::steady_clock::now();
  return absl::OkStatus();
}

absl::StatusOr<std::string> RepoLock::Conflict() {
  auto list = store_.List();
  if (!list.ok()) return list.status();
  for (const BlobInfo& b : *list) {
    if (!absl::StartsWith(b.name, kLockPrefix) || b.name == name_) continue;
    auto verdict = Judge(b.name);
    if (!verdict.ok() || !verdict->empty()) return verdict;
  }
  return std::string();
}

// "" when the lock `name` does not stand in our way.
absl::StatusOr<std::string> RepoLock::Judge(const std::string& name) {
  ObjectId id;
  auto hex = HexDecode(std::string_view(name).substr(kLockPrefix.size()));
  absl::StatusOr<std::vector<uint8_t>> pt =
      absl::DataLossError("bad lock name");
  if (hex.ok() && hex->size() == id.size()) {
    std::copy(hex->begin(), hex->end(), id.begin());
    // Read again while short: its holder may be refreshing it.
    pt = GetOpened(store_, keys_, RepoObjectKind::kLock, LockAd(repo_, id),
                   name, 4096);
  }
  if (absl::IsNotFound(pt.status())) return std::string();  // released
  if (!pt.ok() && !absl::IsDataLoss(pt.status())) return pt.status();
  auto rec =
      pt.ok() ? DecodeLock(*pt) : absl::StatusOr<LockRecord>(pt.status());
  if (!rec.ok()) {
    // Not sealed under this repository's id: a client that created the
    // repository at the same moment (it adopts the surviving config before
    // it commits), or a foreign object. Prune waits for it to go.
    if (!params_.exclusive) return std::string();
    return absl::StrCat(name,
                        " does not open under this repository (a client "
                        "racing to create it, or a foreign object: delete "
                        "it if it stays)");
  }
  if (Stale(*rec, params_.lease_s)) {
    if (params_.exclusive) {
      if (auto s = store_.Delete(name); !s.ok()) return s;
    }
    return std::string();
  }
  if (!params_.exclusive && !rec->exclusive) return std::string();
  return absl::StrCat(rec->exclusive ? "a prune" : "a backup", " from ",
                      rec->host, " (pid ", rec->pid, ") holds ", name,
                      ", refreshed ", (NowMs() - rec->time_ms) / 1000,
                      " s ago");
}

absl::Status RepoLock::Keep() {
  const auto age = std::chrono::steady_clock::now() - refreshed_;
  if (age > std::chrono::seconds(params_.lease_s / 2)) {
    return absl::AbortedError(absl::StrCat(
        "the repository lock ", name_, " was not refreshed for ",
        std::chrono::duration_cast<std::chrono::seconds>(age).count(),
        " s (the lease is ", params_.lease_s,
        " s), so a prune may have removed data this backup reuses; run the "
        "backup again (what it uploaded is reused)"));
  }
  if (age < std::chrono::seconds(params_.lease_s / 6)) return absl::OkStatus();
  return Write();
}

absl::Status RepoLock::Confirm() {
  auto info = store_.Stat(name_);
  if (absl::IsNotFound(info.status())) {
    return absl::AbortedError(absl::StrCat(
        "the repository lock ", name_,
        " was removed while this backup ran; run the backup again (what it "
        "uploaded is reused)"));
  }
  if (!info.ok()) return info.status();
  return Keep();
}

}  // namespace bkv
