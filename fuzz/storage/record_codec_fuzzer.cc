// The stored-record parsers (storage/record_codec.h) on arbitrary bytes. The
// first byte picks the parser: a record value (framing + unseal), a padded
// plaintext, or a watermark. Whatever parses must round-trip.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "storage/record_codec.h"
#include "tests/storage/test_util.h"

using namespace bkv::storage;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto sealer = testing::TestSealer();
  static const AccountKey key = DeriveAccountKey("fuzz-account");
  if (size == 0) return 0;
  const std::span<const uint8_t> in(data + 1, size - 1);
  switch (data[0] % 3) {
    case 0: {
      // Nothing forged can pass the AEAD; failures must be kDataLoss.
      auto r = OpenRecord(*sealer, key, in);
      if (r.ok() || r.status().code() != absl::StatusCode::kDataLoss) abort();
      break;
    }
    case 1: {
      // As a padded plaintext, and as the contents of a well-formed padding
      // so the proto parser is reached too.
      if (UnpadRecord(in).ok() && in.size() != kPaddedRecordSize) abort();
      if (in.size() > kMaxRecordSize) break;
      std::vector<uint8_t> padded(kPaddedRecordSize, 0);
      for (int i = 0; i < 4; ++i)
        padded[i] = uint8_t(in.size() >> (24 - 8 * i));
      std::copy(in.begin(), in.end(), padded.begin() + 4);
      auto r = UnpadRecord(padded);
      if (!r.ok()) break;
      r->set_schema_version(kSchemaVersion);
      auto value = SealRecord(*sealer, key, *r);
      if (!value.ok()) {
        // Only a record grown past the padding by the field just set.
        if (value.status().code() == absl::StatusCode::kInvalidArgument) break;
        abort();
      }
      auto back = OpenRecord(*sealer, key, AsSpan(*value));
      if (!back.ok() || back->SerializeAsString() != r->SerializeAsString()) {
        abort();
      }
      break;
    }
    case 2: {
      auto w = ParseWatermark(in);
      if (!w.ok()) break;
      const std::string again = EncodeWatermark(*w);
      if (again.size() != in.size() ||
          !std::equal(in.begin(), in.end(), AsSpan(again).begin())) {
        abort();
      }
      break;
    }
  }
  return 0;
}
