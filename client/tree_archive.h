#ifndef BKV_CLIENT_TREE_ARCHIVE_H_
#define BKV_CLIENT_TREE_ARCHIVE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/blob_store.h"

namespace bkv {

// Directory trees as a pax (POSIX.1-2001) archive stream, with libarchive.
// Entry names are relative to the root ("a/b.txt"); the root itself is the
// first entry, ".", which carries its mode and time. Symlinks are stored as
// links, never followed. Regular files, directories and symlinks only; other
// types are skipped on write, and named.

// Writes the archive of `root` to `sink` as it walks; nothing is staged on
// disk. `on_bytes` sees each file's bytes as they are read (for progress).
// The sockets, devices and fifos left out are appended to `special` by
// their names in the archive, as a v2 backup reports them.
absl::Status WriteTreeArchive(const std::string& root, const ByteSink& sink,
                              const std::function<void(uint64_t)>& on_bytes,
                              std::vector<std::string>& special);

// Sum of the regular file sizes under `root` (progress totals).
uint64_t TreeSize(const std::string& root);

// Extracts an archive read from `source` into the existing, empty directory
// `dir`. Refuses, with InvalidArgument naming the entry, absolute names, ".."
// components, hard links outside the tree, special files and anything that
// would be written through a symlink. Every write is checked (a full disk is
// ResourceExhausted) and the files are synced; only then does `dir` get the
// root's archived mode (0755 for archives without a root entry).
absl::Status ExtractTreeArchive(ByteSource& source, const std::string& dir);

}  // namespace bkv

#endif  // BKV_CLIENT_TREE_ARCHIVE_H_
