#include "net/dispatch.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <variant>

#include "engine/batch_builder.h"

namespace worlddb::net {

namespace fbs = flatbuffers;
using EngineCell = ::worlddb::fb::Cell;

const uint8_t* AlignPayload(const uint8_t* data, size_t size, std::vector<uint64_t>* storage) {
  if (reinterpret_cast<uintptr_t>(data) % alignof(uint64_t) == 0) return data;
  storage->resize((size + sizeof(uint64_t) - 1) / sizeof(uint64_t));
  if (size) std::memcpy(storage->data(), data, size);
  return reinterpret_cast<const uint8_t*>(storage->data());
}

fb::ErrorCode ErrorCodeOf(StatusCode code) {
  // 1..7 mirror StatusCode one-to-one (net/protocol.fbs).
  static_assert(static_cast<int>(StatusCode::kUnavailable) == fb::ErrorCode_Unavailable);
  static_assert(static_cast<int>(StatusCode::kInvalidArgument) == fb::ErrorCode_InvalidArgument);
  return static_cast<fb::ErrorCode>(static_cast<int>(code));
}

namespace {

// Whether a vector of 8-byte scalars cannot be read in place. An empty one
// can (nothing is read); builders do not align empty vectors' data.
template <typename T>
bool Misaligned(const fbs::Vector<T>* v) {
  return v && v->size() > 0 && reinterpret_cast<uintptr_t>(v->Data()) % alignof(uint64_t) != 0;
}

// The role a request needs. Hello needs none.
Role RequiredRole(fb::RequestBody type) {
  switch (type) {
    case fb::RequestBody_ApplyBatch:
      return Role::kWrite;
    case fb::RequestBody_SchemaChangeRequest:
    case fb::RequestBody_Snapshot:
      return Role::kAdmin;
    case fb::RequestBody_Hello:
      return Role::kNone;
    default:
      return Role::kRead;
  }
}

const char* BodyName(fb::RequestBody type) {
  const char* n = fb::EnumNameRequestBody(type);
  return n && *n ? n : "unknown";
}

Result<Value> DecodeCell(const EngineCell& c, const std::string& where) {
  switch (c.type()) {
    case ::worlddb::fb::ColumnType_Bool:
      if (c.i() != 0 && c.i() != 1) {
        return Status::InvalidArgument(where + ": bool value must be 0 or 1, got " +
                                       std::to_string(c.i()));
      }
      return Value(c.i() == 1);
    case ::worlddb::fb::ColumnType_I32:
      if (c.i() < std::numeric_limits<int32_t>::min() ||
          c.i() > std::numeric_limits<int32_t>::max()) {
        return Status::InvalidArgument(where + ": i32 value " + std::to_string(c.i()) +
                                       " out of range");
      }
      return Value(static_cast<int32_t>(c.i()));
    case ::worlddb::fb::ColumnType_I64:
      return Value(static_cast<int64_t>(c.i()));
    case ::worlddb::fb::ColumnType_F32:
      if (std::isnan(c.f()) || std::fabs(c.f()) > std::numeric_limits<float>::max()) {
        return Status::InvalidArgument(where + ": f32 value is NaN or out of range");
      }
      return Value(static_cast<float>(c.f()));
    case ::worlddb::fb::ColumnType_F64:
      if (std::isnan(c.f())) return Status::InvalidArgument(where + ": f64 value is NaN");
      return Value(c.f());
    case ::worlddb::fb::ColumnType_String:
      return Value(c.s() ? c.s()->str() : std::string());
  }
  return Status::InvalidArgument(where + ": unknown cell type " +
                                 std::to_string(static_cast<int>(c.type())));
}

Status DecodePredicates(const fbs::Vector<fbs::Offset<fb::Predicate>>* in,
                        std::vector<Predicate>* out) {
  out->clear();
  if (!in) return Status::Ok();
  out->resize(in->size());
  for (uint32_t i = 0; i < in->size(); ++i) {
    const fb::Predicate* p = in->Get(i);
    const std::string where = "where[" + std::to_string(i) + "]";
    if (!p->column()) return Status::InvalidArgument(where + ": no column named");
    if (!p->value()) return Status::InvalidArgument(where + ": no value");
    if (p->op() > fb::CompareOp_Ge) {
      return Status::InvalidArgument(where + ": unknown operator " +
                                     std::to_string(static_cast<int>(p->op())));
    }
    auto v = DecodeCell(*p->value(), where + " (" + p->column()->str() + ")");
    if (!v.ok()) return v.status();
    (*out)[i].column.assign(p->column()->c_str(), p->column()->size());
    (*out)[i].op = static_cast<CompareOp>(p->op());
    (*out)[i].value = std::move(v.value());
  }
  return Status::Ok();
}

void DecodeStrings(const fbs::Vector<fbs::Offset<fbs::String>>* in, std::vector<std::string>* out) {
  if (!in) {
    out->clear();
    return;
  }
  out->resize(in->size());
  for (uint32_t i = 0; i < in->size(); ++i)
    (*out)[i].assign(in->Get(i)->c_str(), in->Get(i)->size());
}

void Finish(uint64_t request_id, fb::ResponseBody type, fbs::Offset<void> body,
            fbs::FlatBufferBuilder* fbb) {
  fb::ResponseBuilder r(*fbb);
  r.add_request_id(request_id);
  r.add_body_type(type);
  r.add_body(body);
  fbb->Finish(r.Finish());
}

void EncodeStatus(uint64_t request_id, const Status& s, fbs::FlatBufferBuilder* fbb) {
  Dispatcher::EncodeError(request_id, ErrorCodeOf(s.code()), s.message(), fbb);
}

// The values `get(results[i])` of every result, concatenated, in order.
template <typename T, typename Get>
fbs::Offset<fbs::Vector<T>> Concat(const QueryResult* results, size_t n, Get get,
                                   fbs::FlatBufferBuilder* fbb) {
  size_t total = 0;
  for (size_t i = 0; i < n; ++i) total += get(results[i]).size();
  T* out = nullptr;
  auto off = fbb->CreateUninitializedVector(total, &out);
  for (size_t i = 0; i < n; ++i) {
    const auto& v = get(results[i]);
    if (!v.empty()) std::memcpy(out, v.data(), v.size() * sizeof(T));
    out += v.size();
  }
  return off;
}

// Projected column c (variant alternative I) of every result, concatenated.
template <size_t I>
auto ConcatColumn(const QueryResult* results, size_t n, size_t c, fbs::FlatBufferBuilder* fbb) {
  using V = std::variant_alternative_t<I, ColumnData>;
  return Concat<typename V::value_type>(
      results, n, [c](const QueryResult& r) -> const V& { return std::get<I>(r.columns[c].data); },
      fbb);
}

// One QueryReply holding the rows of results[0..n) in order (one result for
// a query or get by ids, a batch's results for a QueryBatch); their columns
// must match results[0]'s.
fbs::Offset<fb::QueryReply> EncodeRows(const QueryResult* results, size_t n, bool with_distance,
                                       uint64_t count, bool truncated,
                                       const std::vector<uint64_t>* missing,
                                       fbs::FlatBufferBuilder* fbb) {
  const size_t ncols = n > 0 ? results[0].columns.size() : 0;
  std::vector<fbs::Offset<fb::ResultColumn>> cols;
  cols.reserve(ncols);
  std::vector<fbs::Offset<fbs::String>> strings;
  for (size_t c = 0; c < ncols; ++c) {
    const ResultColumn& first = results[0].columns[c];
    auto name = fbb->CreateString(first.name);
    fbs::Offset<fbs::Vector<uint8_t>> b;
    fbs::Offset<fbs::Vector<int32_t>> i32;
    fbs::Offset<fbs::Vector<int64_t>> i64;
    fbs::Offset<fbs::Vector<float>> f32;
    fbs::Offset<fbs::Vector<double>> f64;
    fbs::Offset<fbs::Vector<fbs::Offset<fbs::String>>> s;
    switch (first.data.index()) {
      case 0:
        b = ConcatColumn<0>(results, n, c, fbb);
        break;
      case 1:
        i32 = ConcatColumn<1>(results, n, c, fbb);
        break;
      case 2:
        i64 = ConcatColumn<2>(results, n, c, fbb);
        break;
      case 3:
        f32 = ConcatColumn<3>(results, n, c, fbb);
        break;
      case 4:
        f64 = ConcatColumn<4>(results, n, c, fbb);
        break;
      default:
        strings.clear();
        for (size_t i = 0; i < n; ++i) {
          for (const std::string& v : std::get<5>(results[i].columns[c].data))
            strings.push_back(fbb->CreateString(v));
        }
        s = fbb->CreateVector(strings);
        break;
    }
    cols.push_back(fb::CreateResultColumn(
        *fbb, name, static_cast<::worlddb::fb::ColumnType>(first.type), b, i32, i64, f32, f64, s));
  }
  auto columns = cols.empty() ? 0 : fbb->CreateVector(cols);
  auto ids = Concat<uint64_t>(
      results, n, [](const QueryResult& r) -> auto& { return r.ids; }, fbb);
  auto kinds = Concat<uint16_t>(
      results, n, [](const QueryResult& r) -> auto& { return r.kinds; }, fbb);
  auto x = Concat<double>(
      results, n, [](const QueryResult& r) -> auto& { return r.x; }, fbb);
  auto y = Concat<double>(
      results, n, [](const QueryResult& r) -> auto& { return r.y; }, fbb);
  auto z = Concat<double>(
      results, n, [](const QueryResult& r) -> auto& { return r.z; }, fbb);
  fbs::Offset<fbs::Vector<double>> distance;
  if (with_distance) {
    distance = Concat<double>(
        results, n, [](const QueryResult& r) -> auto& { return r.distance; }, fbb);
  }
  fbs::Offset<fbs::Vector<uint64_t>> miss;
  if (missing) miss = fbb->CreateVector(*missing);
  return fb::CreateQueryReply(*fbb, count, truncated, ids, kinds, x, y, z, distance, columns, miss);
}

fbs::Offset<fb::QueryReply> EncodeResult(const QueryResult& r, bool with_distance,
                                         const std::vector<uint64_t>* missing,
                                         fbs::FlatBufferBuilder* fbb) {
  return EncodeRows(&r, 1, with_distance, r.count, r.truncated, missing, fbb);
}

// A query's decoding error: the row cap (ResourceExhausted) is TooManyRows.
void EncodeQueryError(uint64_t request_id, const Status& s, fbs::FlatBufferBuilder* fbb) {
  Dispatcher::EncodeError(request_id,
                          s.code() == StatusCode::kResourceExhausted ? fb::ErrorCode_TooManyRows
                                                                     : ErrorCodeOf(s.code()),
                          s.message(), fbb);
}

std::string TooManyRows(uint64_t rows, uint64_t max) {
  return "the result has more than " + std::to_string(max) + " rows (" + std::to_string(rows) +
         " or more; the server's --max-result-rows); ask for a limit or a smaller area";
}

}  // namespace

Dispatcher::Dispatcher(Engine* engine, DispatchOptions options)
    : engine_(engine), options_(std::move(options)) {}

void Dispatcher::EncodeError(uint64_t request_id, fb::ErrorCode code, const std::string& message,
                             fbs::FlatBufferBuilder* fbb) {
  fbb->Clear();
  auto msg = fbb->CreateString(message);
  auto err = fb::CreateError(*fbb, code, msg);
  Finish(request_id, fb::ResponseBody_Error, err.Union(), fbb);
}

Status Dispatcher::DecodeQuery(const fb::QueryRequest& r, Query* q) const {
  const uint64_t max = options_.max_result_rows;
  // A union's type may be set with its table absent; the verifier allows it.
  if (r.shape_type() != fb::Shape_NONE && r.shape() == nullptr) {
    return Status::InvalidArgument("query request: the shape type is " +
                                   std::string(fb::EnumNameShape(r.shape_type())) +
                                   " but the shape table is missing");
  }
  switch (r.shape_type()) {
    case fb::Shape_Radius: {
      const fb::Radius* c = r.shape_as_Radius();
      q->shape = Shape::kCircle;
      q->x = c->x();
      q->y = c->y();
      q->radius = c->radius();
      q->order_by_distance = c->order_by_distance();
      q->k = 0;
      break;
    }
    case fb::Shape_Rectangle: {
      const fb::Rectangle* c = r.shape_as_Rectangle();
      q->shape = Shape::kRect;
      q->rect = Rect{c->min_x(), c->min_y(), c->max_x(), c->max_y()};
      q->order_by_distance = false;
      q->k = 0;
      break;
    }
    case fb::Shape_Nearest: {
      const fb::Nearest* c = r.shape_as_Nearest();
      q->shape = Shape::kNearest;
      q->x = c->x();
      q->y = c->y();
      q->k = c->k();
      q->order_by_distance = false;
      const uint64_t rows = r.limit() && r.limit() < c->k() ? r.limit() : c->k();
      if (!r.count_only() && rows > max) {
        return Status::ResourceExhausted(TooManyRows(rows, max));
      }
      break;
    }
    default:
      return Status::InvalidArgument(
          "query request without a shape (radius, rectangle or nearest)");
  }
  if (r.kind()) {
    q->kind.assign(r.kind()->c_str(), r.kind()->size());
  } else {
    q->kind.clear();
  }
  WORLDDB_RETURN_IF_ERROR(DecodePredicates(r.where(), &q->where));
  DecodeStrings(r.columns(), &q->columns);
  q->count_only = r.count_only();
  // A limit the client asked for truncates; the server's own row cap is an
  // error, so ask the engine for one row more than the cap to detect it.
  q->limit = r.count_only() ? 0 : (r.limit() && r.limit() <= max ? r.limit() : max + 1);
  return Status::Ok();
}

Status Dispatcher::CheckBatch(const fb::QueryBatch& b, const Query& tmpl) const {
  const size_t nx = b.x() ? b.x()->size() : 0, ny = b.y() ? b.y()->size() : 0;
  if (nx != ny) {
    return Status::InvalidArgument("query batch: x has " + std::to_string(nx) + " centres, y has " +
                                   std::to_string(ny) + " (one of each per query)");
  }
  if (nx > kMaxBatchQueries) {
    return Status::InvalidArgument("query batch of " + std::to_string(nx) +
                                   " queries exceeds the limit of " +
                                   std::to_string(kMaxBatchQueries) + "; send several batches");
  }
  for (uint32_t i = 0; i < nx; ++i) {
    if (!std::isfinite(b.x()->Get(i)) || !std::isfinite(b.y()->Get(i))) {
      return Status::InvalidArgument("query batch: centre " + std::to_string(i) + " is not finite");
    }
  }
  // k nearest return k rows each: refuse a batch that must exceed the cap.
  if (tmpl.shape == Shape::kNearest && !tmpl.count_only) {
    const uint64_t per = std::min<uint64_t>(tmpl.k, tmpl.limit ? tmpl.limit : tmpl.k);
    if (per * nx > options_.max_result_rows) {
      return Status::ResourceExhausted(TooManyRows(per * nx, options_.max_result_rows) +
                                       " (the batch's rows together)");
    }
  }
  return Status::Ok();
}

size_t Dispatcher::BatchSize(const fb::Request& request) {
  const fb::QueryBatch* b = request.body_as_QueryBatch();
  return b && b->x() ? b->x()->size() : 0;
}

void Dispatcher::PlaceQuery(const fb::Request& request, size_t i, Query* q) {
  const fb::QueryBatch* b = request.body_as_QueryBatch();
  const double x = b->x()->Get(static_cast<uint32_t>(i)), y = b->y()->Get(static_cast<uint32_t>(i));
  if (q->shape == Shape::kRect) {
    // Half sizes of the template's rectangle; a non-finite result (a huge
    // rectangle moved far) is refused by the engine's check, per query.
    const double hw = (q->rect.max_x - q->rect.min_x) / 2, hh = (q->rect.max_y - q->rect.min_y) / 2;
    q->rect = Rect{x - hw, y - hh, x + hw, y + hh};
  } else {
    q->x = x;
    q->y = y;
  }
}

Dispatcher::Next Dispatcher::Begin(const uint8_t* data, size_t size, Session* session,
                                   fbs::FlatBufferBuilder* fbb, Query* query, uint64_t* request_id,
                                   const fb::Request** verified) const {
  *request_id = 0;
  if (verified) *verified = nullptr;
  fbs::Verifier verifier(data, size, options_.verifier_max_depth, options_.verifier_max_tables);
  if (size < sizeof(fbs::uoffset_t) || !fb::VerifyRequestBuffer(verifier)) {
    EncodeError(0, fb::ErrorCode_BadMessage,
                "a request of " + std::to_string(size) +
                    " bytes is not a valid Request FlatBuffer (net/protocol.fbs), or exceeds the "
                    "verifier's depth or table limits",
                fbb);
    return Next::kAnswered;
  }
  const fb::Request* req = fb::GetRequest(data);
  if (verified) *verified = req;
  *request_id = req->request_id();
  const fb::RequestBody type = req->body_type();
  if (type == fb::RequestBody_NONE || req->body() == nullptr) {
    EncodeError(*request_id, fb::ErrorCode_BadMessage, "request without a body", fbb);
    return Next::kAnswered;
  }
  if (type > fb::RequestBody_MAX) {
    EncodeError(*request_id, fb::ErrorCode_BadMessage,
                "unknown request type " + std::to_string(static_cast<int>(type)) +
                    " (a newer protocol than this server's?)",
                fbb);
    return Next::kAnswered;
  }
  // Auth: with tokens configured, only hello passes until one succeeded.
  const Role need = RequiredRole(type);
  const Role have = options_.tokens ? session->role : Role::kAdmin;
  if (need != Role::kNone && have == Role::kNone) {
    EncodeError(*request_id, fb::ErrorCode_Unauthenticated,
                std::string(BodyName(type)) +
                    " refused: this server requires a hello with a valid token first",
                fbb);
    return Next::kAnswered;
  }
  if (have < need) {
    EncodeError(*request_id, fb::ErrorCode_PermissionDenied,
                std::string(BodyName(type)) + " needs the " + RoleName(need) +
                    " role; this connection has " + RoleName(have),
                fbb);
    return Next::kAnswered;
  }
  switch (type) {
    case fb::RequestBody_QueryRequest: {
      Status s = DecodeQuery(*req->body_as_QueryRequest(), query);
      if (!s.ok()) {
        EncodeQueryError(*request_id, s, fbb);
        return Next::kAnswered;
      }
      return Next::kQuery;
    }
    case fb::RequestBody_QueryBatch: {
      const fb::QueryBatch* b = req->body_as_QueryBatch();
      if (Misaligned(b->x()) || Misaligned(b->y())) {
        EncodeError(*request_id, fb::ErrorCode_BadMessage,
                    "query batch: the x or y vector is not 8-byte aligned (malformed FlatBuffer)",
                    fbb);
        return Next::kAnswered;
      }
      Status s = b->query() ? DecodeQuery(*b->query(), query)
                            : Status::InvalidArgument("query batch without a template query");
      if (s.ok()) s = CheckBatch(*b, *query);
      if (!s.ok()) {
        EncodeQueryError(*request_id, s, fbb);
        return Next::kAnswered;
      }
      if (BatchSize(*req) == 0) {
        FinishBatch(*request_id, nullptr, nullptr, nullptr, 0, fbb);
        return Next::kAnswered;
      }
      return Next::kBatch;
    }
    case fb::RequestBody_ApplyBatch: {
      const fb::ApplyBatch* a = req->body_as_ApplyBatch();
      if (!a->batch()) {
        EncodeError(*request_id, fb::ErrorCode_InvalidArgument,
                    "write batch request without a batch", fbb);
        return Next::kAnswered;
      }
      if (a->ack() > static_cast<uint8_t>(Ack::kQueued)) {
        EncodeError(*request_id, fb::ErrorCode_InvalidArgument,
                    "ack " + std::to_string(a->ack()) +
                        " is not one of 0 (durability mode), 1 (written), 2 (queued)",
                    fbb);
        return Next::kAnswered;
      }
      return Next::kBlocking;
    }
    case fb::RequestBody_SchemaChangeRequest:
      if (!req->body_as_SchemaChangeRequest()->change()) {
        EncodeError(*request_id, fb::ErrorCode_InvalidArgument,
                    "schema change request without a change", fbb);
        return Next::kAnswered;
      }
      return Next::kBlocking;
    case fb::RequestBody_Snapshot:
      if (!options_.snapshot) {
        EncodeError(*request_id, fb::ErrorCode_NotYetAvailable,
                    "snapshots are not available on this server (no write-ahead log)", fbb);
        return Next::kAnswered;
      }
      return Next::kBlocking;
    default:
      Inline(*req, session, fbb);
      return Next::kAnswered;
  }
}

void Dispatcher::Inline(const fb::Request& req, Session* session,
                        fbs::FlatBufferBuilder* fbb) const {
  const uint64_t id = req.request_id();
  fbb->Clear();
  switch (req.body_type()) {
    case fb::RequestBody_Hello: {
      const fb::Hello* h = req.body_as_Hello();
      if (h->protocol_version() != kProtocolVersion) {
        EncodeError(id, fb::ErrorCode_UnsupportedVersion,
                    "this server speaks protocol version " + std::to_string(kProtocolVersion) +
                        ", the client asked for " + std::to_string(h->protocol_version()),
                    fbb);
        return;
      }
      Role role = Role::kAdmin;
      if (options_.tokens) {
        std::string_view token = h->token() ? h->token()->string_view() : std::string_view();
        auto r = options_.tokens->Lookup(token);
        if (!r) {
          session->role = Role::kNone;
          EncodeError(
              id, fb::ErrorCode_Unauthenticated,
              token.empty() ? "this server requires a token in hello" : "the token is not valid",
              fbb);
          return;
        }
        role = *r;
      }
      session->role = role;
      auto name = fbb->CreateString(RoleName(role));
      auto reply = fb::CreateHelloReply(*fbb, kProtocolVersion, name, options_.max_frame_bytes,
                                        options_.max_result_rows);
      Finish(id, fb::ResponseBody_HelloReply, reply.Union(), fbb);
      return;
    }
    case fb::RequestBody_Ping:
      Finish(id, fb::ResponseBody_Pong, fb::CreatePong(*fbb).Union(), fbb);
      return;
    case fb::RequestBody_GetByIds: {
      const fb::GetByIds* g = req.body_as_GetByIds();
      if (Misaligned(g->ids())) {
        EncodeError(id, fb::ErrorCode_BadMessage,
                    "get by ids: the ids vector is not 8-byte aligned (malformed FlatBuffer)", fbb);
        return;
      }
      const size_t n = g->ids() ? g->ids()->size() : 0;
      if (n > options_.max_result_rows) {
        EncodeError(id, fb::ErrorCode_TooManyRows,
                    "get by ids asks for " + std::to_string(n) + " ids, more than the server's " +
                        std::to_string(options_.max_result_rows) + " (--max-result-rows)",
                    fbb);
        return;
      }
      std::vector<uint64_t> ids(n);
      for (size_t i = 0; i < n; ++i) ids[i] = g->ids()->Get(static_cast<uint32_t>(i));
      std::vector<std::string> columns;
      DecodeStrings(g->columns(), &columns);
      const std::string kind = g->kind() ? g->kind()->str() : std::string();
      QueryResult result;
      std::vector<uint64_t> missing;
      Status s = engine_->GetMany(ids, kind, columns, &result, &missing);
      if (!s.ok()) {
        EncodeStatus(id, s, fbb);
        return;
      }
      auto reply = EncodeResult(result, false, &missing, fbb);
      Finish(id, fb::ResponseBody_QueryReply, reply.Union(), fbb);
      return;
    }
    case fb::RequestBody_DensityRequest: {
      const fb::DensityRequest* d = req.body_as_DensityRequest();
      DensityQuery q;
      q.rect = Rect{d->min_x(), d->min_y(), d->max_x(), d->max_y()};
      q.nx = d->nx();
      q.ny = d->ny();
      if (d->kind()) q.kind = d->kind()->str();
      Status s = DecodePredicates(d->where(), &q.where);
      DensityResult r;
      if (s.ok()) s = engine_->Density(q, &r);
      if (!s.ok()) {
        EncodeStatus(id, s, fbb);
        return;
      }
      auto counts = fbb->CreateVector(r.counts);
      auto reply = fb::CreateDensityReply(*fbb, r.nx, r.ny, counts, r.total);
      Finish(id, fb::ResponseBody_DensityReply, reply.Union(), fbb);
      return;
    }
    case fb::RequestBody_ListKinds: {
      std::shared_ptr<const Schema> schema = engine_->schema();
      std::vector<fbs::Offset<fb::KindInfo>> kinds;
      for (size_t k = 0; k < schema->kinds().size(); ++k) {
        const KindDef& def = schema->kinds()[k];
        std::vector<fbs::Offset<::worlddb::fb::ColumnDef>> cols;
        for (const ColumnDef& c : def.columns) {
          auto cname = fbb->CreateString(c.name);
          auto dflt = EncodeCell(*fbb, c.name, c.default_value);
          cols.push_back(::worlddb::fb::CreateColumnDef(
              *fbb, cname, static_cast<::worlddb::fb::ColumnType>(c.type), dflt, c.max_length));
        }
        auto name = fbb->CreateString(def.name);
        auto cv = fbb->CreateVector(cols);
        kinds.push_back(fb::CreateKindInfo(*fbb, static_cast<uint16_t>(k), name, cv));
      }
      auto kv = fbb->CreateVector(kinds);
      auto reply = fb::CreateKindsReply(*fbb, schema->version(), kv);
      Finish(id, fb::ResponseBody_KindsReply, reply.Union(), fbb);
      return;
    }
    case fb::RequestBody_StatsRequest: {
      Engine::Stats st = engine_->GetStats();
      std::vector<fbs::Offset<fb::KindCount>> per;
      for (const auto& [name, n] : st.entities_per_kind) {
        per.push_back(fb::CreateKindCount(*fbb, fbb->CreateString(name), n));
      }
      auto pv = fbb->CreateVector(per);
      Status w = options_.writable ? options_.writable() : Status::Ok();
      auto reason = w.ok() ? 0 : fbb->CreateString(w.ToString());
      const uint64_t conns = options_.connections ? options_.connections() : 0;
      const DurabilityState d =
          options_.durability_state ? options_.durability_state() : DurabilityState{};
      auto durability = fbb->CreateString(d.durability);
      auto snapshot_error = d.snapshot_error.empty() ? 0 : fbb->CreateString(d.snapshot_error);
      std::vector<fbs::Offset<fb::RequestTypeStats>> per_type;
      if (const RequestMetrics* m = options_.request_metrics) {
        for (size_t t = 0; t < kRequestTypes; ++t) {
          const auto type = static_cast<RequestType>(t);
          if (m->requests(type) == 0) continue;
          const HistogramSnapshot h = m->latency(type);
          per_type.push_back(fb::CreateRequestTypeStats(
              *fbb, fbb->CreateString(RequestTypeName(type)), m->requests(type), m->errors(type),
              fbb->CreateVector(h.bounds), fbb->CreateVector(h.counts)));
        }
      }
      auto requests = per_type.empty() ? 0 : fbb->CreateVector(per_type);
      const auto uptime = std::chrono::steady_clock::now() - started_;
      fb::StatsReplyBuilder b(*fbb);
      b.add_entities(st.entities);
      b.add_per_kind(pv);
      b.add_schema_version(st.schema_version);
      b.add_last_ticket(st.last_ticket);
      b.add_batches_applied(st.batches_applied);
      b.add_batches_refused(st.batches_refused);
      b.add_operations_applied(st.operations_applied);
      b.add_queries(st.queries);
      b.add_connections(conns);
      b.add_writable(w.ok());
      if (!w.ok()) b.add_not_writable_reason(reason);
      b.add_memory_bytes(st.memory.total());
      b.add_uptime_ms(static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::milliseconds>(uptime).count()));
      b.add_durability(durability);
      b.add_log_last_lsn(d.log_last_lsn);
      b.add_log_durable_lsn(d.log_durable_lsn);
      b.add_log_bytes(d.log_bytes);
      b.add_snapshot_lsn(d.snapshot_lsn);
      b.add_snapshot_time_us(d.snapshot_time_us);
      b.add_snapshot_bytes(d.snapshot_bytes);
      if (!d.snapshot_error.empty()) b.add_snapshot_error(snapshot_error);
      if (!per_type.empty()) b.add_requests(requests);
      Finish(id, fb::ResponseBody_StatsReply, b.Finish().Union(), fbb);
      return;
    }
    default:
      EncodeError(id, fb::ErrorCode_BadMessage, "request type not handled inline", fbb);
      return;
  }
}

