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

}  // namespace bkv::server

#endif  // BKV_SERVER_LOG_H_
