#include "server/metrics.h"

#include "absl/strings/str_cat.h"

namespace bkv::server {
namespace {

std::string Label(absl::string_view k, absl::string_view v) {
  return absl::StrCat(k, "=\"", v, "\"");
}

void RenderCounter(std::string& out, absl::string_view name,
                   absl::string_view help,
                   const std::map<std::string, uint64_t>& values) {
  absl::StrAppend(&out, "# HELP ", name, " ", help, "\n# TYPE ", name,
                  " counter\n");
  for (const auto& [labels, v] : values) {
    absl::StrAppend(&out, name, "{", labels, "} ", v, "\n");
  }
}

}  // namespace

void Metrics::Histogram::Observe(double v) {
  for (size_t i = 0; i < kBuckets.size(); ++i) {
    if (v <= kBuckets[i]) ++buckets[i];
  }
  ++count;
  sum += v;
}

void Metrics::ObserveRequest(absl::string_view method,
                             absl::string_view outcome, double seconds) {
  std::string labels =
      absl::StrCat(Label("method", method), ",", Label("outcome", outcome));
  absl::MutexLock lock(&mu_);
  ++requests_[labels];
  request_seconds_[labels].Observe(seconds);
}

void Metrics::CountAttempt(absl::string_view outcome) {
  // An unknown account's attempt must look like a real one here too:
  // /metrics may be scraped by outsiders, and a separate count would tell
  // them which account ids exist.
  if (outcome == "unknown_account") outcome = "started";
  absl::MutexLock lock(&mu_);
  ++attempts_[Label("outcome", outcome)];
}

void Metrics::CountLockout() {
  absl::MutexLock lock(&mu_);
  ++lockouts_;
}

void Metrics::CountRateLimited(absl::string_view scope) {
  absl::MutexLock lock(&mu_);
  ++rate_limited_[Label("scope", scope)];
}

void Metrics::ObserveHsm(absl::string_view op, double seconds) {
  absl::MutexLock lock(&mu_);
  hsm_seconds_[Label("op", op)].Observe(seconds);
}

void Metrics::ObserveStorage(absl::string_view op, double seconds) {
  absl::MutexLock lock(&mu_);
  storage_seconds_[Label("op", op)].Observe(seconds);
}

std::string Metrics::RenderPrometheus() const {
  std::string out;
  auto render_histograms = [&](absl::string_view name, absl::string_view help,
                               const std::map<std::string, Histogram>& hs) {
    absl::StrAppend(&out, "# HELP ", name, " ", help, "\n# TYPE ", name,
                    " histogram\n");
    for (const auto& [labels, h] : hs) {
      for (size_t i = 0; i < kBuckets.size(); ++i) {
        absl::StrAppend(&out, name, "_bucket{", labels, ",le=\"", kBuckets[i],
                        "\"} ", h.buckets[i], "\n");
      }
      absl::StrAppend(&out, name, "_bucket{", labels, ",le=\"+Inf\"} ", h.count,
                      "\n", name, "_sum{", labels, "} ", h.sum, "\n", name,
                      "_count{", labels, "} ", h.count, "\n");
    }
  };
  absl::MutexLock lock(&mu_);
  RenderCounter(out, "bkv_requests_total", "Vault calls by method and outcome.",
                requests_);
  render_histograms("bkv_request_duration_seconds",
                    "Vault call latency by method and outcome.",
                    request_seconds_);
  RenderCounter(out, "bkv_attempts_total",
                "Recovery attempts by outcome (counted at RecoverStart).",
                attempts_);
  absl::StrAppend(&out,
                  "# HELP bkv_lockouts_total Records locked after their last "
                  "attempt.\n# TYPE bkv_lockouts_total counter\n"
                  "bkv_lockouts_total ",
                  lockouts_, "\n");
  RenderCounter(out, "bkv_rate_limited_total",
                "Calls refused by rate limits, by scope.", rate_limited_);
  render_histograms("bkv_hsm_duration_seconds", "HSM operation latency.",
                    hsm_seconds_);
  render_histograms("bkv_storage_duration_seconds",
                    "Record store operation latency.", storage_seconds_);
  if (collect_) collect_(out);
  return out;
}

void Metrics::SetCollector(std::function<void(std::string& out)> collect) {
  absl::MutexLock lock(&mu_);
  collect_ = std::move(collect);
}

}  // namespace bkv::server