void Dispatcher::FinishQuery(uint64_t request_id, const Query& query, const Status& status,
                             const QueryResult& result, fbs::FlatBufferBuilder* fbb) const {
  fbb->Clear();
  if (!status.ok()) {
    EncodeStatus(request_id, status, fbb);
    return;
  }
  if (!query.count_only && result.rows() > options_.max_result_rows) {
    EncodeError(request_id, fb::ErrorCode_TooManyRows,
                TooManyRows(result.rows(), options_.max_result_rows), fbb);
    return;
  }
  auto reply = EncodeResult(result, query.shape != Shape::kRect, nullptr, fbb);
  Finish(request_id, fb::ResponseBody_QueryReply, reply.Union(), fbb);
}

void Dispatcher::FinishBatch(uint64_t request_id, const Query* queries, const Status* statuses,
                             const QueryResult* results, size_t n,
                             fbs::FlatBufferBuilder* fbb) const {
  fbb->Clear();
  for (size_t i = 0; i < n; ++i) {
    if (!statuses[i].ok()) {
      EncodeError(request_id, ErrorCodeOf(statuses[i].code()),
                  "query " + std::to_string(i) + " of the batch: " + statuses[i].message(), fbb);
      return;
    }
  }
  uint64_t rows = 0;
  for (size_t i = 0; i < n; ++i) rows += results[i].rows();
  const bool with_distance = n > 0 && queries[0].shape != Shape::kRect;
  if (rows > options_.max_result_rows) {
    EncodeError(request_id, fb::ErrorCode_TooManyRows,
                TooManyRows(rows, options_.max_result_rows) + " (the batch's rows together)", fbb);
    return;
  }
  auto result = EncodeRows(results, n, with_distance, rows, false, nullptr, fbb);
  uint32_t* row_counts = nullptr;
  uint64_t* counts = nullptr;
  uint8_t* truncated = nullptr;
  auto row_vec = fbb->CreateUninitializedVector(n, &row_counts);
  for (size_t i = 0; i < n; ++i) row_counts[i] = static_cast<uint32_t>(results[i].rows());
  auto count_vec = fbb->CreateUninitializedVector(n, &counts);
  for (size_t i = 0; i < n; ++i) counts[i] = results[i].count;
  auto trunc_vec = fbb->CreateUninitializedVector(n, &truncated);
  for (size_t i = 0; i < n; ++i) truncated[i] = results[i].truncated ? 1 : 0;
  auto reply = fb::CreateQueryBatchReply(*fbb, row_vec, count_vec, trunc_vec, result);
  Finish(request_id, fb::ResponseBody_QueryBatchReply, reply.Union(), fbb);
}

