#include "client/backup_stream.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "client/bounded_queue.h"
#include "client/posix_file.h"
#include "client/restore_staging.h"
#include "client/tree_archive.h"
#include "crypto/status_macros.h"

namespace bkv {
namespace {

using Block = std::vector<uint8_t>;
using Queue = BoundedQueue<Block>;
// Stages hand over ~1 MiB blocks: few enough queue operations that thread
// handoffs stay cheap, small enough that memory stays a few MiB.
constexpr size_t kBlock = 1 << 20;

// Recycles block buffers between the stages of one pipeline, so a long
// transfer does not allocate (and page-fault) a fresh buffer per block.
// A reused buffer keeps its size, so Get() rarely zero-fills. Thread-safe.
class BlockPool {
 public:
  Block Get(size_t n) {
    Block b;
    {
      std::lock_guard lock(mu_);
      if (!free_.empty()) {
        b = std::move(free_.back());
        free_.pop_back();
      }
    }
    b.resize(n);
    return b;
  }
  void Put(Block b) {
    std::lock_guard lock(mu_);
    if (free_.size() < kMaxFree) free_.push_back(std::move(b));
  }

 private:
  static constexpr size_t kMaxFree = 4;
  std::mutex mu_;
  std::vector<Block> free_;
};

// A ByteSource over a queue of blocks: 0 at the queue's end, the
// cancellation reason when the pipeline stopped.
class QueueSource final : public ByteSource {
 public:
  QueueSource(Queue& q, BlockPool& pool) : q_(q), pool_(pool) {}
  absl::StatusOr<size_t> Read(std::span<uint8_t> out) override {
    while (pos_ == block_.size()) {
      if (block_.capacity() > 0) pool_.Put(std::exchange(block_, Block()));
      pos_ = 0;
      // Not BKV_ASSIGN_OR_RETURN into an optional<Block>: GCC 12 (ASan
      // build) warns its destructor may read uninitialized memory.
      absl::StatusOr<std::optional<Block>> next = q_.Pop();
      if (!next.ok()) return next.status();
      if (!next->has_value()) return 0;
      block_.swap(**next);
    }
    const size_t n = std::min(out.size(), block_.size() - pos_);
    std::memcpy(out.data(), block_.data() + pos_, n);
    pos_ += n;
    bytes_ += n;
    return n;
  }
  uint64_t bytes_ = 0;

