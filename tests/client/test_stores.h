#ifndef BKV_TESTS_CLIENT_TEST_STORES_H_
#define BKV_TESTS_CLIENT_TEST_STORES_H_

// Opens a store for the parameterized store suites: the real URL schemes,
// plus callback:///dir, the app-supplied callback path (bkv_store_callbacks
// over a directory, tests/client/dir_store_callbacks.c).

#include <memory>
#include <string>

#include "client/blob_store.h"
#include "client/callback_blob_store.h"
#include "tests/client/dir_store_callbacks.h"

namespace bkv::testing {

inline absl::StatusOr<std::unique_ptr<BlobStore>> OpenTestStore(
    const std::string& url, const BlobStoreOptions& options = {}) {
  constexpr std::string_view kCallback = "callback://";
  if (url.rfind(kCallback, 0) != 0) return OpenBlobStore(url, options);
  void* ctx = bkv_test_dir_ctx(url.substr(kCallback.size()).c_str());
  if (ctx == nullptr) return absl::InternalError("cannot create " + url);
  return std::make_unique<CallbackBlobStore>(bkv_test_dir_callbacks(), ctx,
                                             url);
}

// Stores on this machine without a server: no URL of a down server, no
// credentials to get wrong.
inline bool IsLocalStore(const std::string& kind) {
  return kind == "file" || kind == "callback";
}

}  // namespace bkv::testing

#endif  // BKV_TESTS_CLIENT_TEST_STORES_H_
