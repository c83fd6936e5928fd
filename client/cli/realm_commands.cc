// bkv realms migrate: the key moves to a replaced realm set
// (docs/threshold.md, "Replacing a realm set").
#include <CLI/CLI.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "client/cli/command.h"
#include "client/cli/command_tree.h"
#include "client/client_state.h"
#include "client/realm_set_file.h"
#include "crypto/hex.h"
#include "crypto/status_macros.h"

namespace bkv::cli {
namespace {

namespace fs = std::filesystem;

absl::StatusOr<std::string> ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

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
  BKV_RETURN_IF_ERROR(RememberLine(
      dir, name + ".previous", std::string(absl::StripSuffix(old_text, "\n"))));
  const std::string text =
      absl::StrCat(client::FormatRealmSet(next), "slot ", HexEncode(slot));
  return RememberLine(dir, name, text);
}

void SayMigration(Context& c, const std::string& account,
                  const std::string& path, const threshold::RealmSet& next,
                  const client::ThresholdMigration& m) {
  if (m.resumed) {
    std::fprintf(c.err,
                 "bkv: resumed: the new realm set already held the "
                 "registration (nothing was spent)\n");
  }
  if (!m.faults.empty()) {
    std::fprintf(c.err, "bkv: WARNING: realm fault, excluded: %s\n",
                 client::DescribeFaults(m.faults).c_str());
  }
  if (!m.lagging.empty()) {
    std::fprintf(c.err, "bkv: WARNING: %s; the next recovery completes it\n",
                 client::DescribeFaults(m.lagging).c_str());
  }
  for (const auto& f : m.not_deleted) {
    std::fprintf(c.err,
                 "bkv: WARNING: %s left the set but %s (its share of the "
                 "replaced registration is one of t, useless alone)\n",
                 f.realm_id.c_str(), f.what.c_str());
  }
  if (!m.note.empty()) std::fprintf(c.err, "bkv: note: %s\n", m.note.c_str());
  if (c.args.json) {
    std::vector<std::string> gone;
    for (const auto& id : m.deleted) gone.push_back("\"" + id + "\"");
    std::fprintf(c.out,
                 "{\"migrated\":true,\"resumed\":%s,\"deleted\":[%s],"
                 "\"not_deleted\":%zu}\n",
                 m.resumed ? "true" : "false", absl::StrJoin(gone, ",").c_str(),
                 m.not_deleted.size());
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
  BKV_ASSIGN_OR_RETURN(auto next, client::LoadRealmSetFile(to_path));
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
  const std::string from_path = switched ? previous : path;
  BKV_ASSIGN_OR_RETURN(std::string old_text, ReadText(from_path));
  BKV_ASSIGN_OR_RETURN(auto from, OpenRealms(c.args, c.err, from_path));
  BKV_ASSIGN_OR_RETURN(auto to, OpenRealms(c.args, c.err, to_path));
  BKV_ASSIGN_OR_RETURN(SecretBytes pw, AskPassword(c.args, "password"));
  const std::array<uint8_t, 32> label = slot ? *slot : RealmSetSlotOf(cur);
  auto got = to->Migrate(account, pw, *from, [&]() -> absl::Status {
    if (switched) return absl::OkStatus();
    return SwitchRealmSetFile(path, old_text, next, label);
  });
  if (!got.ok()) return Explained(got.status());
  SayMigration(c, account, path, next, *got);
  if (got->not_deleted.empty()) {
    std::error_code ec;
    fs::remove(previous, ec);
  }
  return absl::OkStatus();
}

}  // namespace

void RegisterRealmCommands(CommandTree& t) {
  CLI::App* realms =
      t.Add(t.root(), "realms", "the threshold realm set", "", nullptr);
  CLI::App* migrate = t.Add(
      *realms, "migrate", "move the key to a new realm set (--to F)",
      "Recovers the key through the realm set of --realms (one attempt at "
      "each realm of the agreeing group, like a restore), registers it under "
      "the same password at every realm of --to (all of them must answer), "
      "checks it there, then replaces the --realms file with the new set "
      "(the old one kept as F.previous) and deletes the record at the realms "
      "that left. Interrupted or a realm that left not deleted: run it again "
      "with the same flags; it resumes without spending an attempt. "
      "docs/threshold.md, \"Replacing a realm set\".",
      RealmsMigrateCmd);
  t.Value(migrate, "--to", "F", "the new realm-set file");
  t.VaultFlags(migrate);
}

}  // namespace bkv::cli
