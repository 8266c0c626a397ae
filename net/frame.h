// Framing of the wire protocol (docs/protocol.md "Framing"): every message is
// one frame, a 4-byte little-endian payload length followed by the payload (a
// Request or Response FlatBuffer). Header-only; no allocation but the caller's.
//
// Thread safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "net/net_constants.h"

namespace worlddb::net {

// What the front of a receive buffer holds.
struct FrameView {
  enum class State : uint8_t {
    kNeedMore,  // not a whole frame yet: read more bytes
    kFrame,     // payload is [data + kFrameHeaderBytes, + payload_bytes)
    kTooLarge,  // the announced length exceeds the limit: a broken frame
  };
  State state = State::kNeedMore;
  uint32_t payload_bytes = 0;  // set for kFrame and kTooLarge
  // Bytes the whole frame occupies (header + payload), for kFrame.
  size_t frame_bytes() const { return kFrameHeaderBytes + payload_bytes; }
};

inline uint32_t DecodeFrameLength(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}

inline void EncodeFrameLength(uint32_t n, uint8_t* p) {
  p[0] = static_cast<uint8_t>(n);
  p[1] = static_cast<uint8_t>(n >> 8);
  p[2] = static_cast<uint8_t>(n >> 16);
  p[3] = static_cast<uint8_t>(n >> 24);
}

// Looks at the first `size` bytes of a receive buffer. A zero-length frame is
// a (valid) frame whose payload will fail verification.
inline FrameView PeekFrame(const uint8_t* data, size_t size, size_t max_frame_bytes) {
  FrameView v;
  if (size < kFrameHeaderBytes) return v;
  v.payload_bytes = DecodeFrameLength(data);
  if (v.payload_bytes > max_frame_bytes) {
    v.state = FrameView::State::kTooLarge;
  } else if (size >= v.frame_bytes()) {
    v.state = FrameView::State::kFrame;
  }
  return v;
}

// Appends one frame holding `payload` to `out`. The caller checks the size
// limit; payloads over 4 GiB cannot be framed.
inline void AppendFrame(std::span<const uint8_t> payload, std::vector<uint8_t>* out) {
  const size_t at = out->size();
  out->resize(at + kFrameHeaderBytes + payload.size());
  EncodeFrameLength(static_cast<uint32_t>(payload.size()), out->data() + at);
  if (!payload.empty())
    std::memcpy(out->data() + at + kFrameHeaderBytes, payload.data(), payload.size());
}

}  // namespace worlddb::net