 private:
  Queue& q_;
  BlockPool& pool_;
  Block block_;
  size_t pos_ = 0;
};

absl::Status ReadFileStage(const std::string& path, Queue& out, BlockPool& pool,
                           const std::function<void(uint64_t)>& on_bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("open ", path));
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  absl::Status s;
  for (;;) {
    Block b = pool.Get(kBlock);
    ssize_t n = ::read(fd, b.data(), b.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      s = ErrnoStatus(errno, absl::StrCat("read ", path));
      break;
    }
    if (n == 0) break;
    b.resize(static_cast<size_t>(n));
    on_bytes(static_cast<uint64_t>(n));
    if (s = out.Push(std::move(b)); !s.ok()) break;
  }
  ::close(fd);
  return s;
}

// Calls `f` with each block of `in` until its end; the pipeline's
// cancellation reason, or f's first error, stops it.
template <typename F>
absl::Status ForEach(Queue& in, F f) {
  for (;;) {
    BKV_ASSIGN_OR_RETURN(std::optional<Block> b, in.Pop());
    if (!b) return absl::OkStatus();
    BKV_RETURN_IF_ERROR(f(*b));
  }
}

absl::Status CompressStage(Queue& in, Queue& out, BlockPool& pool, int level) {
  std::unique_ptr<ZSTD_CCtx, size_t (*)(ZSTD_CCtx*)> cctx(ZSTD_createCCtx(),
                                                          ZSTD_freeCCtx);
  if (!cctx || ZSTD_isError(ZSTD_CCtx_setParameter(
                   cctx.get(), ZSTD_c_compressionLevel, level))) {
    return absl::InternalError("zstd: cannot create a compression context");
  }
  const size_t out_size = ZSTD_CStreamOutSize();
  auto pump = [&](ZSTD_inBuffer& input,
                  ZSTD_EndDirective mode) -> absl::Status {
    for (;;) {
      Block b = pool.Get(out_size);
      ZSTD_outBuffer output{b.data(), b.size(), 0};
      size_t rc = ZSTD_compressStream2(cctx.get(), &output, &input, mode);
      if (ZSTD_isError(rc)) {
        return absl::InternalError(
            absl::StrCat("zstd compression failed: ", ZSTD_getErrorName(rc)));
      }
      b.resize(output.pos);
      if (!b.empty()) BKV_RETURN_IF_ERROR(out.Push(std::move(b)));
      const bool done = mode == ZSTD_e_end ? rc == 0 : input.pos == input.size;
      if (done) return absl::OkStatus();
    }
  };
  BKV_RETURN_IF_ERROR(ForEach(in, [&](Block& b) {
    ZSTD_inBuffer input{b.data(), b.size(), 0};
    BKV_RETURN_IF_ERROR(pump(input, ZSTD_e_continue));
    pool.Put(std::move(b));
    return absl::OkStatus();
  }));
  ZSTD_inBuffer empty{nullptr, 0, 0};
  return pump(empty, ZSTD_e_end);
}

// Re-blocks into chunks and seals them, several chunks per output block;
// the header goes first.
absl::Status EncryptStage(BackupEncryptor& enc, Queue& in, Queue& out,
                          BlockPool& pool) {
  const size_t c = enc.chunk_size();
  const size_t sealed = SealedChunkSize(enc.chunk_size());
  const size_t batch = std::max<size_t>(1, kBlock / sealed) * sealed;
  BKV_RETURN_IF_ERROR(out.Push(
      Block(enc.header().bytes().begin(), enc.header().bytes().end())));
  Block buf(c);
  size_t fill = 0;
  Block batch_out;
  size_t used = 0;
  auto next_slot = [&]() -> std::span<uint8_t> {
    if (used == 0) batch_out = pool.Get(batch);
    used += sealed;
    return std::span(batch_out).subspan(used - sealed, sealed);
  };
  auto flush = [&]() -> absl::Status {
    if (used == 0) return absl::OkStatus();
    batch_out.resize(used);
    used = 0;
    return out.Push(std::move(batch_out));
  };
  auto seal_full = [&]() -> absl::Status {
    BKV_RETURN_IF_ERROR(enc.SealChunk(buf, next_slot()));
    fill = 0;
    return used == batch ? flush() : absl::OkStatus();
  };
  BKV_RETURN_IF_ERROR(ForEach(in, [&](Block& b) -> absl::Status {
    std::span<const uint8_t> d(b);
    while (!d.empty()) {
      if (fill == c) BKV_RETURN_IF_ERROR(seal_full());
      const size_t take = std::min(c - fill, d.size());
      std::memcpy(buf.data() + fill, d.data(), take);
      fill += take;
      d = d.subspan(take);
    }
    pool.Put(std::move(b));
    return absl::OkStatus();
  }));
  // The input ended normally (a cancelled one returned above).
  if (fill == c) BKV_RETURN_IF_ERROR(seal_full());
  BKV_RETURN_IF_ERROR(enc.SealFinalChunk({buf.data(), fill}, next_slot()));
  return flush();
}

// Plaintext after decryption, decompressed on the fly when needed.
class PlainSource final : public ByteSource {
 public:
  PlainSource(ByteSource& in, bool zstd) : in_(in) {
    if (zstd) {
      dctx_ = ZSTD_createDCtx();
      inbuf_.resize(ZSTD_DStreamInSize());
    }
  }
  ~PlainSource() override {
    if (dctx_) ZSTD_freeDCtx(dctx_);
  }
  absl::StatusOr<size_t> Read(std::span<uint8_t> out) override {
    if (!dctx_) return in_.Read(out);
    ZSTD_outBuffer output{out.data(), out.size(), 0};
    // Bounded: every round consumes input or produces output.
    while (output.pos == 0) {
      if (in_pos_ == in_len_ && !eof_) {
        BKV_ASSIGN_OR_RETURN(in_len_, in_.Read(inbuf_));
        in_pos_ = 0;
        eof_ = in_len_ == 0;
      }
      if (eof_ && frame_done_) return 0;
      ZSTD_inBuffer input{inbuf_.data(), in_len_, in_pos_};
      const size_t rc = ZSTD_decompressStream(dctx_, &output, &input);
      if (ZSTD_isError(rc)) {
        return absl::DataLossError(
            absl::StrCat("decompression failed: ", ZSTD_getErrorName(rc)));
      }
      const bool progress = input.pos != in_pos_ || output.pos != 0;
      in_pos_ = input.pos;
      frame_done_ = rc == 0;
      if (eof_ && !progress) {
        return absl::DataLossError("compressed data ends inside a zstd frame");
      }
    }
    return output.pos;
  }

