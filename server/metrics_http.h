#ifndef BKV_SERVER_METRICS_HTTP_H_
#define BKV_SERVER_METRICS_HTTP_H_

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/metrics.h"

struct mg_context;
struct mg_connection;

namespace bkv::server {

// Serves GET /metrics (Prometheus text format) and GET /healthz (200 while
// the vault serves gRPC, 503 while it starts or drains: for load balancers
// and orchestrators that speak HTTP, not gRPC health) over HTTP with
// CivetWeb. Anything else is 404. Stops when destroyed.
class MetricsHttpServer {
 public:
  // `listen` is host:port; `metrics` must outlive the server.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(
      const std::string& listen, const Metrics& metrics);
  ~MetricsHttpServer();

  void SetServing(bool serving) { serving_.store(serving); }

 private:
  MetricsHttpServer() = default;
  static int HandleHealth(mg_connection* conn, void* self);
  mg_context* ctx_ = nullptr;
  std::atomic<bool> serving_{false};
};

}  // namespace bkv::server

#endif  // BKV_SERVER_METRICS_HTTP_H_
