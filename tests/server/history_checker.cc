#include "tests/server/history_checker.h"

#include <map>

#include "absl/strings/str_cat.h"

namespace bkv::testing {
namespace {

using Event = AttemptHistory::Event;

const char* KindName(AttemptHistory::Kind k) {
  return k == AttemptHistory::Kind::kKe2 ? "KE2" : "status";
}

std::string Describe(const Event& e, uint32_t limit) {
  return absl::StrCat(KindName(e.kind), " used=", limit - e.attempts_remaining,
                      " [", absl::FormatTime(e.start), ", ",
                      absl::FormatTime(e.end), "]");
}

// The checks on one account's events.
void CheckAccount(const std::vector<const Event*>& events, uint32_t limit,
                  std::vector<std::string>& out) {
  std::map<uint32_t, const Event*> ke2_at;  // attempts_remaining -> KE2
  for (const Event* e : events) {
    if (e->attempts_remaining > limit ||
        (e->kind == AttemptHistory::Kind::kKe2 &&
         e->attempts_remaining >= limit)) {
      out.push_back(absl::StrCat(e->account, ": ", Describe(*e, limit),
                                 " outside the limit ", limit));
    }
    if (e->kind != AttemptHistory::Kind::kKe2) continue;
    auto [it, fresh] = ke2_at.emplace(e->attempts_remaining, e);
    if (!fresh) {
      out.push_back(absl::StrCat(e->account, ": two KE2s for one count: ",
                                 Describe(*it->second, limit), " and ",
                                 Describe(*e, limit)));
    }
  }
  // Real-time order: a ended before b began => used(a) <= used(b).
  for (const Event* a : events) {
    for (const Event* b : events) {
      if (a->end < b->start && a->attempts_remaining < b->attempts_remaining) {
        out.push_back(absl::StrCat(a->account, ": count went back from ",
                                   Describe(*a, limit), " to ",
                                   Describe(*b, limit)));
      }
    }
  }
}

}  // namespace

void AttemptHistory::Add(Event e) {
  absl::MutexLock lock(&mu_);
  events_.push_back(std::move(e));
}

std::vector<std::string> AttemptHistory::Check() const {
  absl::MutexLock lock(&mu_);
  std::map<std::string, std::vector<const Event*>> by_account;
  for (const Event& e : events_) by_account[e.account].push_back(&e);
  std::vector<std::string> out;
  for (const auto& [account, events] : by_account) {
    CheckAccount(events, limit_, out);
  }
  return out;
}

int AttemptHistory::Ke2s(const std::string& account) const {
  absl::MutexLock lock(&mu_);
  int n = 0;
  for (const Event& e : events_) {
    n += e.account == account && e.kind == Kind::kKe2;
  }
  return n;
}

}  // namespace bkv::testing
