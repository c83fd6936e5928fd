// The repository v2 decoders (client/repo/repo_codec.h) on arbitrary bytes:
// what a store serves (a pack's trailer, before decryption) and what a key
// holder sealed (index, snapshot, tree, head, lock plaintexts, after it).
// Never crashes or over-allocates, and whatever decodes encodes back to the
// same bytes. One binary per decoder: BKV_FUZZ_PARSER picks it.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "client/repo/repo_codec.h"

namespace {

using Bytes = std::span<const uint8_t>;

void Same(const std::vector<uint8_t>& again, Bytes in) {
  if (!std::equal(again.begin(), again.end(), in.begin(), in.end())) {
    std::abort();
  }
}

void Pack(Bytes in) {
  auto header = bkv::PackHeaderOf(in);
  if (!header.ok()) return;
  // Inside the pack, ending right before the 4-byte length.
  if (header->data() < in.data() ||
      header->data() + header->size() + 4 != in.data() + in.size()) {
    std::abort();
  }
  (void)bkv::DecodeIndex(*header);  // its plaintext shape, past the seal
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Bytes in(data, size);
#if BKV_FUZZ_PARSER == 1
  if (auto v = bkv::DecodeIndex(in); v.ok()) Same(bkv::EncodeIndex(*v), in);
#elif BKV_FUZZ_PARSER == 2
  // Format 2 (entries inline) decodes but is never written again.
  if (auto v = bkv::DecodeSnapshot(in); v.ok() && v->tree) {
    Same(bkv::EncodeSnapshot(*v), in);
  }
#elif BKV_FUZZ_PARSER == 3
  if (auto v = bkv::DecodeTree(in); v.ok()) Same(bkv::EncodeTree(*v), in);
#elif BKV_FUZZ_PARSER == 4
  if (auto v = bkv::DecodeHead(in); v.ok()) Same(bkv::EncodeHead(*v), in);
#elif BKV_FUZZ_PARSER == 5
  if (auto v = bkv::DecodeLock(in); v.ok()) Same(bkv::EncodeLock(*v), in);
#elif BKV_FUZZ_PARSER == 6
  Pack(in);
#else
#error "BKV_FUZZ_PARSER must be 1..6"
#endif
  return 0;
}
