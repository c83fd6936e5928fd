#ifndef BKV_SERVER_METRICS_H_
#define BKV_SERVER_METRICS_H_

#include <array>
#include <functional>
#include <map>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace bkv::server {

// The vault's Prometheus metrics, rendered in the text exposition format
// (served over HTTP by metrics_http.h). Thread-safe.
//
//   bkv_requests_total{method,outcome}          counter
//   bkv_request_duration_seconds{method,outcome} histogram
//   bkv_attempts_total{outcome}                 counter (recovery attempts;
//                                               unknown accounts count as
//                                               "started", like real ones)
//   bkv_lockouts_total                          counter
//   bkv_rate_limited_total{scope}               counter (read|guess|account|
//                                               peer|unauthenticated)
//   bkv_hsm_duration_seconds{op}                histogram
//   bkv_storage_duration_seconds{op}            histogram
class Metrics {
 public:
  void ObserveRequest(absl::string_view method, absl::string_view outcome,
                      double seconds);
  void CountAttempt(absl::string_view outcome);
  void CountLockout();
  void CountRateLimited(absl::string_view scope);
  void ObserveHsm(absl::string_view op, double seconds);
  void ObserveStorage(absl::string_view op, double seconds);

  // Appends more metrics at each render (a component's own counters, e.g.
  // the freshness layer's); set once while building the node.
  void SetCollector(std::function<void(std::string& out)> collect);
  std::string RenderPrometheus() const;

 private:
  static constexpr std::array<double, 14> kBuckets = {
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
      0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5};
  struct Histogram {
    std::array<uint64_t, kBuckets.size()> buckets{};
    uint64_t count = 0;
    double sum = 0;
    void Observe(double v);
  };
  using Labels = std::string;  // rendered label set, e.g. method="X"

  mutable absl::Mutex mu_;
  std::map<Labels, uint64_t> requests_ ABSL_GUARDED_BY(mu_);
  std::map<Labels, Histogram> request_seconds_ ABSL_GUARDED_BY(mu_);
  std::map<Labels, uint64_t> attempts_ ABSL_GUARDED_BY(mu_);
  uint64_t lockouts_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<Labels, uint64_t> rate_limited_ ABSL_GUARDED_BY(mu_);
  std::map<Labels, Histogram> hsm_seconds_ ABSL_GUARDED_BY(mu_);
  std::map<Labels, Histogram> storage_seconds_ ABSL_GUARDED_BY(mu_);
  std::function<void(std::string&)> collect_ ABSL_GUARDED_BY(mu_);
};

}  // namespace bkv::server

#endif  // BKV_SERVER_METRICS_H_
