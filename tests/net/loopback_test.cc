// The one loopback rule (net/loopback.h) that the vault's plaintext checks
// and the SDK's vault address check share.
#include "net/loopback.h"

#include <gtest/gtest.h>

namespace bkv {
namespace {

TEST(Loopback, TheRule) {
  struct Case {
    const char* host_port;
    bool loopback;
  } cases[] = {
      // IPv4: all of 127/8, with or without a port.
      {"127.0.0.1", true},
      {"127.0.0.1:8443", true},
      {"127.255.255.254:1", true},
      {"127.1.2.3:0", true},
      {"128.0.0.1:8443", false},
      {"126.255.255.255", false},
      {"0.0.0.0:8443", false},
      {"10.0.0.1:8443", false},
      // IPv6: ::1 only, bare or in brackets, with or without a port.
      {"::1", true},
      {"[::1]", true},
      {"[::1]:8443", true},
      {"[0:0:0:0:0:0:0:1]:8443", true},
      {"::", false},
      {"[::]:8443", false},
      {"::2", false},
      {"[::ffff:127.0.0.1]:8443", false},  // mapped: not IN6_IS_ADDR_LOOPBACK
      {"[fe80::1]:8443", false},
      // Malformed brackets.
      {"[::1", false},
      {"[::1]8443", false},
      {"[::1]x:8443", false},
      // Names: only "localhost"; no prefix or suffix tricks.
      {"localhost", true},
      {"localhost:8443", true},
      {"localhost.example.com:8443", false},
      {"127.0.0.1.example.com:8443", false},
      {"127.example.com", false},
      {"LOCALHOST:8443", false},
      {"vault.example.com:8443", false},
      {"", false},
      {":8443", false},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(IsLoopbackHostPort(c.host_port), c.loopback) << c.host_port;
  }
}

}  // namespace
}  // namespace bkv
