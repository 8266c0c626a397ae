// RequestMetrics: what the server counts about requests and connections, for
// /metrics (docs/operations.md "Metrics").
//
//   * per request type (RequestType: the protocol's request, queries split by
//     shape): requests answered, errors by protocol error code, and a latency
//     histogram measured in the server from "frame parsed" to "response
//     queued on the connection" (so it includes waiting for the round's
//     RunMany, or for a writer thread and the log, but not the socket);
//   * connections: open, accepted, refused (over --max-connections) and
//     dropped by the server, by reason.
//
// Cost on the request path: one relaxed fetch_add for the request, one for
// an error, and Histogram::Observe (a binary search over 17 bounds and two
// fetch_adds). No lock, no allocation.
//
// Thread safety: every method may be called from any thread; Render() reads
// relaxed atomics while the server goes on (figures may be a few requests
// apart from each other, never torn).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>

#include "net/metrics.h"
#include "net/protocol_generated.h"

namespace worlddb::net {

enum class RequestType : uint8_t {
  kHello,
  kPing,
  kWrite,
  kSchemaChange,
  kSnapshot,
  kGet,
  kRadius,
  kRectangle,
  kNearest,
  kDensity,
  kListKinds,
  kStats,
  kQueryBatch,
  kInvalid,  // failed verification, no body, or a frame over the size limit
};
inline constexpr size_t kRequestTypes = static_cast<size_t>(RequestType::kInvalid) + 1;

// The label value: "hello", "ping", "write", "schema_change", "snapshot",
// "get", "radius", "rectangle", "nearest", "density", "list_kinds", "stats",
// "query_batch", "invalid".
const char* RequestTypeName(RequestType type);
// The type of a verified request (null: kInvalid).
RequestType RequestTypeOf(const fb::Request* request);

// Why the server closed a connection itself.
enum class DropReason : uint8_t {
  kSlowReader,   // unsent responses over --max-output-buffer-bytes
  kBrokenFrame,  // a frame length over --max-frame-bytes
  kIdle,         // --idle-timeout
  kIoError,      // a read or write failed
};
inline constexpr size_t kDropReasons = static_cast<size_t>(DropReason::kIoError) + 1;
// "slow_reader", "broken_frame", "idle", "io_error".
const char* DropReasonName(DropReason reason);

class RequestMetrics {
 public:
  RequestMetrics();
  RequestMetrics(const RequestMetrics&) = delete;
  RequestMetrics& operator=(const RequestMetrics&) = delete;

  // One answered request: `code` is fb::ErrorCode_Ok or the error returned.
  void Observe(RequestType type, fb::ErrorCode code, uint64_t latency_ns);
  // A request over the slow-query threshold (also Observe()d).
  void Slow(RequestType type) { Add(slow_[Index(type)]); }

  void Accepted() { Add(accepted_); }
  void Refused() { Add(refused_); }
  void Dropped(DropReason reason) { Add(dropped_[static_cast<size_t>(reason)]); }
  void SetOpen(uint64_t open) { open_.store(open, std::memory_order_relaxed); }

  uint64_t requests(RequestType type) const {
    return requests_[Index(type)].load(std::memory_order_relaxed);
  }
  uint64_t errors(RequestType type) const;  // all codes
  uint64_t dropped(DropReason reason) const {
    return dropped_[static_cast<size_t>(reason)].load(std::memory_order_relaxed);
  }
  uint64_t refused() const { return refused_.load(std::memory_order_relaxed); }
  HistogramSnapshot latency(RequestType type) const { return latency_[Index(type)]->Snapshot(); }

  // Appends the worlddb_requests_total, worlddb_request_errors_total,
  // worlddb_request_duration_seconds, worlddb_slow_requests_total and
  // worlddb_connections_* families.
  void Render(PrometheusWriter* w) const;

 private:
  // Error codes 1..7 (the engine's), 100..105 (the protocol's), and any other.
  static constexpr size_t kCodeSlots = 15;
  static size_t CodeSlot(fb::ErrorCode code);
  static size_t Index(RequestType t) { return static_cast<size_t>(t); }
  static void Add(std::atomic<uint64_t>& c) { c.fetch_add(1, std::memory_order_relaxed); }

  std::array<std::atomic<uint64_t>, kRequestTypes> requests_{};
  std::array<std::atomic<uint64_t>, kRequestTypes> slow_{};
  std::array<std::array<std::atomic<uint64_t>, kCodeSlots>, kRequestTypes> errors_{};
  std::array<std::unique_ptr<Histogram>, kRequestTypes> latency_;
  std::atomic<uint64_t> accepted_{0}, refused_{0}, open_{0};
  std::array<std::atomic<uint64_t>, kDropReasons> dropped_{};
};

}  // namespace worlddb::net
