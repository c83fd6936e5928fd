#ifndef BKV_NET_LOOPBACK_H_
#define BKV_NET_LOOPBACK_H_

#include <string_view>

namespace bkv {

// Whether `host_port` names this machine, for the rules that allow plaintext
// only on loopback (the vault's listeners, etcd and peer addresses; the
// SDK's vault address). True for an IP literal in 127.0.0.0/8 or ::1 (parsed
// by inet_pton, so "127.0.0.1.example.com" is a name, not loopback) and for
// the name "localhost"; false for every other name, which DNS could resolve
// anywhere. Forms: "host", "host:port", "[v6]", "[v6]:port" and a bare
// IPv6 literal ("::1"); the port is not checked. Thread-safe.
bool IsLoopbackHostPort(std::string_view host_port);

}  // namespace bkv

#endif  // BKV_NET_LOOPBACK_H_
