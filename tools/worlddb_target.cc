#include "tools/worlddb_target.h"

#include <algorithm>
#include <cstdio>

namespace worlddb::load {

namespace {

// The text of row `row` of a projected column (ColumnText's format).
std::string CellText(const net::fb::ResultColumn& c, size_t row) {
  char buf[32];
  switch (c.type()) {
    case fb::ColumnType_I32:
      return c.i32() && row < c.i32()->size() ? std::to_string(c.i32()->Get(row)) : "?";
    case fb::ColumnType_I64:
      return c.i64() && row < c.i64()->size() ? std::to_string(c.i64()->Get(row)) : "?";
    case fb::ColumnType_F32:
      if (!c.f32() || row >= c.f32()->size()) return "?";
      std::snprintf(buf, sizeof buf, "%.9g", double(c.f32()->Get(row)));
      return buf;
    case fb::ColumnType_String:
      return c.s() && row < c.s()->size() ? c.s()->Get(row)->str() : "?";
    default:
      return "?";
  }
}

}  // namespace

Result<std::unique_ptr<LoadTarget>> WorldDbTarget::Connect(const std::string& host, uint16_t port,
                                                           const std::string& token,
                                                           size_t aoi_batch) {
  net::ClientOptions o;
  o.token = token;
  o.io_timeout_ms = 60000;
  auto c = net::Client::Connect(host, port, o);
  if (!c.ok()) return c.status();
  return std::unique_ptr<LoadTarget>(
      new WorldDbTarget(std::move(c.value()), std::max<size_t>(aoi_batch, 1)));
}

Status WorldDbTarget::Prepare(bool flush) {
  // Kinds are never dropped, so "flush" cannot clear a world: worldload needs
  // a server without these kinds (a fresh data directory).
  (void)flush;
  auto kinds = client_->ListKinds();
  if (!kinds.ok()) return kinds.status();
  for (const KindDef& k : kinds->kinds) {
    for (const char* name : kKindNames) {
      if (k.name == name)
        return Status::AlreadyExists(std::string("the server already has kind \"") + name +
                                     "\": worldload needs an empty world (a fresh data directory)");
    }
  }
  for (const char* name : kKindNames) {
    KindDef def{name,
                {{"hp", ColumnType::kI32, int32_t{100}},
                 {"level", ColumnType::kI32, int32_t{1}},
                 {"speed", ColumnType::kF32, 0.0f},
                 {"name", ColumnType::kString, std::string(), 32}}};
    auto v = client_->CreateKind(def);
    if (!v.ok()) return v.status();
  }
  return Status::Ok();
}

void WorldDbTarget::SendWrite(WriteDone done) {
  FlushAoi();  // requests go out in the order they were asked for
  client_->SendApply(batch_.Finish(), Ack::kMode,
                     [done = std::move(done)](const Status& s, const net::ReplyView&) { done(s); });
}

void WorldDbTarget::SendLoad(std::span<const EntityInit> rows, bool /*with_columns*/,
                             WriteDone done) {
  for (const EntityInit& e : rows) {
    batch_.Upsert(
        e.id, kKindNames[e.kind], e.x, e.y, 0,
        {{"hp", e.hp}, {"level", e.level}, {"speed", e.speed}, {"name", EntityName(e.id, e.kind)}});
  }
  SendWrite(std::move(done));
}

void WorldDbTarget::SendMoves(std::span<const Move> moves, WriteDone done) {
  batch_.Reserve(0, moves.size());
  for (const Move& m : moves) batch_.Move(m.id, m.x, m.y);
  SendWrite(std::move(done));
}

void WorldDbTarget::SendAoi(const AoiQuery& q, bool want_rows, AoiDone done) {
  const Shape shape = q.k ? Shape::kNearest : Shape::kCircle;
  bool same = !gathered_.empty() && query_.shape == shape && query_.radius == q.radius &&
              query_.k == q.k && query_.kind == kKindNames[q.kind] &&
              query_.columns.size() == q.columns.size();
  for (size_t i = 0; same && i < q.columns.size(); ++i)
    same = query_.columns[i] == kColumnNames[q.columns[i]];
  if (!same) {
    FlushAoi();
    query_.shape = shape;
    query_.radius = q.radius;
    query_.k = q.k;
    query_.kind = kKindNames[q.kind];
    query_.columns.clear();
    for (int c : q.columns) query_.columns.push_back(kColumnNames[c]);
  }
  gx_.push_back(q.x);
  gy_.push_back(q.y);
  gathered_.push_back({want_rows, std::move(done)});
  if (gathered_.size() >= aoi_batch_) FlushAoi();
}

namespace {

// Rows [off, off + n) of a (batch) reply's result, for a result check.
Status CopyRows(const net::fb::QueryReply& reply, size_t off, size_t n, AoiRows* out) {
  const size_t end = off + n;
  if (!reply.ids() || reply.ids()->size() < end || !reply.x() || !reply.y() ||
      reply.x()->size() != reply.ids()->size() || reply.y()->size() != reply.ids()->size())
    return Status::Corruption("reply without one id and position per row");
  for (size_t i = off; i < end; ++i) {
    out->ids.push_back(reply.ids()->Get(static_cast<uint32_t>(i)));
    out->x.push_back(reply.x()->Get(static_cast<uint32_t>(i)));
    out->y.push_back(reply.y()->Get(static_cast<uint32_t>(i)));
  }
  if (reply.columns()) {
    for (const net::fb::ResultColumn* c : *reply.columns()) {
      std::vector<std::string> cells;
      for (size_t i = off; i < end; ++i) cells.push_back(CellText(*c, i));
      out->cells.push_back(std::move(cells));
    }
  }
  return Status::Ok();
}

}  // namespace

void WorldDbTarget::FlushAoi() {
  if (gathered_.empty()) return;
  if (gathered_.size() == 1) {
    query_.x = gx_[0];
    query_.y = gy_[0];
    client_->SendQuery(
        query_, [g = std::move(gathered_[0])](const Status& s, const net::ReplyView& r) {
          if (!s.ok()) return g.done(s, 0, nullptr);
          const net::fb::QueryReply* reply = r->body_as_QueryReply();
          if (!reply) return g.done(Status::Corruption("reply is not a QueryReply"), 0, nullptr);
          const uint64_t rows = reply->ids() ? reply->ids()->size() : 0;
          if (!g.want_rows) return g.done(s, rows, nullptr);
          AoiRows out;
          Status c = CopyRows(*reply, 0, rows, &out);
          c.ok() ? g.done(s, rows, &out) : g.done(c, rows, nullptr);
        });
  } else {
    const size_t n = gathered_.size();
    batched_extra_ += n - 1;
    client_->SendQueryBatch(
        query_, gx_, gy_,
        [this, n, gs = std::move(gathered_)](const Status& s, const net::ReplyView& r) mutable {
          batched_extra_ -= n - 1;
          const net::fb::QueryBatchReply* b = s.ok() ? r->body_as_QueryBatchReply() : nullptr;
          Status bad = s;
          if (s.ok() && (!b || !b->rows() || b->rows()->size() != n || !b->result()))
            bad = Status::Corruption("reply is not a QueryBatchReply with one entry per query");
          if (!bad.ok()) {
            for (Gathered& g : gs) g.done(bad, 0, nullptr);
            return;
          }
          size_t off = 0;
          for (size_t i = 0; i < n; ++i) {
            const size_t rows = b->rows()->Get(static_cast<uint32_t>(i));
            if (!gs[i].want_rows) {
              gs[i].done(s, rows, nullptr);
            } else {
              AoiRows out;
              Status c = CopyRows(*b->result(), off, rows, &out);
              c.ok() ? gs[i].done(s, rows, &out) : gs[i].done(c, rows, nullptr);
            }
            off += rows;
          }
        });
  }
  gathered_.clear();
  gx_.clear();
  gy_.clear();
}

}  // namespace worlddb::load
