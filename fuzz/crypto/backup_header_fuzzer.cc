// BackupHeader::Parse on arbitrary bytes: never crashes, and a header that
// parses re-serialises to the same bytes.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "crypto/backup_format.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto h = bkv::BackupHeader::Parse({data, size});
  if (h.ok()) {
    if (std::memcmp(h->bytes().data(), data, bkv::BackupHeader::kSize) != 0) {
      std::abort();
    }
    if (h->chunk_size() < bkv::BackupHeader::kMinChunkSize) std::abort();
  }
  return 0;
}
