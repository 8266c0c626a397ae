#include "net/http_listener.h"

#include <arpa/inet.h>
#include <httplib.h>

#include <chrono>

namespace worlddb::net {

HttpListener::HttpListener(std::string host, HttpRoutes routes)
    : host_(std::move(host)), routes_(std::move(routes)), server_(new httplib::Server) {}

Result<std::unique_ptr<HttpListener>> HttpListener::Start(const std::string& listen, uint16_t port,
                                                          HttpRoutes routes) {
  const std::string host = listen == "localhost" ? "127.0.0.1" : listen;
  in_addr a4;
  in6_addr a6;
  if (inet_pton(AF_INET, host.c_str(), &a4) != 1 && inet_pton(AF_INET6, host.c_str(), &a6) != 1) {
    return Status::InvalidArgument("metrics listen address `" + listen +
                                   "` is not an IPv4 or IPv6 address (or localhost)");
  }
  std::unique_ptr<HttpListener> l(new HttpListener(host, std::move(routes)));
  httplib::Server& s = *l->server_;
  s.new_task_queue = [] { return new httplib::ThreadPool(kHttpThreads); };
  // A scraper that stalls must not hold a pool thread for long.
  s.set_read_timeout(5, 0);
  s.set_write_timeout(5, 0);
  s.set_keep_alive_timeout(kHttpKeepAliveSeconds);
  const HttpRoutes* r = &l->routes_;
  s.Get("/metrics", [r](const httplib::Request&, httplib::Response& res) {
    res.set_content(r->metrics ? r->metrics() : std::string(),
                    "text/plain; version=0.0.4; charset=utf-8");
  });
  s.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain; charset=utf-8");
  });
  s.Get("/readyz", [r](const httplib::Request&, httplib::Response& res) {
    const Status ready = r->ready ? r->ready() : Status::Ok();
    if (ready.ok()) {
      res.set_content("ready\n", "text/plain; charset=utf-8");
    } else {
      res.status = 503;
      res.set_content("not ready: " + ready.message() + "\n", "text/plain; charset=utf-8");
    }
  });
  if (port == 0) {
    const int bound = s.bind_to_any_port(host);
    if (bound <= 0) {
      return Status::IOError("cannot listen for metrics on " + listen + " (an ephemeral port)");
    }
    l->port_ = static_cast<uint16_t>(bound);
  } else {
    if (!s.bind_to_port(host, port)) {
      return Status::IOError("cannot listen for metrics on " + listen + " port " +
                             std::to_string(port) + " (in use, or not an address of this host)");
    }
    l->port_ = port;
  }
  l->thread_ = std::thread([p = l.get()] { p->server_->listen_after_bind(); });
  return l;
}

HttpListener::~HttpListener() { Stop(); }

std::string HttpListener::address() const {
  const bool v6 = host_.find(':') != std::string::npos;
  return (v6 ? "[" + host_ + "]" : host_) + ":" + std::to_string(port_);
}

void HttpListener::Stop() {
  if (!thread_.joinable()) return;
  // httplib's stop() does nothing until its loop has started (it checks
  // is_running()); the thread was only just created, so wait for that.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!server_->is_running() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  server_->stop();
  thread_.join();
}

}  // namespace worlddb::net
