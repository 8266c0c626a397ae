#include "net/connection.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "net/frame.h"

namespace worlddb::net {

Connection::Connection(int fd, uint64_t id, std::string peer)
    : fd_(fd), id_(id), peer_(std::move(peer)) {}

Connection::~Connection() {
  if (fd_ >= 0) ::close(fd_);
}

ssize_t Connection::ReadSome(size_t want) {
  if (want < kReadChunkBytes) want = kReadChunkBytes;
  if (in_begin_ == in_end_) in_begin_ = in_end_ = 0;
  if (capacity() - in_end_ < want) {
    // Move the unconsumed bytes to the front (keeping the 4-mod-8 offset),
    // then grow if that is still too little room.
    if (in_begin_ > 0) {
      std::memmove(base(), base() + in_begin_, in_end_ - in_begin_);
      in_end_ -= in_begin_;
      in_begin_ = 0;
    }
    if (capacity() - in_end_ < want) storage_.resize((in_end_ + want + 4 + 7) / 8);
  }
  const ssize_t n = ::recv(fd_, base() + in_end_, capacity() - in_end_, 0);
  if (n > 0) in_end_ += static_cast<size_t>(n);
  return n;
}

void Connection::Consume(size_t n) {
  in_begin_ += n;
  if (in_begin_ == in_end_) in_begin_ = in_end_ = 0;
}

void Connection::AppendFrame(std::span<const uint8_t> payload) { net::AppendFrame(payload, &out_); }

void Connection::AppendRaw(std::span<const uint8_t> framed) {
  out_.insert(out_.end(), framed.begin(), framed.end());
}

bool Connection::Flush() {
  while (out_sent_ < out_.size()) {
    const ssize_t n =
        ::send(fd_, out_.data() + out_sent_, out_.size() - out_sent_, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      return false;
    }
    out_sent_ += static_cast<size_t>(n);
    last_active = Clock::now();
  }
  if (out_sent_ == out_.size()) {
    out_.clear();
    out_sent_ = 0;
  } else if (out_sent_ > (size_t{1} << 20) && out_sent_ > out_.size() / 2) {
    out_.erase(out_.begin(), out_.begin() + static_cast<ptrdiff_t>(out_sent_));
    out_sent_ = 0;
  }
  return true;
}

}  // namespace worlddb::net