 private:
  ByteSource& in_;
  ZSTD_DCtx* dctx_ = nullptr;
  std::vector<uint8_t> inbuf_;
  size_t in_pos_ = 0, in_len_ = 0;
  bool eof_ = false;
  bool frame_done_ = true;
};

// Counts what passes through, for the restore statistics.
class CountingSource final : public ByteSource {
 public:
  CountingSource(ByteSource& in, uint64_t& count) : in_(in), count_(count) {}
  absl::StatusOr<size_t> Read(std::span<uint8_t> out) override {
    auto n = in_.Read(out);
    if (n.ok()) count_ += *n;
    return n;
  }

 private:
  ByteSource& in_;
  uint64_t& count_;
};

}  // namespace

absl::StatusOr<BackupContent> ContentOf(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return ErrnoStatus(errno, absl::StrCat("backup source ", path));
  }
  if (S_ISDIR(st.st_mode)) return BackupContent::kTree;
  if (S_ISREG(st.st_mode)) return BackupContent::kFile;
  return absl::InvalidArgumentError(
      absl::StrCat("backup source ", path, " is not a file or a directory"));
}

absl::StatusOr<StreamStats> StreamBackup(const std::string& path,
                                         BackupEncryptor encryptor,
                                         BlobStore& store,
                                         const std::string& name,
                                         const StreamOptions& options) {
  BKV_ASSIGN_OR_RETURN(BackupContent content, ContentOf(path));
  if (content != encryptor.header().content()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " does not match the backup's content type"));
  }
  const bool zstd =
      encryptor.header().compression() == BackupCompression::kZstd;
  const size_t depth = std::max<size_t>(options.queue_depth, 1);
  Queue read_q(depth), plain_q(depth), sealed_q(depth);
  Queue& to_encrypt = zstd ? plain_q : read_q;
  Pipeline stages;
  stages.Watch(read_q);
  stages.Watch(plain_q);
  stages.Watch(sealed_q);
  BlockPool pool;

  std::atomic<uint64_t> done{0};
  std::vector<std::string> special;  // the reading stage's, read after Join
  std::error_code ec;
  const uint64_t total = content == BackupContent::kFile
                             ? std::filesystem::file_size(path, ec)
                             : TreeSize(path);
  auto on_bytes = [&](uint64_t n) {
    const uint64_t d = done.fetch_add(n) + n;
    if (options.progress) options.progress(d, total);
  };

  // Each stage closes its output only when it finished without error.
  auto closing = [](Queue& out, absl::Status s) {
    if (s.ok()) out.Close();
    return s;
  };
  stages.Run([&]() -> absl::Status {
    if (content == BackupContent::kFile) {
      return closing(read_q, ReadFileStage(path, read_q, pool, on_bytes));
    }
    auto push = [&](std::span<const uint8_t> d) {
      Block b = pool.Get(d.size());
      std::memcpy(b.data(), d.data(), d.size());
      return read_q.Push(std::move(b));
    };
    return closing(read_q, WriteTreeArchive(path, push, on_bytes, special));
  });
  if (zstd) {
    stages.Run([&] {
      return closing(plain_q,
                     CompressStage(read_q, plain_q, pool, options.zstd_level));
    });
  }
  stages.Run([&] {
    return closing(sealed_q,
                   EncryptStage(encryptor, to_encrypt, sealed_q, pool));
  });

  QueueSource upload(sealed_q, pool);
  absl::Status put = store.Put(name, upload);
  stages.Fail(put);
  if (absl::Status s = stages.Join(); !s.ok()) {
    // Put may have finished before a late stage error; never keep such an
    // object.
    if (put.ok()) (void)store.Delete(name);
    return s;
  }
  return StreamStats{done.load(), upload.bytes_, std::move(special)};
}

