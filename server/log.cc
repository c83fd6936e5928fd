#include "server/log.h"

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace bkv::server {
namespace {

void Write(absl::string_view level, absl::string_view event,
           std::initializer_list<LogField> fields, const uint64_t* count) {
  nlohmann::json line = {
      {"ts", absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(),
                              absl::UTCTimeZone())},
      {"level", std::string(level)},
      {"event", std::string(event)},
  };
  for (const auto& [k, v] : fields) line[std::string(k)] = v;
  if (count != nullptr) line["count"] = *count;
  // replace: a stray invalid UTF-8 byte must not throw.
  std::string text =
      line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
      "\n";
  std::fwrite(text.data(), 1, text.size(), stderr);
}

struct Sampler {
  struct Kind {
    std::chrono::steady_clock::time_point last_line;
    uint64_t pending = 0;
    bool logged = false;
  };
  absl::Mutex mu;
  absl::flat_hash_map<std::string, Kind> kinds ABSL_GUARDED_BY(mu);
};

}  // namespace

void LogSampled(absl::string_view level, absl::string_view event,
                absl::string_view kind,
                std::initializer_list<LogField> fields) {
  static Sampler* const sampler = new Sampler;  // never destroyed
  const auto now = std::chrono::steady_clock::now();
  uint64_t count = 0;
  {
    absl::MutexLock lock(&sampler->mu);
    Sampler::Kind& k = sampler->kinds[kind];
    ++k.pending;
    if (k.logged &&
        now - k.last_line < std::chrono::seconds(kSampledLogIntervalSeconds)) {
      return;
    }
    k.logged = true;
    k.last_line = now;
    count = k.pending;
    k.pending = 0;
  }
  Write(level, event, fields, &count);
}

void Log(absl::string_view level, absl::string_view event,
         std::initializer_list<LogField> fields) {
  Write(level, event, fields, nullptr);
}

}  // namespace bkv::server
