#include "server/rate_limiter.h"

#include <arpa/inet.h>

#include <algorithm>
#include <chrono>
#include <functional>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace bkv::server {

absl::Time MonotonicNow() {
  return absl::UnixEpoch() +
         absl::FromChrono(std::chrono::steady_clock::now().time_since_epoch());
}

absl::Time RateLimiter::FullAt(const Bucket& b) const {
  return b.updated +
         absl::Seconds((options_.burst - b.tokens) / options_.per_second);
}

absl::Duration RateLimiter::Acquire(absl::string_view key, absl::Time now) {
  Shard& shard = shards_[std::hash<std::string_view>()(
                             std::string_view(key.data(), key.size())) %
                         kShards];
  absl::MutexLock lock(&shard.mu);
  auto it = shard.buckets.find(key);
  if (it == shard.buckets.end()) {
    if (shard.buckets.size() >= options_.max_keys_per_shard) {
      Evict(shard, now);
      if (shard.buckets.size() >= options_.max_keys_per_shard) {
        // Every bucket here is still refilling: refuse until one is full.
        return std::max(shard.next_full - now, absl::Milliseconds(1));
      }
    }
    it = shard.buckets.emplace(std::string(key), Bucket{options_.burst, now})
             .first;
  }
  Bucket& b = it->second;
  const double elapsed =
      absl::ToDoubleSeconds(std::max(now - b.updated, absl::ZeroDuration()));
  b.tokens = std::min(options_.burst, b.tokens + elapsed * options_.per_second);
  b.updated = std::max(b.updated, now);
  if (b.tokens >= 1) {
    b.tokens -= 1;
    return absl::ZeroDuration();
  }
  return absl::Seconds((1 - b.tokens) / options_.per_second);
}

void RateLimiter::Evict(Shard& shard, absl::Time now) {
  // A scan cannot free anything before the earliest bucket is full again,
  // so a flood of new keys does not rescan a full shard on every call.
  if (now < shard.next_full) return;
  // A bucket that would be full now carries no state worth keeping.
  absl::Time next_full = absl::InfiniteFuture();
  absl::erase_if(shard.buckets, [&](const auto& kv) {
    const absl::Time full_at = FullAt(kv.second);
    if (full_at <= now) return true;
    next_full = std::min(next_full, full_at);
    return false;
  });
  shard.next_full = shard.buckets.size() >= options_.max_keys_per_shard
                        ? next_full
                        : absl::InfinitePast();
}

size_t RateLimiter::size_for_testing() {
  size_t n = 0;
  for (Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    n += shard.buckets.size();
  }
  return n;
}

namespace {

// "ipv4:10.0.0.7:5555" -> "10.0.0.7"; "ipv6:[::1]:5555" -> "::1".
std::string PeerIp(absl::string_view peer) {
  absl::ConsumePrefix(&peer, "ipv4:") || absl::ConsumePrefix(&peer, "ipv6:");
  if (size_t colon = peer.rfind(':'); colon != absl::string_view::npos) {
    peer = peer.substr(0, colon);
  }
  absl::ConsumePrefix(&peer, "[");
  absl::ConsumeSuffix(&peer, "]");
  return std::string(peer);
}

// One spelling per address, so "::ffff:10.0.0.2" is "10.0.0.2" and
// "fe80::1%eth0" (a zone id, "%25" in gRPC's peer) is "fe80::1"; "" when
// `s` is no IP address.
std::string CanonicalIp(absl::string_view s) {
  s = s.substr(0, s.find('%'));
  const std::string ip(s);
  in_addr v4;
  in6_addr v6;
  char text[INET6_ADDRSTRLEN];
  if (inet_pton(AF_INET, ip.c_str(), &v4) == 1) {
    return inet_ntop(AF_INET, &v4, text, sizeof text);
  }
  if (inet_pton(AF_INET6, ip.c_str(), &v6) != 1) return "";
  if (IN6_IS_ADDR_V4MAPPED(&v6)) {
    return inet_ntop(AF_INET, &v6.s6_addr[12], text, sizeof text);
  }
  return inet_ntop(AF_INET6, &v6, text, sizeof text);
}

bool IsIpAddress(const std::string& s) { return !CanonicalIp(s).empty(); }

// The bucket key of an address: IPv4 as is; IPv6 by its /64, the block one
// subscriber gets, so rotating through it buys no new buckets.
std::string BucketKey(const std::string& address) {
  const std::string ip = CanonicalIp(address);
  in6_addr v6;
  if (inet_pton(AF_INET6, ip.c_str(), &v6) != 1) {
    return ip.empty() ? address : ip;
  }
  std::fill(v6.s6_addr + 8, v6.s6_addr + 16, 0);
  char text[INET6_ADDRSTRLEN];
  inet_ntop(AF_INET6, &v6, text, sizeof text);
  return absl::StrCat(text, "/64");
}

}  // namespace

std::string ClientAddress(absl::string_view peer,
                          const absl::string_view* forwarded_for,
                          const absl::flat_hash_set<std::string>& trusted) {
  std::string ip = PeerIp(peer);
  if (forwarded_for == nullptr || !trusted.contains(CanonicalIp(ip))) {
    return BucketKey(ip);
  }
  absl::string_view last = *forwarded_for;
  if (size_t comma = last.rfind(','); comma != absl::string_view::npos) {
    last = last.substr(comma + 1);
  }
  std::string client(absl::StripAsciiWhitespace(last));
  // A proxy that sent garbage: limit by the proxy rather than trust it.
  return BucketKey(IsIpAddress(client) ? client : ip);
}

absl::StatusOr<absl::flat_hash_set<std::string>> ParseTrustedProxies(
    absl::string_view list) {
  absl::flat_hash_set<std::string> out;
  for (absl::string_view part : absl::StrSplit(list, ',', absl::SkipEmpty())) {
    std::string ip(absl::StripAsciiWhitespace(part));
    if (ip.empty()) continue;
    if (!IsIpAddress(ip)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "trusted_proxies: `", ip,
          "` is not an IP address (list the proxies' addresses, comma "
          "separated)"));
    }
    out.insert(CanonicalIp(ip));
  }
  return out;
}

}  // namespace bkv::server