namespace {

// The restore target as an absolute path under its canonical parent (so
// extraction never writes through a symlink); the parent is created.
absl::StatusOr<std::filesystem::path> RestoreTarget(const std::string& target) {
  std::error_code ec;
  std::filesystem::path tpath = std::filesystem::absolute(target, ec);
  if (ec || target.empty() || !tpath.has_filename()) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid restore target '", target, "'"));
  }
  if (std::filesystem::symlink_status(tpath, ec).type() !=
      std::filesystem::file_type::not_found) {
    return absl::AlreadyExistsError(absl::StrCat(
        "restore target ", tpath.string(),
        " already exists; restore to a new path or an empty folder"));
  }
  std::filesystem::create_directories(tpath.parent_path(), ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat(
        "create ", tpath.parent_path().string(), ": ", ec.message()));
  }
  tpath =
      std::filesystem::canonical(tpath.parent_path(), ec) / tpath.filename();
  if (ec) {
    return absl::UnavailableError(absl::StrCat(
        "resolve ", tpath.parent_path().string(), ": ", ec.message()));
  }
  return tpath;
}

// Verifies the stream and hands on plaintext in ~1 MiB blocks; the header
// goes to `header_q` first, once. `out` is closed only after the final
// chunk verified.
absl::Status DecryptStage(BackupDecryptor& dec, Queue& in, Queue& out,
                          BoundedQueue<BackupHeader>& header_q,
                          BlockPool& pool) {
  Block batch;
  bool header_sent = false;
  auto flush = [&]() -> absl::Status {
    if (!header_sent) {
      BKV_RETURN_IF_ERROR(header_q.Push(*dec.header()));
      header_q.Close();
      header_sent = true;
    }
    BKV_RETURN_IF_ERROR(out.Push(std::move(batch)));
    batch = pool.Get(0);
    return absl::OkStatus();
  };
  auto sink = [&](std::span<const uint8_t> pt) -> absl::Status {
    if (batch.empty()) batch.reserve(kBlock + pt.size());
    batch.insert(batch.end(), pt.begin(), pt.end());
    return batch.size() >= kBlock ? flush() : absl::OkStatus();
  };
  BKV_RETURN_IF_ERROR(ForEach(in, [&](Block& b) {
    BKV_RETURN_IF_ERROR(dec.Update(b, sink));
    pool.Put(std::move(b));
    return absl::OkStatus();
  }));
  BKV_RETURN_IF_ERROR(dec.Finish(sink));
  BKV_RETURN_IF_ERROR(flush());
  out.Close();
  return absl::OkStatus();
}

