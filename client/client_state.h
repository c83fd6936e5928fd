#ifndef BKV_CLIENT_CLIENT_STATE_H_
#define BKV_CLIENT_CLIENT_STATE_H_

// What a client remembers between runs to notice a store that rolls back:
// one counter or line per file in its state directory (a repository's
// newest snapshot sequence, a keyring's generation, the set and master key
// a store URL holds). An empty directory disables both reading (0, "") and
// writing.

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"

namespace bkv {

// The remembered value, or 0 when nothing was remembered.
uint64_t RecallCounter(const std::string& dir, const std::string& name);
// Replaces the file atomically (write, then rename).
absl::Status RememberCounter(const std::string& dir, const std::string& name,
                             uint64_t value);
// Raises the remembered value to `value` (never lowers it), read and
// written under an exclusive flock of `name`.lock: two commands on one
// device cannot lower a rollback counter (review finding 10).
absl::Status RememberMax(const std::string& dir, const std::string& name,
                         uint64_t value);
// The same for one line of text ("" when nothing was remembered).
std::string RecallLine(const std::string& dir, const std::string& name);
absl::Status RememberLine(const std::string& dir, const std::string& name,
                          const std::string& line);
// Runs `update` under the exclusive flock of `name`.lock, so a
// read-compare-write of `name` cannot interleave with another command's.
absl::Status UnderLock(const std::string& dir, const std::string& name,
                       const std::function<absl::Status()>& update);
// Removes what was remembered under `name` (OK if nothing was).
absl::Status ForgetLine(const std::string& dir, const std::string& name);

}  // namespace bkv

#endif  // BKV_CLIENT_CLIENT_STATE_H_
