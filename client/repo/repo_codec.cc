#include "client/repo/repo_codec.h"

#include <cstring>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "crypto/byte_io.h"

namespace bkv {
namespace {

constexpr std::string_view kIndexMagic = "BKVIDX02";
constexpr std::string_view kSnapMagicV2 = "BKVSNP02";
constexpr std::string_view kSnapMagic = "BKVSNP03";
constexpr std::string_view kTreeMagic = "BKVTRE03";
constexpr std::string_view kHeadMagic = "BKVHED02";
constexpr std::string_view kLockMagic = "BKVLCK02";

absl::Status Done(const ByteReader& r, std::string_view what) {
  if (!r.AtEnd()) {
    return absl::DataLossError(
        absl::StrCat("repository ", std::string(what),
                     " does not decode (an authentic object this "
                     "version cannot read, or a bug)"));
  }
  return absl::OkStatus();
}

void WriteEntries(ByteWriter& w, const std::vector<TreeEntry>& entries) {
  w.U32(static_cast<uint32_t>(entries.size()));
  for (const TreeEntry& e : entries) {
    w.Str(e.path);
    w.U8(static_cast<uint8_t>(e.type));
    w.U32(e.mode);
    w.U64(static_cast<uint64_t>(e.mtime_ns));
    w.U64(e.size);
    w.U64(e.inode);
    w.Str(e.link_target);
    w.U32(static_cast<uint32_t>(e.chunks.size()));
    for (const ChunkId& c : e.chunks) w.Raw(c);
  }
}

absl::Status ReadEntries(ByteReader& r, std::vector<TreeEntry>& out) {
  uint32_t entries = r.Count(41);
  for (uint32_t k = 0; k < entries && r.ok(); ++k) {
    TreeEntry e;
    e.path = r.Str();
    uint8_t type = r.U8();
    if (type > 2) {
      return absl::DataLossError(
          "repository snapshot has an unknown entry type");
    }
    e.type = static_cast<EntryType>(type);
    e.mode = r.U32();
    e.mtime_ns = static_cast<int64_t>(r.U64());
    e.size = r.U64();
    e.inode = r.U64();
    e.link_target = r.Str();
    e.chunks.resize(r.Count(32));
    for (auto& c : e.chunks) r.Raw(c);
    out.push_back(std::move(e));
  }
  return absl::OkStatus();
}

}  // namespace

std::vector<uint8_t> EncodeIndex(const IndexFile& index) {
  ByteWriter w;
  w.Raw(kIndexMagic);
  w.U32(static_cast<uint32_t>(index.packs.size()));
  for (const PackRecord& p : index.packs) {
    w.Raw(p.pack);
    w.U64(p.size);
    w.U32(static_cast<uint32_t>(p.blobs.size()));
    for (const BlobLocation& b : p.blobs) {
      w.Raw(b.id);
      w.U32(b.offset);
      w.U32(b.length);
      w.U32(b.raw_size);
    }
  }
  return w.Take();
}

absl::StatusOr<IndexFile> DecodeIndex(std::span<const uint8_t> bytes) {
  ByteReader r(bytes);
  IndexFile index;
  r.Magic(kIndexMagic);
  uint32_t packs = r.Count(28);
  for (uint32_t i = 0; i < packs && r.ok(); ++i) {
    PackRecord p;
    r.Raw(p.pack);
    p.size = r.U64();
    uint32_t blobs = r.Count(44);
    for (uint32_t j = 0; j < blobs && r.ok(); ++j) {
      BlobLocation b;
      r.Raw(b.id);
      b.offset = r.U32();
      b.length = r.U32();
      b.raw_size = r.U32();
      p.blobs.push_back(b);
    }
    index.packs.push_back(std::move(p));
  }
  if (auto s = Done(r, "index"); !s.ok()) return s;
  return index;
}

std::vector<uint8_t> EncodeSnapshot(const Snapshot& snap) {
  ByteWriter w;
  w.Raw(kSnapMagic);
  w.Raw(snap.repo);
  w.Raw(snap.id);
  w.U64(snap.seq);
  w.U64(static_cast<uint64_t>(snap.time_ms));
  w.Str(snap.source);
  w.U32(static_cast<uint32_t>(snap.indexes.size()));
  for (const ObjectId& i : snap.indexes) w.Raw(i);
  w.Raw(snap.tree.value());
  return w.Take();
}

absl::StatusOr<Snapshot> DecodeSnapshot(std::span<const uint8_t> bytes) {
  // Format 2 (inline entries) stays readable: repositories written before
  // tree objects (docs/backup-format.md, "Snapshots and trees").
  const bool v2 =
      bytes.size() >= kSnapMagicV2.size() &&
      std::memcmp(bytes.data(), kSnapMagicV2.data(), kSnapMagicV2.size()) == 0;
  ByteReader r(bytes);
  Snapshot s;
  r.Magic(v2 ? kSnapMagicV2 : kSnapMagic);
  r.Raw(s.repo);
  r.Raw(s.id);
  s.seq = r.U64();
  s.time_ms = static_cast<int64_t>(r.U64());
  s.source = r.Str();
  uint32_t n = r.Count(16);
  s.indexes.resize(n);
  for (auto& i : s.indexes) r.Raw(i);
  if (v2) {
    if (auto st = ReadEntries(r, s.entries); !st.ok()) return st;
  } else {
    s.tree.emplace();
    r.Raw(*s.tree);
  }
  if (auto st = Done(r, "snapshot"); !st.ok()) return st;
  return s;
}

std::vector<uint8_t> EncodeTree(const std::vector<TreeEntry>& entries) {
  ByteWriter w;
  w.Raw(kTreeMagic);
  WriteEntries(w, entries);
  return w.Take();
}

absl::StatusOr<std::vector<TreeEntry>> DecodeTree(
    std::span<const uint8_t> bytes) {
  ByteReader r(bytes);
  r.Magic(kTreeMagic);
  std::vector<TreeEntry> entries;
  if (auto st = ReadEntries(r, entries); !st.ok()) return st;
  if (auto st = Done(r, "tree"); !st.ok()) return st;
  return entries;
}

absl::StatusOr<std::span<const uint8_t>> PackHeaderOf(
    std::span<const uint8_t> pack) {
  const size_t n = pack.size();
  if (n < 4) return absl::DataLossError("truncated pack");
  const uint32_t hlen = (uint32_t{pack[n - 4]} << 24) |
                        (uint32_t{pack[n - 3]} << 16) |
                        (uint32_t{pack[n - 2]} << 8) | pack[n - 1];
  if (hlen > n - 4) return absl::DataLossError("truncated pack");
  return pack.subspan(n - 4 - hlen, hlen);
}

std::vector<uint8_t> EncodeHead(const Head& head) {
  ByteWriter w;
  w.Raw(kHeadMagic);
  w.U64(head.seq);
  w.Raw(head.snapshot);
  return w.Take();
}

absl::StatusOr<Head> DecodeHead(std::span<const uint8_t> bytes) {
  ByteReader r(bytes);
  Head h;
  r.Magic(kHeadMagic);
  h.seq = r.U64();
  r.Raw(h.snapshot);
  if (auto s = Done(r, "head"); !s.ok()) return s;
  return h;
}

std::vector<uint8_t> EncodeLock(const LockRecord& lock) {
  ByteWriter w;
  w.Raw(kLockMagic);
  w.U8(lock.exclusive ? 1 : 0);
  w.U64(static_cast<uint64_t>(lock.time_ms));
  w.U32(lock.pid);
  w.Str(lock.host);
  return w.Take();
}

absl::StatusOr<LockRecord> DecodeLock(std::span<const uint8_t> bytes) {
  ByteReader r(bytes);
  LockRecord l;
  r.Magic(kLockMagic);
  uint8_t exclusive = r.U8();
  l.exclusive = exclusive == 1;
  l.time_ms = static_cast<int64_t>(r.U64());
  l.pid = r.U32();
  l.host = r.Str();
  if (auto s = Done(r, "lock"); !s.ok()) return s;
  if (exclusive > 1)
    return absl::DataLossError("repository lock does not decode");
  return l;
}

}  // namespace bkv
