#ifndef BKV_SERVER_METRICS_HTTP_H_
#define BKV_SERVER_METRICS_HTTP_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/metrics.h"

struct mg_context;

namespace bkv::server {

// Serves GET /metrics (Prometheus text format) over HTTP with CivetWeb.
// Anything else is 404. Stops when destroyed.
class MetricsHttpServer {
 public:
  // `listen` is host:port; `metrics` must outlive the server.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(
      const std::string& listen, const Metrics& metrics);
  ~MetricsHttpServer();

 private:
  MetricsHttpServer(mg_context* ctx) : ctx_(ctx) {}
  mg_context* ctx_;
};

}  // namespace bkv::server

#endif  // BKV_SERVER_METRICS_HTTP_H_