bool Dispatcher::IsWrite(const uint8_t* data, size_t size) const {
  fbs::Verifier::Options o;
  o.max_depth = options_.verifier_max_depth;
  o.max_tables = options_.verifier_max_tables;
  o.check_nested_flatbuffers = false;
  fbs::Verifier verifier(data, size, o);
  return size >= sizeof(fbs::uoffset_t) && fb::VerifyRequestBuffer(verifier) &&
         fb::GetRequest(data)->body_type() == fb::RequestBody_ApplyBatch;
}

void Dispatcher::RunWrites(std::span<const std::span<const uint8_t>> requests,
                           fbs::FlatBufferBuilder* fbb,
                           const std::function<void(size_t)>& emit) const {
  struct Outcome {
    uint64_t request_id;
    Ack ack;
    Status status;
    WriteStats stats;
    uint64_t ticket;
  };
  std::vector<Outcome> outcomes;
  outcomes.reserve(requests.size());
  // The batches go to the engine together (ApplyMany: one wait for all of
  // them rather than a wake-up per batch), each logged as kQueued; then one
  // log wait covers them all.
  std::vector<std::span<const uint8_t>> batches;
  std::vector<size_t> batch_of;  // outcome index of each batch
  for (std::span<const uint8_t> bytes : requests) {
    const fb::Request* req = fb::GetRequest(bytes.data());
    const fb::ApplyBatch* a = req->body_as_ApplyBatch();
    Outcome o{req->request_id(), static_cast<Ack>(a->ack()), Status::Ok(), {}, 0};
    if (options_.writable) o.status = options_.writable();
    if (o.status.ok()) {
      batches.push_back({a->batch()->Data(), a->batch()->size()});
      batch_of.push_back(outcomes.size());
    }
    outcomes.push_back(std::move(o));
  }
  std::vector<Result<WriteStats>> applied;
  std::vector<uint64_t> tickets;
  engine_->ApplyMany(batches, Ack::kQueued, &applied, &tickets);
  Ack wait = Ack::kQueued;  // the most any applied batch asked for (kMode < kWritten < kQueued)
  for (size_t k = 0; k < applied.size(); ++k) {
    Outcome& o = outcomes[batch_of[k]];
    if (applied[k].ok()) {
      o.stats = applied[k].value();
      o.ticket = tickets[k];
      wait = std::min(wait, o.ack);
    } else {
      o.status = applied[k].status();
    }
  }
  const Status logged = wait == Ack::kQueued ? Status::Ok() : engine_->WaitForLog(wait);
  for (size_t i = 0; i < outcomes.size(); ++i) {
    const Outcome& o = outcomes[i];
    fbb->Clear();
    if (!o.status.ok()) {
      EncodeStatus(o.request_id, o.status, fbb);
    } else if (!logged.ok() && o.ack != Ack::kQueued) {
      EncodeStatus(o.request_id, logged, fbb);
    } else {
      const WriteStats& w = o.stats;
      auto reply = fb::CreateApplyReply(*fbb, w.created, w.replaced, w.moved, w.set, w.deleted,
                                        w.delete_missing, o.ticket);
      Finish(o.request_id, fb::ResponseBody_ApplyReply, reply.Union(), fbb);
    }
    emit(i);
  }
}

