// The same round trip with the C++ SDK (bkv::sdk; source-compatible only,
// so an app rebuilds it with each bkv release), using the incremental
// repository: two snapshots, the second stores nothing new.
//   backup_restore_cpp FILE WORKDIR
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>

#include "client/blob_store.h"
#include "client/repo/repository.h"
#include "crypto/backup_key.h"

namespace {

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

int Fail(const char* what, const absl::Status& s) {
  std::cerr << what << ": " << s << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: " << argv[0] << " FILE WORKDIR\n";
    return 2;
  }
  const std::string file = argv[1], work = argv[2];
  bkv::BackupKey key = bkv::BackupKey::Generate();
  auto store = bkv::OpenBlobStore("file://" + work + "/repo");
  if (!store.ok()) return Fail("store", store.status());
  bkv::RepoOptions options;
  options.create = true;
  auto repo = bkv::Repository::Open(**store, key, options);
  if (!repo.ok()) return Fail("open", repo.status());
  bkv::RepoBackupStats first, second;
  auto snap = (*repo)->Backup(file, &first);
  if (!snap.ok()) return Fail("backup", snap.status());
  auto again = (*repo)->Backup(file, &second);
  if (!again.ok()) return Fail("second backup", again.status());
  auto restored = (*repo)->Restore(snap->id, "", work + "/restored-cpp");
  if (!restored.ok()) return Fail("restore", restored.status());
  const bool same = Slurp(file) == Slurp(work + "/restored-cpp");
  std::cout << "snapshot " << snap->id << ": " << first.new_bytes
            << " new bytes, then " << second.new_bytes << "; restored "
            << (same ? "byte for byte" : "WRONG") << "\n";
  return same && second.new_bytes == 0 ? 0 : 1;
}
