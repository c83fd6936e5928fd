#include "freshness/shard_tree.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <sodium.h>

#include <algorithm>

#include "absl/strings/string_view.h"

namespace bkv::freshness {
namespace {

class Hasher {
 public:
  explicit Hasher(absl::string_view label) {
    crypto_hash_sha256_init(&ctx_);
    Add(label.data(), label.size());
  }
  void Add(const void* p, size_t n) {
    crypto_hash_sha256_update(&ctx_, static_cast<const uint8_t*>(p), n);
  }
  template <size_t N>
  void Add(const std::array<uint8_t, N>& a) {
    Add(a.data(), a.size());
  }
  Digest Final() {
    Digest d;
    crypto_hash_sha256_final(&ctx_, d.data());
    return d;
  }

 private:
  crypto_hash_sha256_state ctx_;
};

bool KeyLess(const AccountKey& a, const AccountKey& b) { return a < b; }

}  // namespace

Digest RecordDigest(const AccountKey& key, const storage::v1::UserRecord& r) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream out(&bytes);
    google::protobuf::io::CodedOutputStream coded(&out);
    coded.SetSerializationDeterministic(true);
    r.SerializeToCodedStream(&coded);
  }
  Hasher h("bkv.fresh.record.v1");
  h.Add(key);
  h.Add(bytes.data(), bytes.size());
  return h.Final();
}

uint32_t ShardOf(const AccountKey& key, uint32_t shards) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | key[i];
  return static_cast<uint32_t>(v % shards);
}

std::string DigestHex(const Digest& d) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < 8; ++i) {
    s.push_back(kHex[d[i] >> 4]);
    s.push_back(kHex[d[i] & 15]);
  }
  return s;
}

ShardTree::ShardTree() : buckets_(kBuckets), nodes_(2 * kBuckets) {}

std::optional<LeafValue> ShardTree::Get(const AccountKey& key) const {
  const auto& v = buckets_[key[8]].leaves;
  auto it = std::lower_bound(
      v.begin(), v.end(), key,
      [](const Leaf& l, const AccountKey& k) { return KeyLess(l.key, k); });
  if (it == v.end() || it->key != key) return std::nullopt;
  return it->value;
}

void ShardTree::Set(const AccountKey& key,
                    const std::optional<LeafValue>& value) {
  Bucket& b = buckets_[key[8]];
  auto it = std::lower_bound(
      b.leaves.begin(), b.leaves.end(), key,
      [](const Leaf& l, const AccountKey& k) { return KeyLess(l.key, k); });
  const bool present = it != b.leaves.end() && it->key == key;
  if (value) {
    if (present) {
      it->value = *value;
    } else {
      b.leaves.insert(it, Leaf{key, *value});
      ++size_;
    }
  } else if (present) {
    b.leaves.erase(it);
    --size_;
  }
  b.dirty = true;
  dirty_ = true;
}

void ShardTree::Rehash(size_t bucket) {
  Hasher h("bkv.fresh.bucket.v1");
  for (const Leaf& l : buckets_[bucket].leaves) {
    h.Add(l.key);
    h.Add(l.value.digest);
  }
  nodes_[kBuckets + bucket] = h.Final();
  buckets_[bucket].dirty = false;
}

const Digest& ShardTree::Root() {
  if (!dirty_) return nodes_[1];
  std::vector<bool> changed(2 * kBuckets, false);
  for (size_t b = 0; b < kBuckets; ++b) {
    if (!buckets_[b].dirty) continue;
    Rehash(b);
    changed[kBuckets + b] = true;
  }
  for (size_t n = kBuckets - 1; n >= 1; --n) {
    if (!changed[2 * n] && !changed[2 * n + 1]) continue;
    Hasher h("bkv.fresh.node.v1");
    h.Add(nodes_[2 * n]);
    h.Add(nodes_[2 * n + 1]);
    nodes_[n] = h.Final();
    changed[n] = true;
  }
  dirty_ = false;
  return nodes_[1];
}

}  // namespace bkv::freshness
