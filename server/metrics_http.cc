#include "server/metrics_http.h"

#include <civetweb.h>

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace bkv::server {
namespace {

int HandleMetrics(mg_connection* conn, void* data) {
  const auto* metrics = static_cast<const Metrics*>(data);
  const mg_request_info* req = mg_get_request_info(conn);
  if (std::strcmp(req->request_method, "GET") != 0) {
    mg_send_http_error(conn, 405, "%s", "only GET");
    return 405;
  }
  std::string body = metrics->RenderPrometheus();
  mg_send_http_ok(conn, "text/plain; version=0.0.4; charset=utf-8",
                  static_cast<long long>(body.size()));
  mg_write(conn, body.data(), body.size());
  return 200;
}

}  // namespace

int MetricsHttpServer::HandleHealth(mg_connection* conn, void* self) {
  const bool serving =
      static_cast<const MetricsHttpServer*>(self)->serving_.load();
  const char* body = serving ? "serving\n" : "not serving\n";
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
            "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
            serving ? 200 : 503, serving ? "OK" : "Service Unavailable",
            std::strlen(body), body);
  return serving ? 200 : 503;
}

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    const std::string& listen, const Metrics& metrics) {
  mg_init_library(0);
  // CivetWeb takes "host:port" for IPv4 listeners.
  const char* options[] = {
      "listening_ports", listen.c_str(), "num_threads", "2", nullptr, nullptr};
  mg_callbacks callbacks{};
  mg_context* ctx = mg_start(&callbacks, nullptr, options);
  if (ctx == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", listen,
                     ": address in use or invalid ([server] metrics_listen)"));
  }
  std::unique_ptr<MetricsHttpServer> server(new MetricsHttpServer());
  server->ctx_ = ctx;
  mg_set_request_handler(ctx, "/metrics$", HandleMetrics,
                         const_cast<Metrics*>(&metrics));
  mg_set_request_handler(ctx, "/healthz$", HandleHealth, server.get());
  return server;
}

MetricsHttpServer::~MetricsHttpServer() {
  mg_stop(ctx_);
  mg_exit_library();
}

}  // namespace bkv::server
