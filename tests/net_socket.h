// A raw TCP client for the server tests: blocking socket, frames in and out,
// waits bounded by a generous deadline (tests assert outcomes, not times).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "net/frame.h"
#include "net_requests.h"

namespace worlddb::net::testing {

class RawConn {
 public:
  explicit RawConn(uint16_t port, int rcvbuf = 0) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (rcvbuf > 0) ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  ~RawConn() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawConn(const RawConn&) = delete;
  RawConn& operator=(const RawConn&) = delete;

  bool ok() const { return ok_; }
  int fd() const { return fd_; }

  bool SendRaw(const std::vector<uint8_t>& bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
      const ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<size_t>(n);
    }
    return true;
  }
  static std::vector<uint8_t> Frame(const std::vector<uint8_t>& payload) {
    std::vector<uint8_t> f;
    AppendFrame(payload, &f);
    return f;
  }
  bool Send(const std::vector<uint8_t>& payload) { return SendRaw(Frame(payload)); }

  // The next response, or nothing at end of stream, error or deadline.
  std::optional<Reply> Read(int timeout_ms = 30000) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      FrameView v = PeekFrame(buf_.data(), buf_.size(), size_t{1} << 30);
      if (v.state == FrameView::State::kFrame) {
        Reply r(buf_.data() + kFrameHeaderBytes, v.payload_bytes);
        buf_.erase(buf_.begin(), buf_.begin() + static_cast<ptrdiff_t>(v.frame_bytes()));
        return r;
      }
      if (!Fill(deadline)) return std::nullopt;
    }
  }
  // Reads and drops responses until the server closes the connection; true
  // if it did before the deadline.
  bool WaitClosed(int timeout_ms = 30000) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (Fill(deadline)) buf_.clear();
    return eof_;
  }

 private:
  bool Fill(std::chrono::steady_clock::time_point deadline) {
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      const int r = ::poll(&p, 1, static_cast<int>(left.count()));
      if (r <= 0) continue;
      uint8_t tmp[65536];
      const ssize_t n = ::recv(fd_, tmp, sizeof(tmp), 0);
      if (n <= 0) {
        eof_ = true;
        return false;
      }
      buf_.insert(buf_.end(), tmp, tmp + n);
      return true;
    }
  }

  int fd_ = -1;
  bool ok_ = false;
  bool eof_ = false;
  std::vector<uint8_t> buf_;
};

}  // namespace worlddb::net::testing
