#include "server/log.h"

#include <cstdio>
#include <nlohmann/json.hpp>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace bkv::server {

void Log(absl::string_view level, absl::string_view event,
         std::initializer_list<LogField> fields) {
  nlohmann::json line = {
      {"ts", absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(),
                              absl::UTCTimeZone())},
      {"level", std::string(level)},
      {"event", std::string(event)},
  };
  for (const auto& [k, v] : fields) line[std::string(k)] = v;
  // replace: a stray invalid UTF-8 byte must not throw.
  std::string text =
      line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
      "\n";
  std::fwrite(text.data(), 1, text.size(), stderr);
}

}  // namespace bkv::server
