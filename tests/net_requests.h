// Request encoders and response checks shared by the server-side net tests
// and the request fuzzer's seed writer. Test-only; header-only.
#pragma once

#include <flatbuffers/flatbuffers.h>

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "engine/batch_builder.h"
#include "engine/schema_codec.h"
#include "net/protocol_generated.h"

namespace worlddb::net::testing {

namespace fbs = flatbuffers;

template <class Fn>
std::vector<uint8_t> MakeRequest(uint64_t id, Fn body) {
  fbs::FlatBufferBuilder fbb(256);
  auto [type, off] = body(fbb);
  fb::RequestBuilder r(fbb);
  r.add_request_id(id);
  r.add_body_type(type);
  r.add_body(off);
  fbb.Finish(r.Finish());
  return {fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize()};
}

inline std::vector<uint8_t> Hello(uint64_t id, const std::string& token = {},
                                  uint32_t version = 1) {
  return MakeRequest(id, [&](fbs::FlatBufferBuilder& b) {
    auto t = token.empty() ? 0 : b.CreateString(token);
    return std::pair{fb::RequestBody_Hello, fb::CreateHello(b, version, t).Union()};
  });
}

inline std::vector<uint8_t> Ping(uint64_t id) {
  return MakeRequest(id, [&](fbs::FlatBufferBuilder& b) {
    return std::pair{fb::RequestBody_Ping, fb::CreatePing(b).Union()};
  });
}

inline std::vector<uint8_t> Apply(uint64_t id, std::span<const uint8_t> batch, uint8_t ack = 0) {
  return MakeRequest(id, [&](fbs::FlatBufferBuilder& b) {
    b.ForceVectorAlignment(batch.size(), 1, 8);
    auto v = b.CreateVector(batch.data(), batch.size());
    return std::pair{fb::RequestBody_ApplyBatch, fb::CreateApplyBatch(b, v, ack).Union()};
  });
}

inline std::vector<uint8_t> SchemaChange(uint64_t id, std::span<const uint8_t> change) {
  return MakeRequest(id, [&](fbs::FlatBufferBuilder& b) {
    b.ForceVectorAlignment(change.size(), 1, 8);
    auto v = b.CreateVector(change.data(), change.size());
    return std::pair{fb::RequestBody_SchemaChangeRequest,
                     fb::CreateSchemaChangeRequest(b, v).Union()};
  });
}

inline std::vector<uint8_t> Get(uint64_t id, const std::vector<uint64_t>& ids,
                                const std::string& kind = {},
                                const std::vector<std::string>& columns = {}) {
  return MakeRequest(id, [&](fbs::FlatBufferBuilder& b) {
    auto v = b.CreateVector(ids);
    auto k = kind.empty() ? 0 : b.CreateString(kind);
    auto c = columns.empty() ? 0 : b.CreateVectorOfStrings(columns);
    return std::pair{fb::RequestBody_GetByIds, fb::CreateGetByIds(b, v, k, c).Union()};
  });
}

struct QueryOpts {
  std::string kind;
  std::vector<std::string> columns;
  uint64_t limit = 0;
  bool count_only = false;
  bool order_by_distance = false;
  // One predicate at most, enough for tests: column, op, cell.
  std::string where_column;
  fb::CompareOp where_op = fb::CompareOp_Eq;
  Value where_value = int64_t{0};
};

template <class ShapeFn>
fbs::Offset<fb::QueryRequest> QueryBody(fbs::FlatBufferBuilder& b, const QueryOpts& o,
                                        ShapeFn shape) {
  auto [stype, soff] = shape(b);
  auto k = o.kind.empty() ? 0 : b.CreateString(o.kind);
  auto c = o.columns.empty() ? 0 : b.CreateVectorOfStrings(o.columns);
  fbs::Offset<fbs::Vector<fbs::Offset<fb::Predicate>>> w;
  if (!o.where_column.empty()) {
    auto cell = EncodeCell(b, o.where_column, o.where_value);
    auto p = fb::CreatePredicate(b, b.CreateString(o.where_column), o.where_op, cell);
    w = b.CreateVector(&p, 1);
  }
  return fb::CreateQueryRequest(b, stype, soff, k, w, c, o.limit, o.count_only);
}

template <class ShapeFn>
std::vector<uint8_t> Query(uint64_t id, const QueryOpts& o, ShapeFn shape) {
  return MakeRequest(id, [&](fbs::FlatBufferBuilder& b) {
    return std::pair{fb::RequestBody_QueryRequest, QueryBody(b, o, shape).Union()};
  });
}

// A QueryBatch of one query per centre (xs[i], ys[i]); the template is the
// QueryRequest that `shape` and `o` make (its own centre is ignored). With
// `with_template` false the template is left out.
template <class ShapeFn>
std::vector<uint8_t> Batch(uint64_t id, const QueryOpts& o, ShapeFn shape,
                           const std::vector<double>& xs, const std::vector<double>& ys,
                           bool with_template = true) {
  return MakeRequest(id, [&](fbs::FlatBufferBuilder& b) {
    auto x = b.CreateVector(xs);
    auto y = b.CreateVector(ys);
    fbs::Offset<fb::QueryRequest> q;
    if (with_template) q = QueryBody(b, o, shape);
    return std::pair{fb::RequestBody_QueryBatch, fb::CreateQueryBatch(b, q, x, y).Union()};
  });
}

// Shapes for Batch.
inline auto RadiusShape(double r, bool order_by_distance = false) {
  return [=](fbs::FlatBufferBuilder& b) {
    return std::pair{fb::Shape_Radius, fb::CreateRadius(b, 0, 0, r, order_by_distance).Union()};
  };
}
inline auto RectangleShape(double x0, double y0, double x1, double y1) {
  return [=](fbs::FlatBufferBuilder& b) {
    return std::pair{fb::Shape_Rectangle, fb::CreateRectangle(b, x0, y0, x1, y1).Union()};
  };
}
inline auto NearestShape(uint32_t k) {
  return [=](fbs::FlatBufferBuilder& b) {
    return std::pair{fb::Shape_Nearest, fb::CreateNearest(b, 0, 0, k).Union()};
  };
}

inline std::vector<uint8_t> Radius(uint64_t id, double x, double y, double r,
                                   const QueryOpts& o = {}) {
  return Query(id, o, [&](fbs::FlatBufferBuilder& b) {
    return std::pair{fb::Shape_Radius, fb::CreateRadius(b, x, y, r, o.order_by_distance).Union()};
  });
}

inline std::vector<uint8_t> Rectangle(uint64_t id, double x0, double y0, double x1, double y1,
                                      const QueryOpts& o = {}) {
  return Query(id, o, [&](fbs::FlatBufferBuilder& b) {
    return std::pair{fb::Shape_Rectangle, fb::CreateRectangle(b, x0, y0, x1, y1).Union()};
  });
}

inline std::vector<uint8_t> Nearest(uint64_t id, double x, double y, uint32_t k,
                                    const QueryOpts& o = {}) {
  return Query(id, o, [&](fbs::FlatBufferBuilder& b) {
    return std::pair{fb::Shape_Nearest, fb::CreateNearest(b, x, y, k).Union()};
  });
}

inline std::vector<uint8_t> Density(uint64_t id, double x0, double y0, double x1, double y1,
                                    uint32_t nx, uint32_t ny, const std::string& kind = {}) {
  return MakeRequest(id, [&](fbs::FlatBufferBuilder& b) {
    auto k = kind.empty() ? 0 : b.CreateString(kind);
    return std::pair{fb::RequestBody_DensityRequest,
                     fb::CreateDensityRequest(b, x0, y0, x1, y1, nx, ny, k).Union()};
  });
}

inline std::vector<uint8_t> ListKinds(uint64_t id) {
  return MakeRequest(id, [&](fbs::FlatBufferBuilder& b) {
    return std::pair{fb::RequestBody_ListKinds, fb::CreateListKinds(b).Union()};
  });
}

inline std::vector<uint8_t> Stats(uint64_t id) {
  return MakeRequest(id, [&](fbs::FlatBufferBuilder& b) {
    return std::pair{fb::RequestBody_StatsRequest, fb::CreateStatsRequest(b).Union()};
  });
}

inline std::vector<uint8_t> Snapshot(uint64_t id) {
  return MakeRequest(id, [&](fbs::FlatBufferBuilder& b) {
    return std::pair{fb::RequestBody_Snapshot, fb::CreateSnapshot(b).Union()};
  });
}

// The `player` kind used by the tests: hp (i32, default 100), name (string).
inline KindDef PlayerKind() {
  return {"player",
          {{"hp", ColumnType::kI32, int32_t{100}, 0},
           {"name", ColumnType::kString, std::string("anon"), 32}}};
}

// A verified Response in 8-byte aligned storage.
class Reply {
 public:
  explicit Reply(const std::vector<uint8_t>& bytes) : Reply(bytes.data(), bytes.size()) {}
  Reply(const uint8_t* data, size_t size) : storage_((size + 7) / 8) {
    if (size) std::memcpy(storage_.data(), data, size);
    fbs::Verifier v(reinterpret_cast<const uint8_t*>(storage_.data()), size);
    valid_ = size >= 4 && v.VerifyBuffer<fb::Response>(nullptr);
  }
  bool valid() const { return valid_; }
  const fb::Response* operator->() const { return fbs::GetRoot<fb::Response>(storage_.data()); }
  // Ok when not an error.
  fb::ErrorCode code() const {
    auto* e = (*this)->body_as_Error();
    return e ? e->code() : fb::ErrorCode_Ok;
  }
  std::string message() const {
    auto* e = (*this)->body_as_Error();
    return e && e->message() ? e->message()->str() : std::string();
  }

 private:
  std::vector<uint64_t> storage_;
  bool valid_ = false;
};

}  // namespace worlddb::net::testing