void Dispatcher::RunBlocking(const uint8_t* data, size_t size, fbs::FlatBufferBuilder* fbb) const {
  const fb::Request* req = fb::GetRequest(data);
  if (req->body_type() == fb::RequestBody_ApplyBatch) {
    const std::span<const uint8_t> one[] = {{data, size}};
    RunWrites(one, fbb, [](size_t) {});
    return;
  }
  const uint64_t id = req->request_id();
  fbb->Clear();
  if (req->body_type() != fb::RequestBody_Snapshot && options_.writable) {
    Status w = options_.writable();
    if (!w.ok()) {
      EncodeStatus(id, w, fbb);
      return;
    }
  }
  switch (req->body_type()) {
    case fb::RequestBody_SchemaChangeRequest: {
      const auto* c = req->body_as_SchemaChangeRequest()->change();
      Status s = engine_->ApplySchemaChange(c->Data(), c->size());
      if (!s.ok()) {
        EncodeStatus(id, s, fbb);
        return;
      }
      auto reply = fb::CreateSchemaReply(*fbb, engine_->schema()->version());
      Finish(id, fb::ResponseBody_SchemaReply, reply.Union(), fbb);
      return;
    }
    case fb::RequestBody_Snapshot: {
      if (!options_.snapshot) {
        EncodeError(id, fb::ErrorCode_NotYetAvailable,
                    "snapshots are not available on this server (no write-ahead log)", fbb);
        return;
      }
      auto r = options_.snapshot();
      if (!r.ok()) {
        EncodeStatus(id, r.status(), fbb);
        return;
      }
      auto path = fbb->CreateString(r->path);
      auto reply = fb::CreateSnapshotReply(*fbb, r->lsn, r->entities, r->bytes, path);
      Finish(id, fb::ResponseBody_SnapshotReply, reply.Union(), fbb);
      return;
    }
    default:
      EncodeError(id, fb::ErrorCode_BadMessage, "request type is not a blocking request", fbb);
      return;
  }
}

