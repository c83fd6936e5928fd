// The C ABI's repository calls (bkv_repo_* in bkv/bkv.h): a thin wrapper of
// client/repo/repository.h. The repository reaches its store through a
// CancellableBlobStore, set for each call's bkv_cancel and progress.
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <utility>

#include "client/c_api_internal.h"
#include "client/cancellable_blob_store.h"
#include "client/repo/repository.h"

struct bkv_repo {
  std::unique_ptr<bkv::CancellableBlobStore> view;
  std::unique_ptr<bkv::Repository> repo;
};

namespace bkv {
namespace {

using capi::CopyString;
using capi::Null;
using capi::ToC;

// Points the repository's store at one call's token and progress.
class RepoCall {
 public:
  RepoCall(
      bkv_repo& r, bkv_cancel* cancel, bkv_progress_fn progress = nullptr,
      void* progress_ctx = nullptr,
      CancellableBlobStore::Count count = CancellableBlobStore::Count::kUploads)
      : view_(*r.view) {
    CancellableBlobStore::BytesFn on_bytes;
    if (progress != nullptr) {
      on_bytes = [progress, progress_ctx](uint64_t n) {
        progress(n, 0, progress_ctx);
      };
    }
    view_.set_call(capi::Token(cancel), std::move(on_bytes), count);
  }
  ~RepoCall() { view_.set_call(nullptr); }

 private:
  CancellableBlobStore& view_;
};

void CopyStats(const RepoBackupStats& st, bkv_repo_stats* out) {
  if (out == nullptr) return;
  *out = bkv_repo_stats{};
  out->files = st.files;
  out->files_read = st.files_read;
  out->bytes = st.bytes;
  out->new_bytes = st.new_bytes;
  out->dedup_bytes = st.dedup_bytes;
  out->uploaded_bytes = st.uploaded_bytes;
}

void CopySnapshot(const SnapshotInfo& in, bkv_snapshot& out) {
  out = bkv_snapshot{};
  std::strncpy(out.id, in.id.c_str(), sizeof(out.id) - 1);
  out.seq = in.seq;
  out.time_unix_ms = in.time_ms;
  out.files = in.files;
  out.bytes = in.bytes;
  out.source = CopyString(in.source);
}

}  // namespace
}  // namespace bkv

// At global scope: a definition inside a namespace would not get the
// header's default visibility.
using bkv::CancellableBlobStore;
using bkv::CopySnapshot;
using bkv::CopyStats;
using bkv::RepoBackupStats;
using bkv::RepoCall;
using bkv::RepoOptions;
using bkv::Repository;
using bkv::capi::CopyString;
using bkv::capi::Null;
using bkv::capi::ToC;

