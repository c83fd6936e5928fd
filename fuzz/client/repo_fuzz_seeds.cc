// Writes a small seed corpus for the repo_*_fuzzer targets: one or two valid
// encodings of each object, built with the real encoders, into
// DIR/<fuzzer name>/seed-N (scripts/fuzz.sh runs it before the fuzzers).
// Exits 1 if a seed does not decode, so a stale corpus is noticed.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "client/repo/repo_codec.h"

namespace {

using bkv::ChunkId;
using bkv::EntryType;
using bkv::TreeEntry;

std::vector<TreeEntry> SampleEntries() {
  TreeEntry root{".", EntryType::kDir, 0755, 1700000000123456789, 0, 2, "", {}};
  TreeEntry db{
      "chat.db", EntryType::kFile,        0600, 1700000001000000000, 3 << 20, 3,
      "",        {ChunkId{1}, ChunkId{2}}};
  TreeEntry link{"latest", EntryType::kSymlink, 0777, 1700000002000000000, 7,
                 4,        "chat.db",           {}};
  return {root, db, link};
}

bkv::IndexFile SampleIndex(int packs) {
  bkv::IndexFile index;
  for (int p = 0; p < packs; ++p) {
    bkv::PackRecord rec{{static_cast<uint8_t>(p + 1)}, 16 << 20, {}};
    rec.blobs.push_back({ChunkId{1}, 0, 524316, 524288});
    rec.blobs.push_back({ChunkId{2}, 524316, 200028, 2 << 20});
    index.packs.push_back(rec);
  }
  return index;
}

// Format 2 (written before trees): the same fields, entries inline.
std::vector<uint8_t> SnapshotV2(const bkv::Snapshot& v3) {
  std::vector<uint8_t> out = bkv::EncodeSnapshot(v3);
  out.resize(out.size() - 32);  // no tree id
  const std::string magic = "BKVSNP02";
  std::copy(magic.begin(), magic.end(), out.begin());
  std::vector<uint8_t> tree = bkv::EncodeTree(SampleEntries());
  out.insert(out.end(), tree.begin() + 8, tree.end());  // past "BKVTRE03"
  return out;
}

std::vector<uint8_t> Pack() {
  std::vector<uint8_t> pack(1000, 0xAB);  // stands for sealed chunks
  std::vector<uint8_t> header = bkv::EncodeIndex(SampleIndex(1));
  pack.insert(pack.end(), header.begin(), header.end());
  const uint32_t n = static_cast<uint32_t>(header.size());
  for (int s = 24; s >= 0; s -= 8) pack.push_back(static_cast<uint8_t>(n >> s));
  return pack;
}

bool Write(const std::filesystem::path& dir, const std::string& fuzzer,
           const std::vector<std::vector<uint8_t>>& seeds, bool decodes) {
  std::filesystem::create_directories(dir / fuzzer);
  for (size_t i = 0; i < seeds.size(); ++i) {
    std::ofstream(dir / fuzzer / ("seed-" + std::to_string(i + 1)),
                  std::ios::binary)
        .write(reinterpret_cast<const char*>(seeds[i].data()),
               static_cast<std::streamsize>(seeds[i].size()));
  }
  if (!decodes)
    std::fprintf(stderr, "%s: a seed does not decode\n", fuzzer.c_str());
  return decodes;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: repo_fuzz_seeds CORPUS_DIR\n");
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  bkv::Snapshot snap{{9},        {8},        42, 1700000000000, "/home/u/chat",
                     {{1}, {2}}, ChunkId{7}, {}};
  auto index = bkv::EncodeIndex(SampleIndex(2));
  auto snap3 = bkv::EncodeSnapshot(snap);
  auto snap2 = SnapshotV2(snap);
  auto tree = bkv::EncodeTree(SampleEntries());
  auto head = bkv::EncodeHead({42, {8}});
  auto shared = bkv::EncodeLock({false, 1700000000000, 1234, "phone"});
  auto exclusive = bkv::EncodeLock({true, 1700000000001, 99, "laptop"});
  auto pack = Pack();
  bool ok =
      Write(dir, "repo_index_fuzzer", {index}, bkv::DecodeIndex(index).ok());
  ok &=
      Write(dir, "repo_snapshot_fuzzer", {snap3, snap2},
            bkv::DecodeSnapshot(snap3).ok() && bkv::DecodeSnapshot(snap2).ok());
  ok &= Write(dir, "repo_tree_fuzzer", {tree}, bkv::DecodeTree(tree).ok());
  ok &= Write(dir, "repo_head_fuzzer", {head}, bkv::DecodeHead(head).ok());
  ok &= Write(dir, "repo_lock_fuzzer", {shared, exclusive},
              bkv::DecodeLock(shared).ok() && bkv::DecodeLock(exclusive).ok());
  ok &= Write(dir, "repo_pack_fuzzer", {pack}, bkv::PackHeaderOf(pack).ok());
  return ok ? 0 : 1;
}
