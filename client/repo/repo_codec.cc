#include "client/repo/repo_codec.h"

#include <cstring>
#include <string_view>

#include "absl/strings/str_cat.h"

namespace bkv {
namespace {

constexpr std::string_view kIndexMagic = "BKVIDX02";
constexpr std::string_view kSnapMagic = "BKVSNP02";
constexpr std::string_view kHeadMagic = "BKVHED02";
constexpr std::string_view kLockMagic = "BKVLCK02";

class Writer {
 public:
  void Raw(std::span<const uint8_t> b) {
    out_.insert(out_.end(), b.begin(), b.end());
  }
  void Raw(std::string_view s) { out_.insert(out_.end(), s.begin(), s.end()); }
  void U8(uint8_t v) { out_.push_back(v); }
  void U32(uint32_t v) { Int(v, 4); }
  void U64(uint64_t v) { Int(v, 8); }
  void Str(std::string_view s) {
    U32(static_cast<uint32_t>(s.size()));
    Raw(s);
  }
  std::vector<uint8_t> Take() { return std::move(out_); }

 private:
  void Int(uint64_t v, int n) {
    for (int i = n - 1; i >= 0; --i)
      out_.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  std::vector<uint8_t> out_;
};

class Reader {
 public:
  explicit Reader(std::span<const uint8_t> in) : in_(in) {}
  bool Raw(std::span<uint8_t> out) {
    if (!Need(out.size())) return false;
    std::memcpy(out.data(), in_.data() + pos_, out.size());
    pos_ += out.size();
    return true;
  }
  bool Magic(std::string_view m) {
    if (!Need(m.size()) ||
        std::memcmp(in_.data() + pos_, m.data(), m.size()) != 0) {
      return ok_ = false;
    }
    pos_ += m.size();
    return true;
  }
  uint8_t U8() { return static_cast<uint8_t>(Int(1)); }
  uint32_t U32() { return static_cast<uint32_t>(Int(4)); }
  uint64_t U64() { return Int(8); }
  std::string Str() {
    uint32_t n = U32();
    if (!Need(n)) return {};
    std::string s(reinterpret_cast<const char*>(in_.data() + pos_), n);
    pos_ += n;
    return s;
  }
  // A count of items of at least `min_item` bytes each, bounded by what is
  // left, so a forged count cannot make the decoder allocate.
  uint32_t Count(size_t min_item) {
    uint32_t n = U32();
    if (ok_ && n > (in_.size() - pos_) / min_item) ok_ = false;
    return ok_ ? n : 0;
  }
  absl::Status Done(std::string_view what) const {
    if (!ok_ || pos_ != in_.size()) {
      return absl::DataLossError(
          absl::StrCat("repository ", std::string(what),
                       " does not decode (an authentic object this "
                       "version cannot read, or a bug)"));
    }
    return absl::OkStatus();
  }
  bool ok() const { return ok_; }

 private:
  bool Need(size_t n) {
    if (!ok_ || in_.size() - pos_ < n) ok_ = false;
    return ok_;
  }
  uint64_t Int(int n) {
    if (!Need(n)) return 0;
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v = (v << 8) | in_[pos_ + i];
    pos_ += n;
    return v;
  }
  std::span<const uint8_t> in_;
  size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace

std::vector<uint8_t> EncodeIndex(const IndexFile& index) {
  Writer w;
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
  Reader r(bytes);
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
  if (auto s = r.Done("index"); !s.ok()) return s;
  return index;
}

std::vector<uint8_t> EncodeSnapshot(const Snapshot& snap) {
  Writer w;
  w.Raw(kSnapMagic);
  w.Raw(snap.repo);
  w.Raw(snap.id);
  w.U64(snap.seq);
  w.U64(static_cast<uint64_t>(snap.time_ms));
  w.Str(snap.source);
  w.U32(static_cast<uint32_t>(snap.indexes.size()));
  for (const ObjectId& i : snap.indexes) w.Raw(i);
  w.U32(static_cast<uint32_t>(snap.entries.size()));
  for (const TreeEntry& e : snap.entries) {
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
  return w.Take();
}

absl::StatusOr<Snapshot> DecodeSnapshot(std::span<const uint8_t> bytes) {
  Reader r(bytes);
  Snapshot s;
  r.Magic(kSnapMagic);
  r.Raw(s.repo);
  r.Raw(s.id);
  s.seq = r.U64();
  s.time_ms = static_cast<int64_t>(r.U64());
  s.source = r.Str();
  uint32_t n = r.Count(16);
  s.indexes.resize(n);
  for (auto& i : s.indexes) r.Raw(i);
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
    s.entries.push_back(std::move(e));
  }
  if (auto st = r.Done("snapshot"); !st.ok()) return st;
  return s;
}

std::vector<uint8_t> EncodeHead(const Head& head) {
  Writer w;
  w.Raw(kHeadMagic);
  w.U64(head.seq);
  w.Raw(head.snapshot);
  return w.Take();
}

absl::StatusOr<Head> DecodeHead(std::span<const uint8_t> bytes) {
  Reader r(bytes);
  Head h;
  r.Magic(kHeadMagic);
  h.seq = r.U64();
  r.Raw(h.snapshot);
  if (auto s = r.Done("head"); !s.ok()) return s;
  return h;
}

std::vector<uint8_t> EncodeLock(const LockRecord& lock) {
  Writer w;
  w.Raw(kLockMagic);
  w.U8(lock.exclusive ? 1 : 0);
  w.U64(static_cast<uint64_t>(lock.time_ms));
  w.U32(lock.pid);
  w.Str(lock.host);
  return w.Take();
}

absl::StatusOr<LockRecord> DecodeLock(std::span<const uint8_t> bytes) {
  Reader r(bytes);
  LockRecord l;
  r.Magic(kLockMagic);
  uint8_t exclusive = r.U8();
  l.exclusive = exclusive == 1;
  l.time_ms = static_cast<int64_t>(r.U64());
  l.pid = r.U32();
  l.host = r.Str();
  if (auto s = r.Done("lock"); !s.ok()) return s;
  if (exclusive > 1)
    return absl::DataLossError("repository lock does not decode");
  return l;
}

}  // namespace bkv
