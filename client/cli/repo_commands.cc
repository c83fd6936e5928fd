// bkv snapshots, forget, prune, check, repair: the repository as a whole.
#include <CLI/CLI.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/backup_set.h"
#include "client/cli/command.h"
#include "client/cli/command_tree.h"
#include "crypto/status_macros.h"

namespace bkv::cli {
namespace {

absl::Status Snapshots(Context& c) {
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
  BKV_ASSIGN_OR_RETURN(auto store, Store(c, "--from"));
  BKV_ASSIGN_OR_RETURN(BackupKey key, LoadKey(c.args, c.err, *store));
  BKV_ASSIGN_OR_RETURN(auto repo, OpenRepo(c.args, *store, key, false));
  const StoreLeftovers swept = SweepStore(c, *store);
  BKV_ASSIGN_OR_RETURN(PruneStats p, repo->Prune());
  if (c.args.json) {
    std::fprintf(c.out,
                 "{\"packs_deleted\":%llu,\"packs_repacked\":%llu,"
                 "\"indexes_deleted\":%llu,\"trees_deleted\":%llu,"
                 "\"chunks_dropped\":%llu,\"bytes_freed\":%llu%s}\n",
                 static_cast<unsigned long long>(p.packs_deleted),
                 static_cast<unsigned long long>(p.packs_repacked),
                 static_cast<unsigned long long>(p.indexes_deleted),
                 static_cast<unsigned long long>(p.trees_deleted),
                 static_cast<unsigned long long>(p.chunks_dropped),
                 static_cast<unsigned long long>(p.bytes_freed),
                 swept.JsonField("leftovers_deleted").c_str());
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

// A check's report: one JSON object (`fields`, then read_data, problems,
// leftovers and exit_code), or its problems, notes, summary and leftovers
// as lines. Returns `result`, marked as reported for --json.
absl::Status ReportCheck(Context& c, const std::string& fields,
                         const std::vector<std::string>& problems,
                         const std::vector<std::string>& notes,
                         const std::string& summary, const StoreLeftovers& left,
                         absl::Status result) {
  if (c.args.json) {
    std::fprintf(c.out,
                 "{%s,\"read_data\":%s,\"problems\":%s%s,\"exit_code\":%d}\n",
                 fields.c_str(), c.args.read_data ? "true" : "false",
                 JsonArray(problems).c_str(),
                 left.JsonField("leftovers").c_str(), ExitFor(result));
    result.SetPayload(kReportedPayload, absl::Cord("1"));
    return result;
  }
  for (const std::string& p : problems) {
    std::fprintf(c.out, "problem: %s\n", p.c_str());
  }
  for (const std::string& n : notes)
    std::fprintf(c.out, "note: %s\n", n.c_str());
  std::fprintf(c.out, "%s\n%s\n", summary.c_str(), left.Line().c_str());
  return result;
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
  return ReportCheck(
      c,
      absl::StrCat("\"format\":2,\"snapshots\":", r.snapshots, ",\"indexes\":",
                   r.indexes, ",\"packs\":", r.packs, ",\"chunks\":", r.chunks,
                   ",\"chunks_read\":", r.chunks_read),
      r.problems, r.notes, summary, FindStoreLeftovers(store), result);
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
  return ReportCheck(
      c,
      absl::StrCat("\"list\":\"", ListStateName(r.list),
                   "\",\"listed\":", r.listed, ",\"verified\":", r.verified,
                   ",\"objects\":", r.objects),
      r.problems, {}, summary, FindStoreLeftovers(*store), result);
}

absl::Status Repair(Context& c) {
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

}  // namespace

void RegisterRepoCommands(CommandTree& t) {
  CLI::App* s = t.Add(t.root(), "snapshots", "the snapshots, oldest first", "",
                      Snapshots);
  CLI::App* f = t.Add(
      t.root(), "forget", "drop the snapshots no rule keeps",
      "Deletes the snapshots no rule keeps: the newest N, the newest of each "
      "of the last N days (UTC) that have one, the newest of each of the "
      "last N ISO weeks; `bkv prune` then frees their data.",
      Forget);
  t.Value(f, "--keep-last", "N", "keep the newest N snapshots");
  t.Value(f, "--keep-daily", "N", "keep the newest of each of N days");
  t.Value(f, "--keep-weekly", "N", "keep the newest of each of N weeks");
  CLI::App* p = t.Add(
      t.root(), "prune", "free the data no snapshot references",
      "Mark and sweep; safe to interrupt; refuses (exit 6) while a backup "
      "runs. Also deletes what interrupted runs left in the store.",
      Prune);
  CLI::App* c = t.Add(
      t.root(), "check", "verify the repository",
      "Verifies the repository's structure (every byte with --read-data), "
      "or a v1 set's list against its objects; exit 4 when anything is "
      "wrong.",
      Check);
  t.Switch(c, "--read-data", "read and verify every chunk");
  CLI::App* r =
      t.Add(t.root(), "repair", "rebuild a v1 set's damaged list",
            "Rebuilds a damaged or missing backup list from the authenticated "
            "backup objects; deletes nothing.",
            Repair);
  for (CLI::App* cmd : {s, f, p, c, r}) {
    t.Value(cmd, "--from", "URL", "the store (or $BKV_STORE)");
    t.KeyFlags(cmd);
    t.Value(cmd, "--lock-wait", "S", "wait up to S seconds for the lock");
  }
}

}  // namespace bkv::cli