extern "C" {

bkv_status bkv_repo_open(bkv_store* store, const bkv_key* key,
                         const bkv_repo_options* options, bkv_repo** out,
                         char** err) {
  if (store == nullptr || key == nullptr || out == nullptr) {
    return ToC(Null("store/key/out"), err);
  }
  RepoOptions opts;
  if (options != nullptr) {
    opts.create = options->create != 0;
    if (options->state_dir != nullptr) opts.state_dir = options->state_dir;
  }
  auto view = std::make_unique<CancellableBlobStore>(*store->store);
  auto master = bkv::capi::MasterKey(*view, *key, opts.state_dir);
  if (!master.ok()) return ToC(master.status(), err);
  auto repo = Repository::Open(*view, *master, opts);
  if (!repo.ok()) return ToC(repo.status(), err);
  *out = new bkv_repo{std::move(view), std::move(*repo)};
  return BKV_OK;
}

void bkv_repo_free(bkv_repo* repo) { delete repo; }

bkv_status bkv_repo_backup(bkv_repo* repo, const char* path,
                           const bkv_repo_backup_options* options,
                           char** out_snapshot_id, bkv_repo_stats* out_stats,
                           char** err) {
  if (repo == nullptr || path == nullptr) return ToC(Null("repo/path"), err);
  const bkv_repo_backup_options o =
      options != nullptr ? *options : bkv_repo_backup_options{};
  RepoCall call(*repo, o.cancel, o.progress, o.progress_ctx);
  RepoBackupStats st;
  auto snap = repo->repo->Backup(path, &st);
  if (!snap.ok()) return ToC(snap.status(), err);
  CopyStats(st, out_stats);
  if (out_snapshot_id != nullptr) *out_snapshot_id = CopyString(snap->id);
  return BKV_OK;
}

bkv_status bkv_repo_snapshots(bkv_repo* repo, bkv_cancel* cancel,
                              bkv_snapshot** out, size_t* out_count,
                              char** err) {
  if (repo == nullptr || out == nullptr || out_count == nullptr) {
    return ToC(Null("repo/out/out_count"), err);
  }
  RepoCall call(*repo, cancel);
  auto snaps = repo->repo->Snapshots();
  if (!snaps.ok()) return ToC(snaps.status(), err);
  auto* list = static_cast<bkv_snapshot*>(
      std::calloc(snaps->size() + 1, sizeof(bkv_snapshot)));
  if (list == nullptr)
    return ToC(absl::ResourceExhaustedError("out of memory"), err);
  for (size_t i = 0; i < snaps->size(); ++i) CopySnapshot((*snaps)[i], list[i]);
  *out = list;
  *out_count = snaps->size();
  return BKV_OK;
}

void bkv_snapshots_free(bkv_snapshot* snapshots, size_t count) {
  if (snapshots == nullptr) return;
  for (size_t i = 0; i < count; ++i) std::free(snapshots[i].source);
  std::free(snapshots);
}

bkv_status bkv_repo_restore(bkv_repo* repo, const char* snapshot_id,
                            const char* subpath, const char* target_path,
                            const bkv_restore_options* options, char** err) {
  if (repo == nullptr || target_path == nullptr) {
    return ToC(Null("repo/target_path"), err);
  }
  const bkv_restore_options o =
      options != nullptr ? *options : bkv_restore_options{};
  RepoCall call(*repo, o.cancel, o.progress, o.progress_ctx,
                CancellableBlobStore::Count::kDownloads);
  return ToC(repo->repo
                 ->Restore(snapshot_id ? snapshot_id : "",
                           subpath ? subpath : "", target_path)
                 .status(),
             err);
}

bkv_status bkv_repo_forget(bkv_repo* repo, size_t keep_last, bkv_cancel* cancel,
                           size_t* out_forgotten, char** err) {
  if (repo == nullptr) return ToC(Null("repo"), err);
  RepoCall call(*repo, cancel);
  auto gone = repo->repo->Forget(keep_last);
  if (!gone.ok()) return ToC(gone.status(), err);
  if (out_forgotten != nullptr) *out_forgotten = gone->size();
  return BKV_OK;
}

bkv_status bkv_repo_prune(bkv_repo* repo, bkv_cancel* cancel,
                          uint64_t* out_bytes_freed, char** err) {
  if (repo == nullptr) return ToC(Null("repo"), err);
  RepoCall call(*repo, cancel);
  auto st = repo->repo->Prune();
  if (!st.ok()) return ToC(st.status(), err);
  if (out_bytes_freed != nullptr) *out_bytes_freed = st->bytes_freed;
  return BKV_OK;
}

bkv_status bkv_repo_check(bkv_repo* repo, int read_data, bkv_cancel* cancel,
                          char** out_report, char** err) {
  if (repo == nullptr) return ToC(Null("repo"), err);
  RepoCall call(*repo, cancel);
  auto rep = repo->repo->Check(read_data != 0);
  if (!rep.ok()) return ToC(rep.status(), err);
  std::string lines;
  for (const std::string& p : rep->problems) lines += p + "\n";
  if (out_report != nullptr) *out_report = CopyString(lines);
  if (rep->clean()) return BKV_OK;
  return ToC(absl::DataLossError("the repository is damaged: " +
                                 std::to_string(rep->problems.size()) +
                                 " problem(s), listed in the report"),
             err);
}

}  // extern "C"