void Dispatcher::Handle(const uint8_t* data, size_t size, Session* session,
                        std::vector<uint8_t>* response) const {
  std::vector<uint64_t> storage;
  data = AlignPayload(data, size, &storage);
  fbs::FlatBufferBuilder fbb(1024);
  Query q;
  uint64_t id = 0;
  switch (Begin(data, size, session, &fbb, &q, &id)) {
    case Next::kAnswered:
      break;
    case Next::kQuery: {
      QueryResult r;
      Status s;
      engine_->RunMany(&q, 1, &r, &s);
      FinishQuery(id, q, s, r, &fbb);
      break;
    }
    case Next::kBatch: {
      const fb::Request* req = fb::GetRequest(data);
      const size_t n = BatchSize(*req);
      std::vector<Query> queries(n, q);
      for (size_t i = 0; i < n; ++i) PlaceQuery(*req, i, &queries[i]);
      std::vector<QueryResult> results(n);
      std::vector<Status> statuses(n);
      engine_->RunMany(queries.data(), n, results.data(), statuses.data());
      FinishBatch(id, queries.data(), statuses.data(), results.data(), n, &fbb);
      break;
    }
    case Next::kBlocking:
      RunBlocking(data, size, &fbb);
      break;
  }
  response->assign(fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize());
}

}  // namespace worlddb::net
