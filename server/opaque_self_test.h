#ifndef BKV_SERVER_OPAQUE_SELF_TEST_H_
#define BKV_SERVER_OPAQUE_SELF_TEST_H_

#include "absl/status/status.h"

namespace bkv::server {

// Known-answer test run at start-up, before the port opens: a full
// registration and login of RFC 9807 Appendix C.1.1 (Real Test Vector 1),
// compared byte for byte. A failure means the OPAQUE code or libsodium is
// broken on this machine, and the vault must not serve.
absl::Status RunOpaqueSelfTest();

}  // namespace bkv::server

#endif  // BKV_SERVER_OPAQUE_SELF_TEST_H_
