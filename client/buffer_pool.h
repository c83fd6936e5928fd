#ifndef BKV_CLIENT_BUFFER_POOL_H_
#define BKV_CLIENT_BUFFER_POOL_H_

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <utility>
#include <vector>

namespace bkv {

// Large buffers handed back for reuse between pipeline stages, so a long
// backup allocates (and the kernel faults in) its chunk and pack buffers
// once, not once per chunk: fewer page faults, and a peak RSS that does not
// creep with the data size through allocator fragmentation. Keeps at most
// `keep` buffers. Thread-safe.
class BufferPool {
 public:
  explicit BufferPool(size_t keep) : keep_(keep) {}

  // An empty buffer, with the capacity of one given back when there is one.
  std::vector<uint8_t> Take() {
    std::lock_guard lock(mu_);
    if (free_.empty()) return {};
    std::vector<uint8_t> b = std::move(free_.back());
    free_.pop_back();
    b.clear();
    return b;
  }

  void Give(std::vector<uint8_t> b) {
    std::lock_guard lock(mu_);
    if (free_.size() < keep_) free_.push_back(std::move(b));
  }

 private:
  const size_t keep_;
  std::mutex mu_;
  std::vector<std::vector<uint8_t>> free_;
};

}  // namespace bkv

#endif  // BKV_CLIENT_BUFFER_POOL_H_
