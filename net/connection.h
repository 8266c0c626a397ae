// Connection: one client socket's buffers and protocol state, owned by the
// server's event loop thread (nothing else touches it).
//
// Input buffer: the bytes received and not yet consumed. Its storage starts 4
// bytes past an 8-byte boundary, so a frame's payload (after its 4-byte
// header) is 8-byte aligned whenever the frames before it in the buffer have
// sizes that are multiples of 8, which is what FlatBuffers builders produce.
// Misaligned payloads still work: the dispatcher copies them.
//
// Output buffer: framed responses not yet sent, in request order. The server
// disconnects a client whose unsent output exceeds its cap.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "net/dispatch.h"

namespace worlddb::net {

class Connection {
 public:
  using Clock = std::chrono::steady_clock;

  // Takes ownership of `fd` (closed by the destructor).
  Connection(int fd, uint64_t id, std::string peer);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  int fd() const { return fd_; }
  uint64_t id() const { return id_; }
  const std::string& peer() const { return peer_; }

  // ---- input ----
  const uint8_t* in_data() const { return base() + in_begin_; }
  size_t in_size() const { return in_end_ - in_begin_; }
  // Reads what the socket has, into room for at least `want` more bytes.
  // Returns bytes read, 0 at end of stream, -1 with errno (EAGAIN: nothing now).
  ssize_t ReadSome(size_t want);
  void Consume(size_t n);
  void DiscardInput() { in_begin_ = in_end_ = 0; }

  // ---- output ----
  // Appends one frame holding `payload`.
  void AppendFrame(std::span<const uint8_t> payload);
  // Appends bytes that are already framed.
  void AppendRaw(std::span<const uint8_t> framed);
  size_t pending_output() const { return out_.size() - out_sent_; }
  // One send() of everything pending. Returns false on a fatal socket error
  // (errno set); a partial send is not an error.
  bool Flush();

  Session session;
  bool busy = false;         // a blocking request runs on a writer thread
  bool read_closed = false;  // the peer finished sending (or we stopped reading)
  bool closing = false;      // close once the output is flushed (or at once if `close_now`)
  bool close_now = false;
  bool active = false;         // in this loop iteration's active list
  uint32_t round_entries = 0;  // its responses waiting in rounds not yet finished
  uint32_t events = 0;         // epoll events registered
  Clock::time_point last_active = Clock::now();
  std::string close_reason;

 private:
  uint8_t* base() { return reinterpret_cast<uint8_t*>(storage_.data()) + 4; }
  const uint8_t* base() const { return reinterpret_cast<const uint8_t*>(storage_.data()) + 4; }
  size_t capacity() const { return storage_.empty() ? 0 : storage_.size() * 8 - 4; }

  int fd_;
  uint64_t id_;
  std::string peer_;
  std::vector<uint64_t> storage_;
  size_t in_begin_ = 0, in_end_ = 0;
  std::vector<uint8_t> out_;
  size_t out_sent_ = 0;
};

}  // namespace worlddb::net
