#include "net/loopback.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <string>

namespace bkv {
namespace {

// The host part of `host_port`; empty when the brackets are malformed.
std::string HostOf(std::string_view host_port) {
  if (host_port.starts_with("[")) {
    const size_t end = host_port.find(']');
    if (end == std::string_view::npos) return "";
    const std::string_view rest = host_port.substr(end + 1);
    if (!rest.empty() && !rest.starts_with(":")) return "";
    return std::string(host_port.substr(1, end - 1));
  }
  if (std::count(host_port.begin(), host_port.end(), ':') == 1) {
    return std::string(host_port.substr(0, host_port.find(':')));
  }
  return std::string(host_port);  // no port, or a bare IPv6 literal
}

}  // namespace

bool IsLoopbackHostPort(std::string_view host_port) {
  const std::string host = HostOf(host_port);
  if (host == "localhost") return true;
  in_addr v4;
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    return IN6_IS_ADDR_LOOPBACK(&v6);
  }
  return false;
}

}  // namespace bkv
