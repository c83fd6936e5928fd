#ifndef BKV_CLIENT_CLI_PROGRESS_H_
#define BKV_CLIENT_CLI_PROGRESS_H_

#include <chrono>
#include <cstdio>
#include <functional>
#include <mutex>
#include <string>

#include "absl/strings/str_cat.h"
#include "client/backup_stream.h"
#include "client/cli/command.h"

namespace bkv::cli {

// A progress bar on stderr, redrawn at most 5 times a second, only on a TTY.
class Progress {
 public:
  Progress(FILE* err, bool enabled) : err_(err), enabled_(enabled) {}
  bool enabled() const { return enabled_; }
  ProgressFn Fn() {
    if (!enabled_) return nullptr;
    return [this](uint64_t done, uint64_t total) { Update(done, total); };
  }
  // `note` (e.g. new vs deduplicated bytes) is built only when drawn.
  void Update(uint64_t done, uint64_t total,
              const std::function<std::string()>& note = nullptr) {
    std::lock_guard lock(mu_);
    const auto now = std::chrono::steady_clock::now();
    if (drawn_ && now - last_ < std::chrono::milliseconds(200) &&
        done != total) {
      return;
    }
    last_ = now;
    drawn_ = true;
    std::string line = Bar(done, total, now);
    if (note) line += note();
    std::fputs((line + "\033[K").c_str(), err_);
    std::fflush(err_);
  }
  void Done() {
    std::lock_guard lock(mu_);
    if (drawn_) std::fputs("\n", err_);
  }

 private:
  std::string Bar(uint64_t done, uint64_t total,
                  std::chrono::steady_clock::time_point now) const {
    const double secs =
        std::chrono::duration<double>(now - start_).count() + 1e-9;
    const double rate = done / secs;
    std::string line = absl::StrCat("\r", Human(done));
    if (total > 0) {
      const double frac = std::min(1.0, static_cast<double>(done) / total);
      const int width = 24, fill = static_cast<int>(frac * width);
      const double eta = rate > 0 ? (total - std::min(done, total)) / rate : 0;
      absl::StrAppend(&line, " / ", Human(total), " [", std::string(fill, '#'),
                      std::string(width - fill, '.'), "] ",
                      static_cast<int>(frac * 100), "%  ", Human(rate),
                      "/s  ETA ", static_cast<int>(eta) / 60, ":",
                      absl::Dec(static_cast<int>(eta) % 60, absl::kZeroPad2));
    } else {
      absl::StrAppend(&line, "  ", Human(rate), "/s");
    }
    return line;
  }

  FILE* err_;
  bool enabled_;
  std::mutex mu_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_ =
      std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_;
};

}  // namespace bkv::cli

#endif  // BKV_CLIENT_CLI_PROGRESS_H_
