#include "server/account_command.h"

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "crypto/status_macros.h"
#include "server/build_vault.h"
#include "server/config.h"
#include "server/data_dir_lock.h"
#include "server/log.h"

namespace bkv::server {
namespace {

constexpr char kCommand[] = "bkv-vault account purge: ";

// How old the record's last write must be: the longest login_ttl any
// config allows (a ticket is checked by the serving config, not this one),
// plus a margin for the clocks of the nodes that wrote it and will check
// tickets (review of `purge`, finding 8). Also the most a last write may
// lie in the future.
constexpr int64_t kMaxLoginTtlMs = 60'000;
constexpr int64_t kClockMarginMs = 60'000;

struct PurgeFlags {
  std::string account;
  bool yes = false;
  int64_t expect_epoch = -1;  // -1: not given
  ConfigArgs serve;
};

// The quiet time; BKV_TEST_PURGE_QUIET_MS shortens it for tests, in a
// --dev vault on its generated token and issuer only.
absl::StatusOr<Vault::PurgeRequest> Quiet(const VaultConfig& c) {
  Vault::PurgeRequest r;
  r.quiet_ms = kMaxLoginTtlMs + kClockMarginMs;
  r.skew_ms = kClockMarginMs;
  const char* hook = std::getenv("BKV_TEST_PURGE_QUIET_MS");
  if (hook == nullptr) return r;
  BKV_RETURN_IF_ERROR(TestHookAllowed(c, "BKV_TEST_PURGE_QUIET_MS",
                                      "shortens the purge's wait"));
  if (!absl::SimpleAtoi(hook, &r.quiet_ms) || r.quiet_ms < 0) {
    return absl::InvalidArgumentError("BKV_TEST_PURGE_QUIET_MS: not a number");
  }
  return r;
}

std::string Describe(const std::string& account, const Vault::Purged& p) {
  return absl::StrCat(
      "account '", account, "': its record (", p.state, ", epoch ", p.epoch,
      ", last written ",
      absl::FormatTime("%Y-%m-%d %H:%M:%S UTC",
                       absl::FromUnixMillis(p.updated_ms), absl::UTCTimeZone()),
      ")");
}

void Report(const std::string& account, const std::string& tag,
            const Vault::Purged& p, std::ostream& out) {
  Log("warn", "account_purged",
      {{"account", tag}, {"state", p.state}, {"epoch", absl::StrCat(p.epoch)}});
  out << "purged " << Describe(account, p) << ", audit tag " << tag
      << ": deleted and shredded; this vault now reports NONE at epoch 0. "
         "Start the vault; issue the account new tokens if a holder of its "
         "token made that registration\n";
}

// The record as it is; refusals before anything changes. Exit code, or -1
// to go on with `seen`.
int Look(const PurgeFlags& f, Vault& vault, const Vault::PurgeRequest& quiet,
         Vault::Purged& seen, Io io) {
  Vault::PurgeRequest preview = quiet;
  preview.preview = true;
  auto p = vault.Purge(f.account, preview);
  if (absl::IsNotFound(p.status())) {
    io.err << kCommand << "account '" << f.account
           << "': " << p.status().message()
           << "; nothing changed (the account id is the tokens' `sub`; is "
              "this the right vault?)\n";
    return kExitNoRecord;
  }
  if (!p.ok()) {
    io.err << kCommand << "refused: " << p.status().message()
           << "; nothing changed\n";
    return kExitFailed;
  }
  if (!f.yes) {
    io.out << "would purge " << Describe(f.account, *p) << "\n";
    io.err << kCommand
           << "not confirmed: this destroys the record here for good (a key "
              "share, its attempt counter and its registration epoch); run "
              "again with --yes (and --expect-epoch "
           << p->epoch << "); nothing changed\n";
    return kExitUsage;
  }
  if (f.expect_epoch >= 0 &&
      static_cast<uint64_t>(f.expect_epoch) != p->epoch) {
    io.err << kCommand << "refused: " << Describe(f.account, *p)
           << " is not at the expected epoch " << f.expect_epoch
           << "; nothing changed\n";
    return kExitNotExpected;
  }
  seen = *std::move(p);
  return -1;
}

// Waits out the quiet time, then purges the record `seen` showed.
int PurgeSeen(const PurgeFlags& f, VaultNode& node, Vault::PurgeRequest request,
              const Vault::Purged& seen, Io io) {
  if (seen.wait_ms > 0) {
    io.out << "waiting " << (seen.wait_ms + 999) / 1000
           << " s: the record was written recently, and a registration "
              "ticket that wrote it may still be valid\n";
    absl::SleepFor(absl::Milliseconds(seen.wait_ms));
  }
  request.expected_version = seen.version;
  auto purged = node.vault->Purge(f.account, request);
  if (!purged.ok()) {
    io.err << kCommand << "failed: " << purged.status().message()
           << (absl::IsAborted(purged.status()) ? "\n" : "; nothing purged\n");
    return kExitFailed;
  }
  Report(f.account, node.audit->AccountTag(f.account), *purged, io.out);
  if (!purged->unfinished.ok()) {
    io.err << kCommand << "the record is gone, but "
           << purged->unfinished.message() << "\n";
    return kExitFailed;
  }
  return kExitOk;
}

// Everything after the settings; one exit code each.
int Purge(const PurgeFlags& f, const VaultConfig& c, Io io) {
  if (c.UsesQuorum()) {
    io.err << kCommand
           << "refused: a node of an endorsement quorum ([freshness] "
              "members_file) cannot purge yet (its heads need the running "
              "members); bring the realm up under a new id instead "
              "(docs/operations.md, \"Replacing a realm\"); nothing changed\n";
    return kExitFailed;
  }
  auto quiet = Quiet(c);
  if (!quiet.ok()) {
    io.err << kCommand << quiet.status().message() << "\n";
    return kExitUsage;
  }
  auto lock = DataDirLock::Acquire(c.data_dir);
  if (absl::IsUnavailable(lock.status())) {
    io.err << kCommand << lock.status().message() << "; nothing changed\n";
    return kExitVaultServing;
  }
  if (!lock.ok()) {
    io.err << kCommand << "refused: " << lock.status().message() << "\n";
    return kExitFailed;
  }
  auto node = BuildVault(c, *std::move(lock));
  if (!node.ok()) {
    io.err << kCommand << "refused: " << node.status().message()
           << "; nothing purged\n";
    return kExitFailed;
  }
  Vault::Purged seen;
  if (int code = Look(f, *(*node)->vault, *quiet, seen, io); code >= 0) {
    return code;
  }
  return PurgeSeen(f, **node, *quiet, seen, io);
}

int RunPurge(const PurgeFlags& f, Io io) {
  auto config = LoadParsedConfig(f.serve);
  if (!config.ok()) {
    io.err << kCommand << config.status().message() << "\n";
    return kExitUsage;
  }
  return Purge(f, *config, io);
}

}  // namespace

void RegisterAccountCommands(VaultCli& cli) {
  CLI::App* account = cli.Add(cli.root(), "account",
                              "operator actions on one account", "", nullptr);
  auto f = std::make_shared<PurgeFlags>();
  CLI::App* purge = cli.Add(
      *account, "purge", "remove one account's record and epoch tombstone",
      "With the vault stopped: deletes the account's whole record here (an "
      "ACTIVE, LOCKED or pending registration, and the epoch tombstone a "
      "delete leaves) through the vault's own store and freshness layer, "
      "shreds it and writes a `purge` audit line. Waits until the record's "
      "last write is two minutes old. For a realm squatted by a holder of the "
      "account's token, or whose registration counter was pushed out of "
      "reach. Exit 2: not confirmed (what would be purged is printed); 3: no "
      "record for the account; 4: a vault is serving this data directory; "
      "5: not at --expect-epoch. The vault's settings are serve's (--config "
      "and its "
      "flags). docs/operations.md, \"Purging one account at a realm\".",
      [f](Io io) { return RunPurge(*f, io); });
  cli.Value(purge, "--account", f->account, "ID",
            "the account id (its tokens' `sub`)")
      ->required();
  cli.Switch(purge, "--yes", f->yes,
             "confirm: the account's key share here is destroyed (without "
             "it: print what would be purged, exit 2)");
  purge
      ->add_option("--expect-epoch", f->expect_epoch,
                   "refuse (exit 5) unless the record is at epoch E (the "
                   "epoch the user's error message or the preview names)")
      ->type_name("E");
  AddConfigFlags(*purge, f->serve);
}

}  // namespace bkv::server
