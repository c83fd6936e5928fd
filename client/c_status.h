#ifndef BKV_CLIENT_C_STATUS_H_
#define BKV_CLIENT_C_STATUS_H_

// The C ABI's status contract in both directions, in one place: SDK
// statuses become bkv_status for the app, and the bkv_status an app's store
// callback returns becomes an SDK status (so it comes back out as the same
// bkv_status). "Cancelled by the app" travels as CancelledByApp()'s mark.

#include <string>

#include "absl/status/status.h"
#include "bkv/bkv.h"

namespace bkv {

// bkv_status_name().
const char* StatusName(bkv_status status);
bkv_status StatusToC(const absl::Status& s);
absl::Status StatusFromC(bkv_status code, std::string message);

}  // namespace bkv

#endif  // BKV_CLIENT_C_STATUS_H_
