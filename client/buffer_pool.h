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
// creep with the data size through allocator fragmentation. Keeps free
// buffers of at most `keep_bytes` capacity in all (a buffer grows to the
// largest item it held, so a count alone would not bound them). Thread-safe.
class BufferPool {
 public:
  explicit BufferPool(size_t keep_bytes) : keep_bytes_(keep_bytes) {}

  // An empty buffer, with the capacity of one given back when there is one.
  std::vector<uint8_t> Take() {
    std::lock_guard lock(mu_);
    if (free_.empty()) return {};
    std::vector<uint8_t> b = std::move(free_.back());
    free_.pop_back();
    held_ -= b.capacity();
    b.clear();
    return b;
  }

  void Give(std::vector<uint8_t> b) {
    std::lock_guard lock(mu_);
    if (held_ + b.capacity() > keep_bytes_) return;  // freed
    held_ += b.capacity();
    free_.push_back(std::move(b));
  }

 private:
  const size_t keep_bytes_;
  size_t held_ = 0;  // the capacity of free_
  std::mutex mu_;
  std::vector<std::vector<uint8_t>> free_;
};

}  // namespace bkv

#endif  // BKV_CLIENT_BUFFER_POOL_H_
