// bkv realms migrate: the key moves to a replaced realm set
// (docs/threshold.md, "Replacing a realm set").
#include <CLI/CLI.hpp>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/cli/command.h"
#include "client/cli/command_tree.h"
#include "client/client_state.h"
#include "client/realm_set_file.h"
#include "crypto/hex.h"
#include "crypto/status_macros.h"

namespace bkv::cli {
namespace {

namespace fs = std::filesystem;

// Keeps the old set as `path`.previous, then puts the new one at `path`:
// each written to a temporary, synced and renamed, so `path` is always one
// whole set. The new file carries the old set's keyring slot label.
absl::Status SwitchRealmSetFile(const std::string& path,
                                const std::string& old_text,
                                const threshold::RealmSet& next,
                                const std::array<uint8_t, 32>& slot) {
  const fs::path p(path);
  const std::string dir =
      p.parent_path().empty() ? "." : p.parent_path().string();
  const std::string name = p.filename().string();
  BKV_RETURN_IF_ERROR(RememberLine(dir, name + ".previous", old_text));
  const std::string text =
      absl::StrCat(client::FormatRealmSet(next), "slot ", HexEncode(slot));
  return RememberLine(dir, name, text);
}

// Before anything is counted (review finding 5): the switch writes F and
// F.previous in F's directory, and once the key moved this device refuses
// the old file, so a switch that cannot happen must stop the run first.
absl::Status CheckSwitchable(const std::string& path) {
  const fs::path p(path);
  const fs::path dir = p.parent_path().empty() ? "." : p.parent_path();
  const fs::path probe = dir / (p.filename().string() + ".switch-probe");
  bool ok = static_cast<bool>(std::ofstream(probe));
  std::error_code ec;
  ok = fs::remove(probe, ec) && ok;
  if (ok) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "cannot write in ", dir.string(), ": the migration replaces ", path,
      " there (keeping the old set as ", path,
      ".previous); make the directory writable, or copy the file to one "
      "that is and pass that. Nothing was spent"));
}

void SayMigration(Context& c, const std::string& account,
                  const std::string& path, const threshold::RealmSet& next,
                  const client::ThresholdMigration& m) {
  if (m.resumed) {
    std::fprintf(c.err,
                 "bkv: resumed: the new realm set already held the "
                 "registration (nothing was spent)\n");
  }
  for (const std::string* said : {&m.rolled_forward, &m.locked_deleted}) {
    if (!said->empty()) std::fprintf(c.err, "bkv: note: %s\n", said->c_str());
  }
  if (!m.faults.empty()) {
    std::fprintf(c.err, "bkv: WARNING: realm fault, excluded: %s\n",
                 client::DescribeFaults(m.faults).c_str());
  }
  if (!m.lagging.empty()) {
    std::fprintf(c.err,
                 "bkv: WARNING: %s; a later recovery through the new set "
                 "brings it over (after a reset when it is still on the old "
                 "set's registration)\n",
                 client::DescribeFaults(m.lagging).c_str());
  }
  for (const auto& f : m.not_deleted) {
    std::fprintf(c.err, "bkv: SECURITY: %s left the set but %s\n",
                 f.realm_id.c_str(), f.what.c_str());
  }
  for (const auto& f : m.retired) {
    std::fprintf(c.err, "bkv: note: %s was %s\n", f.realm_id.c_str(),
                 f.what.c_str());
  }
  if (c.args.json) {
    std::vector<std::string> gone, retired;
    for (const auto& id : m.deleted) gone.push_back(JsonString(id));
    for (const auto& f : m.retired) retired.push_back(JsonString(f.realm_id));
    std::fprintf(c.out,
                 "{\"migrated\":true,\"resumed\":%s,\"deleted\":[%s],"
                 "\"not_deleted\":%zu,\"retired\":[%s]}\n",
                 m.resumed ? "true" : "false", absl::StrJoin(gone, ",").c_str(),
                 m.not_deleted.size(), absl::StrJoin(retired, ",").c_str());
    return;
  }
  std::fprintf(c.out,
               "%s: the key is now held by %d realms (t = %d, %u attempts per "
               "realm); %s names the new set%s\n",
               account.c_str(), next.n(), next.t(),
               m.registration.per_realm_limit, path.c_str(),
               m.deleted.empty() ? ""
                                 : absl::StrCat("; deleted at ",
                                                absl::StrJoin(m.deleted, ", "))
                                       .c_str());
}

