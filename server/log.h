#ifndef BKV_SERVER_LOG_H_
#define BKV_SERVER_LOG_H_

#include <initializer_list>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"

namespace bkv::server {

// Structured logs: one JSON object per line on stderr, e.g.
//   {"ts":"...","level":"info","event":"serving","listen":"127.0.0.1:50051"}
// Never pass secrets, tokens or raw account ids (use the audit tag).
using LogField = std::pair<absl::string_view, std::string>;
void Log(absl::string_view level, absl::string_view event,
         std::initializer_list<LogField> fields = {});

// For events a flood can repeat (refused calls): at most one line per
// `kind` per kSampledLogInterval, carrying "count", the number of such
// events since the previous line of that kind (this one included). Events
// after the last line are reported with the next one. The interval runs on
// a monotonic clock. Thread-safe.
inline constexpr int kSampledLogIntervalSeconds = 10;
void LogSampled(absl::string_view level, absl::string_view event,
                absl::string_view kind,
                std::initializer_list<LogField> fields = {});

}  // namespace bkv::server

#endif  // BKV_SERVER_LOG_H_
