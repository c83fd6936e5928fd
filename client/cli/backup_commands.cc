// bkv backup, bkv restore.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <ctime>
#include <filesystem>
#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/backup_set.h"
#include "client/cli/command.h"
#include "client/cli/command_tree.h"
#include "client/cli/progress.h"
#include "client/restore_staging.h"
#include "crypto/status_macros.h"

namespace bkv::cli {
namespace {

// Accepted and ignored, with a note on stderr.
constexpr char kIncrementalNote[] =
    "bkv: --incremental is deprecated: incremental (v2) is the default\n";

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
  auto snap = repo->Backup(c.args.operands[0], &st);
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

// Staging folders that a killed restore (v1 or v2) left next to `target`,
// with decrypted data in them (client/restore_staging.h).
void SweepStaging(Context& c, const std::string& target) {
  for (const std::string& path :
       SweepRestoreStaging(target, kLeftoverMinAgeS)) {
    std::fprintf(c.err,
                 "bkv: deleted %s, the staging folder of an interrupted "
                 "restore\n",
                 path.c_str());
  }
}

absl::Status Backup(Context& c) {
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
  auto r = set.Backup(c.args.operands[0], opts);
  progress.Done();
  if (!r.ok()) return r.status();
  ReportSkipped(c, r->skipped_special);
  if (c.args.json) {
    std::fprintf(c.out,
                 "{\"format\":1,\"id\":\"%s\",\"object\":%s,\"store\":%s,"
                 "\"input_bytes\":%llu,\"stored_bytes\":%llu,"
                 "\"skipped_special\":%s}\n",
                 r->id.c_str(), JsonString(r->object).c_str(),
                 JsonString(store.url()).c_str(),
                 static_cast<unsigned long long>(r->input_bytes),
                 static_cast<unsigned long long>(r->stored_bytes),
                 JsonArray(r->skipped_special).c_str());
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

}  // namespace

void RegisterBackupCommands(CommandTree& t) {
  CLI::App* b = t.Add(
      t.root(), "backup", "back up a file or a directory as a new snapshot",
      "Only changed files are read and only new chunks uploaded; a progress "
      "line on a terminal shows new vs deduplicated bytes; waits up to S "
      "seconds (default 300) for a running prune. A store holding a "
      "single-stream (v1) set gets v1 backups (--format 1 [--keep N] "
      "[--no-compress] [--chunk-size N], deprecated). With --vault, the "
      "first backup into an empty store registers a new key.",
      Backup);
  t.Operand(b, "PATH", "the file or directory to back up");
  t.Value(b, "--to", "URL", "the store (or $BKV_STORE)");
  t.KeyFlags(b);
  t.Value(b, "--lock-wait", "S", "wait up to S seconds for a running prune");
  t.Value(b, "--format", "1|2", "2 (incremental, the default) or 1");
  t.Value(b, "--keep", "N", "v1: keep the newest N backups");
  t.Switch(b, "--no-compress", "v1: store the data uncompressed");
  t.Value(b, "--chunk-size", "N", "v1: the stream's chunk size");
  t.Switch(b, "--incremental", "deprecated: incremental is the default");

  CLI::App* r = t.Add(
      t.root(), "restore", "restore a snapshot (or a v1 backup) to a path",
      "Restores the newest snapshot (or ID, a unique prefix; only P of it "
      "with --path) to PATH, which must not exist or be an empty folder; a "
      "single-stream (v1) set is detected and its newest backup (or --backup "
      "ID) restored.",
      Restore);
  t.Value(r, "--from", "URL", "the store (or $BKV_STORE)");
  t.Value(r, "--to", "PATH", "where to restore (must not exist, or be empty)");
  t.KeyFlags(r);
  t.Value(r, "--snapshot", "ID|latest", "which snapshot (default latest)");
  t.Value(r, "--path", "P", "only this file or folder of the snapshot");
  t.Value(r, "--backup", "ID|latest", "v1: which backup (default latest)");
  t.Value(r, "--lock-wait", "S", "wait up to S seconds for the lock");
}

}  // namespace bkv::cli
