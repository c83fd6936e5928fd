// bkv backup throughput and memory against peers measured in the same run:
//
//  1. In-memory chunk encryption (BackupEncryptor, 64 KiB chunks) vs
//     `openssl speed -evp aes-256-gcm -bytes 65536`. Target ratio >= 0.8.
//  2. `bkv backup` of an incompressible file to file:// vs `age -r` on the
//     same file, and `bkv restore` vs `age -d`. Target bkv <= 0.5 x age.
//     bkv fsyncs its output (temp file, rename, directory); age does not.
//  3. Peak RSS of the `bkv backup` / `bkv restore` child processes for a
//     small and a large file. Target: differ by < 10 %.
//
// Sizes (MiB) from the environment, default 256 and 1024:
//   BKV_BENCH_SMALL_MIB=256 BKV_BENCH_LARGE_MIB=4096 bench/client/backup_bench
// Files go to $BKV_BENCH_DIR (default $TMPDIR or /tmp); they are removed.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "crypto/backup_format.h"

namespace {

using Clock = std::chrono::steady_clock;

size_t EnvMiB(const char* name, size_t def) {
  const char* v = std::getenv(name);
  return v ? std::strtoull(v, nullptr, 10) : def;
}

struct RunResult {
  double seconds = 0;
  long max_rss_kib = 0;
  int status = -1;
};

// Runs argv with stdout to /dev/null; wall time and the child's peak RSS.
RunResult Run(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const auto start = Clock::now();
  pid_t pid = fork();
  if (pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    execvp(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  struct rusage ru {};
  wait4(pid, &status, 0, &ru);
  RunResult r;
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  r.max_rss_kib = ru.ru_maxrss;
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (r.status != 0) {
    std::fprintf(stderr, "bench: '%s' failed with %d\n", args[0].c_str(),
                 r.status);
    std::exit(1);
  }
  return r;
}

std::string Capture(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

void EncryptInMemory() {
  constexpr uint32_t kChunk = 64 * 1024;
  auto key = bkv::BackupKey::Generate();
  bkv::BackupParams params;
  params.chunk_size = kChunk;
  auto enc = bkv::BackupEncryptor::Create(key, params);
  std::vector<uint8_t> pt(kChunk, 0x5a), out(bkv::SealedChunkSize(kChunk));
  size_t chunks = 0;
  const auto start = Clock::now();
  double secs = 0;
  while (secs < 2.0) {
    for (int i = 0; i < 256; ++i) {
      if (!enc->SealChunk(pt, out).ok()) std::abort();
    }
    chunks += 256;
    secs = std::chrono::duration<double>(Clock::now() - start).count();
  }
  const double ours = chunks * double{kChunk} / secs / 1e6;
  // "AES-256-GCM    3251722.45k" in 1000s of bytes per second.
  const std::string speed = Capture(
      "openssl speed -evp aes-256-gcm -bytes 65536 -seconds 2 2>/dev/null");
  double openssl = 0;
  size_t pos = speed.rfind("AES-256-GCM");
  if (pos == std::string::npos) pos = speed.rfind("aes-256-gcm");
  if (pos != std::string::npos) {
    openssl = std::strtod(speed.c_str() + pos + 11, nullptr) / 1000.0;
  }
  std::printf(
      "encrypt 64 KiB chunks in memory: bkv %.0f MB/s, openssl speed %.0f "
      "MB/s, ratio %.2f (target >= 0.8)\n",
      ours, openssl, openssl > 0 ? ours / openssl : 0);
}

void MakeRandomFile(const std::string& path, size_t mib) {
  std::ofstream out(path, std::ios::binary);
  std::mt19937_64 gen(42);
  std::vector<uint64_t> block(1 << 17);  // 1 MiB
  for (size_t i = 0; i < mib; ++i) {
    for (auto& w : block) w = gen();
    out.write(reinterpret_cast<const char*>(block.data()), 1 << 20);
  }
}

struct FileRun {
  RunResult backup, restore, age_enc, age_dec, backup_zstd, copy;
};

FileRun CompareWithAge(const std::string& dir, size_t mib) {
  namespace fs = std::filesystem;
  const std::string in = dir + "/in.bin";
  MakeRandomFile(in, mib);
  const std::string key = dir + "/key";
  Run({BKV_CLI_PATH, "key", "new", "--out", key});
  Run({"age-keygen", "-o", dir + "/age.key"});
  std::string recipient =
      Capture("age-keygen -y " + dir + "/age.key 2>/dev/null");
  while (!recipient.empty() && recipient.back() == '\n') recipient.pop_back();

  // Warm the page cache for both.
  Capture("cat " + in + " > /dev/null");
  FileRun r;
  r.backup = Run({BKV_CLI_PATH, "backup", in, "--to", "file://" + dir + "/s",
                  "--key-file", key, "--no-compress"});
  r.restore = Run({BKV_CLI_PATH, "restore", "--from", "file://" + dir + "/s",
                   "--to", dir + "/restored", "--key-file", key});
  r.age_enc = Run({"age", "-r", recipient, "-o", dir + "/in.age", in});
  r.age_dec = Run({"age", "-d", "-i", dir + "/age.key", "-o", dir + "/age.out",
                   dir + "/in.age"});
  // The floor for any tool that reads and writes the same bytes through
  // user space: dd, without fsync.
  r.copy = Run(
      {"dd", "if=" + in, "of=" + dir + "/copy.bin", "bs=1M", "status=none"});
  r.backup_zstd = Run({BKV_CLI_PATH, "backup", in, "--to",
                       "file://" + dir + "/z", "--key-file", key});
  if (Capture("cmp " + in + " " + dir + "/restored && echo same") != "same\n") {
    std::fprintf(stderr, "bench: restored file differs\n");
    std::exit(1);
  }
  for (const char* f : {"/in.bin", "/in.age", "/age.out", "/restored", "/key",
                        "/age.key", "/copy.bin"}) {
    fs::remove(dir + f);
  }
  fs::remove_all(dir + "/s");
  fs::remove_all(dir + "/z");
  const double mb = mib * 1.048576;
  std::printf(
      "%zu MiB incompressible to file://:\n"
      "  backup  bkv %.2f s (%.0f MB/s, zstd on: %.2f s), age -r %.2f s: "
      "ratio %.2f (target <= 0.5)\n"
      "  restore bkv %.2f s (%.0f MB/s), age -d %.2f s: ratio %.2f "
      "(target <= 0.5)\n"
      "  dd of the same file (no encryption, no fsync) %.2f s\n"
      "  peak RSS bkv backup %ld KiB, restore %ld KiB\n",
      mib, r.backup.seconds, mb / r.backup.seconds, r.backup_zstd.seconds,
      r.age_enc.seconds, r.backup.seconds / r.age_enc.seconds,
      r.restore.seconds, mb / r.restore.seconds, r.age_dec.seconds,
      r.restore.seconds / r.age_dec.seconds, r.copy.seconds,
      r.backup.max_rss_kib, r.restore.max_rss_kib);
  std::fflush(stdout);
  return r;
}

}  // namespace

int main() {
  const size_t small = EnvMiB("BKV_BENCH_SMALL_MIB", 256);
  const size_t large = EnvMiB("BKV_BENCH_LARGE_MIB", 1024);
  const char* base = std::getenv("BKV_BENCH_DIR");
  if (base == nullptr) base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base ? base : "/tmp") + "/bkv-bench-XXXXXX";
  const std::string dir = mkdtemp(tmpl.data());

  EncryptInMemory();
  FileRun a = CompareWithAge(dir, small);
  FileRun b = CompareWithAge(dir, large);
  auto diff = [](long x, long y) {
    return 100.0 * std::abs(static_cast<double>(x - y)) / std::min(x, y);
  };
  std::printf(
      "peak RSS %zu MiB vs %zu MiB: backup %ld vs %ld KiB (%.1f %%), "
      "restore %ld vs %ld KiB (%.1f %%) (target < 10 %%)\n",
      small, large, a.backup.max_rss_kib, b.backup.max_rss_kib,
      diff(a.backup.max_rss_kib, b.backup.max_rss_kib), a.restore.max_rss_kib,
      b.restore.max_rss_kib,
      diff(a.restore.max_rss_kib, b.restore.max_rss_kib));
  std::filesystem::remove_all(dir);
  return 0;
}
