// HttpListener: the daemon's operator endpoints over HTTP/1.1, served by
// cpp-httplib (Debian's libcpp-httplib; we parse no HTTP ourselves) on a port
// of its own, apart from the binary protocol's event loop:
//
//   GET /metrics  200, the Prometheus text format (from routes.metrics)
//   GET /healthz  200 "ok": the process answers
//   GET /readyz   200 "ready" when routes.ready() is OK; else 503 and its
//                 message (recovering, writes stopped after a disk error, ...)
//
// Threads: Start() binds (so port() is known and a taken port fails there)
// and serves on a thread of its own, which hands requests to a pool of
// kHttpThreads; the route functions run on those threads, so they must be
// thread-safe. Stop() (and the destructor) stops accepting, finishes the
// requests in flight and joins; call it from an ordinary thread, not a
// signal handler.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "engine/status.h"

namespace httplib {
class Server;
}

namespace worlddb::net {

inline constexpr uint16_t kDefaultMetricsPort = 7879;
// httplib gives a keep-alive connection a pool thread until it has been idle
// for the keep-alive timeout (kHttpKeepAliveSeconds): Prometheus (or two)
// and health probes fit in four.
inline constexpr int kHttpThreads = 4;
inline constexpr int kHttpKeepAliveSeconds = 2;

struct HttpRoutes {
  std::function<std::string()> metrics;  // the /metrics page
  std::function<Status()> ready;         // /readyz: OK, or why not ready
};

class HttpListener {
 public:
  // `listen`: an IPv4 or IPv6 literal or "localhost"; port 0: ephemeral.
  static Result<std::unique_ptr<HttpListener>> Start(const std::string& listen, uint16_t port,
                                                     HttpRoutes routes);
  ~HttpListener();
  HttpListener(const HttpListener&) = delete;
  HttpListener& operator=(const HttpListener&) = delete;

  uint16_t port() const { return port_; }
  // "127.0.0.1:7879" or "[::1]:7879".
  std::string address() const;
  void Stop();

 private:
  HttpListener(std::string host, HttpRoutes routes);

  const std::string host_;
  const HttpRoutes routes_;
  std::unique_ptr<httplib::Server> server_;
  uint16_t port_ = 0;
  std::thread thread_;
};

}  // namespace worlddb::net
