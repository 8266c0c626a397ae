#include "net/request_metrics.h"

#include <string>

namespace worlddb::net {

const char* RequestTypeName(RequestType type) {
  switch (type) {
    case RequestType::kHello:
      return "hello";
    case RequestType::kPing:
      return "ping";
    case RequestType::kWrite:
      return "write";
    case RequestType::kSchemaChange:
      return "schema_change";
    case RequestType::kSnapshot:
      return "snapshot";
    case RequestType::kGet:
      return "get";
    case RequestType::kRadius:
      return "radius";
    case RequestType::kRectangle:
      return "rectangle";
    case RequestType::kNearest:
      return "nearest";
    case RequestType::kDensity:
      return "density";
    case RequestType::kListKinds:
      return "list_kinds";
    case RequestType::kStats:
      return "stats";
    case RequestType::kQueryBatch:
      return "query_batch";
    case RequestType::kInvalid:
      break;
  }
  return "invalid";
}

RequestType RequestTypeOf(const fb::Request* request) {
  if (!request) return RequestType::kInvalid;
  switch (request->body_type()) {
    case fb::RequestBody_Hello:
      return RequestType::kHello;
    case fb::RequestBody_Ping:
      return RequestType::kPing;
    case fb::RequestBody_ApplyBatch:
      return RequestType::kWrite;
    case fb::RequestBody_SchemaChangeRequest:
      return RequestType::kSchemaChange;
    case fb::RequestBody_Snapshot:
      return RequestType::kSnapshot;
    case fb::RequestBody_GetByIds:
      return RequestType::kGet;
    case fb::RequestBody_QueryRequest: {
      const fb::QueryRequest* q = request->body_as_QueryRequest();
      switch (q ? q->shape_type() : fb::Shape_NONE) {
        case fb::Shape_Radius:
          return RequestType::kRadius;
        case fb::Shape_Rectangle:
          return RequestType::kRectangle;
        case fb::Shape_Nearest:
          return RequestType::kNearest;
        default:
          return RequestType::kInvalid;
      }
    }
    case fb::RequestBody_DensityRequest:
      return RequestType::kDensity;
    case fb::RequestBody_QueryBatch:
      return RequestType::kQueryBatch;
    case fb::RequestBody_ListKinds:
      return RequestType::kListKinds;
    case fb::RequestBody_StatsRequest:
      return RequestType::kStats;
    default:
      return RequestType::kInvalid;
  }
}

const char* DropReasonName(DropReason reason) {
  switch (reason) {
    case DropReason::kSlowReader:
      return "slow_reader";
    case DropReason::kBrokenFrame:
      return "broken_frame";
    case DropReason::kIdle:
      return "idle";
    case DropReason::kIoError:
      break;
  }
  return "io_error";
}

RequestMetrics::RequestMetrics() {
  for (auto& h : latency_) h = std::make_unique<Histogram>(Histogram::LatencyBoundsNs());
}

size_t RequestMetrics::CodeSlot(fb::ErrorCode code) {
  const int c = static_cast<int>(code);
  if (c >= 1 && c <= 7) return static_cast<size_t>(c);
  if (c >= 100 && c <= 105) return static_cast<size_t>(c - 100 + 8);
  return 0;  // unknown (not Ok: Ok is never counted)
}

void RequestMetrics::Observe(RequestType type, fb::ErrorCode code, uint64_t latency_ns) {
  const size_t t = Index(type);
  Add(requests_[t]);
  if (code != fb::ErrorCode_Ok) Add(errors_[t][CodeSlot(code)]);
  latency_[t]->Observe(latency_ns);
}

uint64_t RequestMetrics::errors(RequestType type) const {
  uint64_t n = 0;
  for (const auto& c : errors_[Index(type)]) n += c.load(std::memory_order_relaxed);
  return n;
}

void RequestMetrics::Render(PrometheusWriter* w) const {
  using T = PrometheusWriter::Type;
  w->Family("worlddb_requests_total", T::kCounter,
            "Requests answered, by request type (queries by shape).");
  for (size_t t = 0; t < kRequestTypes; ++t) {
    w->Sample("worlddb_requests_total", {{"type", RequestTypeName(static_cast<RequestType>(t))}},
              static_cast<double>(requests_[t].load(std::memory_order_relaxed)));
  }
  w->Family("worlddb_request_errors_total", T::kCounter,
            "Requests answered with an error, by request type and protocol error code (a series "
            "appears with its first error).");
  for (size_t t = 0; t < kRequestTypes; ++t) {
    for (size_t slot = 0; slot < kCodeSlots; ++slot) {
      const uint64_t n = errors_[t][slot].load(std::memory_order_relaxed);
      if (n == 0) continue;
      const int code = slot == 0 ? -1 : slot <= 7 ? static_cast<int>(slot) : int(slot) - 8 + 100;
      const char* name = code < 0 ? "" : fb::EnumNameErrorCode(static_cast<fb::ErrorCode>(code));
      w->Sample("worlddb_request_errors_total",
                {{"type", RequestTypeName(static_cast<RequestType>(t))},
                 {"code", name && *name ? name : "unknown"}},
                static_cast<double>(n));
    }
  }
  w->Family("worlddb_request_duration_seconds", T::kHistogram,
            "Request latency in the server, from the frame parsed to the response queued on "
            "its connection, by request type.");
  for (size_t t = 0; t < kRequestTypes; ++t) {
    w->Histogram("worlddb_request_duration_seconds",
                 {{"type", RequestTypeName(static_cast<RequestType>(t))}}, latency_[t]->Snapshot(),
                 1e-9);
  }
  w->Family("worlddb_slow_requests_total", T::kCounter,
            "Requests slower than --slow-query-ms (each logged at warn level), by request type.");
  for (size_t t = 0; t < kRequestTypes; ++t) {
    const uint64_t n = slow_[t].load(std::memory_order_relaxed);
    if (n == 0) continue;
    w->Sample("worlddb_slow_requests_total",
              {{"type", RequestTypeName(static_cast<RequestType>(t))}}, static_cast<double>(n));
  }
  w->Family("worlddb_connections_open", T::kGauge, "Client connections open.");
  w->Sample("worlddb_connections_open", static_cast<double>(open_.load(std::memory_order_relaxed)));
  w->Family("worlddb_connections_accepted_total", T::kCounter, "Client connections accepted.");
  w->Sample("worlddb_connections_accepted_total",
            static_cast<double>(accepted_.load(std::memory_order_relaxed)));
  w->Family("worlddb_connections_refused_total", T::kCounter,
            "Connections refused because --max-connections were open.");
  w->Sample("worlddb_connections_refused_total",
            static_cast<double>(refused_.load(std::memory_order_relaxed)));
  w->Family("worlddb_connections_dropped_total", T::kCounter,
            "Connections the server closed, by reason (slow_reader, broken_frame, idle, "
            "io_error).");
  for (size_t r = 0; r < kDropReasons; ++r) {
    w->Sample("worlddb_connections_dropped_total",
              {{"reason", DropReasonName(static_cast<DropReason>(r))}},
              static_cast<double>(dropped_[r].load(std::memory_order_relaxed)));
  }
}

}  // namespace worlddb::net