absl::Status RealmsMigrateCmd(Context& c) {
  BKV_ASSIGN_OR_RETURN(std::string path, Need(c.args, "--realms"));
  BKV_ASSIGN_OR_RETURN(std::string to_path, Need(c.args, "--to"));
  const std::string account = Value(c.args, "--account");
  if (account.empty())
    return Usage("--realms needs --account (or BKV_ACCOUNT)");
  client::RealmSetSlot slot;
  BKV_ASSIGN_OR_RETURN(auto cur, client::LoadRealmSetFile(path, &slot));
  std::vector<client::RetiredRealm> retired;
  BKV_ASSIGN_OR_RETURN(auto next,
                       client::LoadRealmSetFile(to_path, nullptr, &retired));
  // Already switched (an earlier run stopped before deleting at the realms
  // that left): the old set is in F.previous.
  const std::string previous = path + ".previous";
  const bool switched =
      client::FormatRealmSet(cur) == client::FormatRealmSet(next);
  if (switched && !fs::exists(previous)) {
    return Usage(absl::StrCat(path, " already is the realm set of ", to_path,
                              " and no ", previous,
                              " is left: nothing to migrate"));
  }
  if (!switched) BKV_RETURN_IF_ERROR(CheckSwitchable(path));
  const std::string from_path = switched ? previous : path;
  BKV_ASSIGN_OR_RETURN(std::string old_text,
                       ReadSmallFile(from_path, "realm-set file"));
  BKV_ASSIGN_OR_RETURN(auto from,
                       OpenRealms(c.args, c.err, from_path, retired));
  BKV_ASSIGN_OR_RETURN(auto to, OpenRealms(c.args, c.err, to_path));
  const threshold::RealmSet& old_set = switched ? from->realms() : cur;
  const std::string note = client::MigrationNote(old_set, next);
  if (!note.empty()) std::fprintf(c.err, "bkv: note: %s\n", note.c_str());
  BKV_ASSIGN_OR_RETURN(SecretBytes pw, AskPassword(c.args, "password"));
  const std::array<uint8_t, 32> label =
      slot ? *slot : client::RealmSetDigest(cur);
  auto got = to->Migrate(account, pw, *from, [&]() -> absl::Status {
    if (switched) return absl::OkStatus();
    return SwitchRealmSetFile(path, old_text, next, label);
  });
  if (!got.ok()) return Explained(got.status());
  SayMigration(c, account, path, next, *got);
  if (got->not_deleted.empty()) {
    std::error_code ec;
    fs::remove(previous, ec);
    return absl::OkStatus();
  }
  absl::Status left = WithExit(
      kLeaverLeft,
      absl::StrCat(
          "migrated, but a realm that left still holds the replaced "
          "registration (above): run `bkv realms migrate` again with the same "
          "flags (",
          previous, " keeps the old set for it)"));
  if (c.args.json) left.SetPayload(kReportedPayload, absl::Cord("1"));
  return left;
}

}  // namespace

void RegisterRealmCommands(CommandTree& t) {
  CLI::App* realms =
      t.Add(t.root(), "realms", "the threshold realm set", "", nullptr);
  CLI::App* migrate = t.Add(
      *realms, "migrate", "move the key to a new realm set (--to F)",
      "Recovers the key through the realm set of --realms (one attempt at "
      "each realm of the agreeing group, like a restore; every realm that "
      "leaves must answer it), registers it under the same password at every "
      "realm of --to (all of them must answer), checks it there, deletes the "
      "record at the realms that left, then replaces the --realms file with "
      "the new set (the old one kept as F.previous). Interrupted: run it "
      "again with the same flags; it resumes without spending an attempt. "
      "Exit 15: a realm that left still holds the old registration (a "
      "security state): run it again until it exits 0. docs/threshold.md, "
      "\"Replacing a realm set\".",
      RealmsMigrateCmd);
  t.Value(migrate, "--to", "F", "the new realm-set file");
  t.VaultFlags(migrate);
}

}  // namespace bkv::cli