// Writes the plaintext (a file or a tree archive) to `tmp`, then reads the
// stream to its end: only a normal end means the final chunk verified.
absl::StatusOr<uint64_t> WriteRestored(ByteSource& plain_in,
                                       const BackupHeader& h,
                                       const std::string& tmp) {
  uint64_t written = 0;
  PlainSource plain(plain_in, h.compression() == BackupCompression::kZstd);
  if (h.content() == BackupContent::kTree) {
    if (::mkdir(tmp.c_str(), 0700) != 0) {
      return ErrnoStatus(errno, absl::StrCat("create ", tmp));
    }
    CountingSource counted(plain, written);
    BKV_RETURN_IF_ERROR(ExtractTreeArchive(counted, tmp));
  } else {
    BKV_ASSIGN_OR_RETURN(PosixFile file, PosixFile::Create(tmp));
    std::vector<uint8_t> buf(kBlock);
    for (;;) {
      BKV_ASSIGN_OR_RETURN(size_t got, plain.Read(buf));
      if (got == 0) break;
      BKV_RETURN_IF_ERROR(file.Write({buf.data(), got}));
      written += got;
    }
    BKV_RETURN_IF_ERROR(file.SyncAndClose());
  }
  // What the archive reader left (end-of-archive padding).
  std::vector<uint8_t> rest(64 << 10);
  for (;;) {
    BKV_ASSIGN_OR_RETURN(size_t got, plain.Read(rest));
    if (got == 0) return written;
  }
}

}  // namespace

absl::StatusOr<StreamStats> StreamRestore(BlobStore& store,
                                          const std::string& name,
                                          const BackupKey& key,
                                          const std::string& target,
                                          const StreamOptions& options,
                                          const std::string& expected_id) {
  BKV_ASSIGN_OR_RETURN(std::filesystem::path tpath, RestoreTarget(target));
  BKV_ASSIGN_OR_RETURN(BlobInfo info, store.Stat(name));
  const size_t depth = std::max<size_t>(options.queue_depth, 1);
  Queue cipher_q(depth), plain_q(depth);
  BoundedQueue<BackupHeader> header_q(1);  // authenticated, before plaintext
  Pipeline stages;
  stages.Watch(cipher_q);
  stages.Watch(plain_q);
  stages.Watch(header_q);
  BlockPool pool;
  std::atomic<uint64_t> downloaded{0};  // progress only
  stages.Run([&]() -> absl::Status {
    BKV_RETURN_IF_ERROR(store.Get(name, [&](std::span<const uint8_t> d) {
      const uint64_t n = downloaded.fetch_add(d.size()) + d.size();
      if (options.progress) options.progress(n, info.size);
      Block b = pool.Get(d.size());
      std::memcpy(b.data(), d.data(), d.size());
      return cipher_q.Push(std::move(b));
    }));
    cipher_q.Close();
    return absl::OkStatus();
  });
  BackupDecryptor dec(key);
  if (!expected_id.empty()) dec.ExpectBackupId(expected_id);
  stages.Run(
      [&] { return DecryptStage(dec, cipher_q, plain_q, header_q, pool); });

  QueueSource plain_in(plain_q, pool);
  // Staged in a locked folder that a killed restore leaves for the next
  // one's sweep (client/restore_staging.h), as a v2 restore does.
  BKV_ASSIGN_OR_RETURN(RestoreStaging staging,
                       RestoreStaging::Create(tpath.string()));
  const std::string tmp = staging.file();
  absl::StatusOr<uint64_t> written = [&]() -> absl::StatusOr<uint64_t> {
    BKV_ASSIGN_OR_RETURN(std::optional<BackupHeader> h, header_q.Pop());
    if (!h) return absl::DataLossError("backup has no data");
    BKV_ASSIGN_OR_RETURN(uint64_t n, WriteRestored(plain_in, *h, tmp));
    BKV_RETURN_IF_ERROR(stages.Join());
    BKV_RETURN_IF_ERROR(PublishRestore(tmp, tpath.string()));
    return n;
  }();
  if (!written.ok()) {
    stages.Fail(written.status());
    absl::Status first = stages.Join();
    // A stage's own error explains more than the cancellation it caused.
    return first.ok() || absl::IsCancelled(first) ? written.status() : first;
  }
  return StreamStats{*written, downloaded.load(), {}};
}

}  // namespace bkv
