#include "tools/worlddb_target.h"

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
                                                           const std::string& token) {
  net::ClientOptions o;
  o.token = token;
  o.io_timeout_ms = 60000;
  auto c = net::Client::Connect(host, port, o);
  if (!c.ok()) return c.status();
  return std::unique_ptr<LoadTarget>(new WorldDbTarget(std::move(c.value())));
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
  query_.shape = q.k ? Shape::kNearest : Shape::kCircle;
  query_.x = q.x;
  query_.y = q.y;
  query_.radius = q.radius;
  query_.k = q.k;
  query_.kind = kKindNames[q.kind];
  query_.columns.clear();
  for (int c : q.columns) query_.columns.push_back(kColumnNames[c]);
  client_->SendQuery(
      query_, [want_rows, done = std::move(done)](const Status& s, const net::ReplyView& r) {
        if (!s.ok()) return done(s, 0, nullptr);
        const net::fb::QueryReply* reply = r->body_as_QueryReply();
        if (!reply) return done(Status::Corruption("reply is not a QueryReply"), 0, nullptr);
        const uint64_t rows = reply->ids() ? reply->ids()->size() : 0;
        if (!want_rows) return done(s, rows, nullptr);
        AoiRows out;
        if (!reply->x() || !reply->y() || reply->x()->size() != rows || reply->y()->size() != rows)
          return done(Status::Corruption("reply without one position per row"), rows, nullptr);
        for (size_t i = 0; i < rows; ++i) {
          out.ids.push_back(reply->ids()->Get(static_cast<uint32_t>(i)));
          out.x.push_back(reply->x()->Get(static_cast<uint32_t>(i)));
          out.y.push_back(reply->y()->Get(static_cast<uint32_t>(i)));
        }
        if (reply->columns()) {
          for (const net::fb::ResultColumn* c : *reply->columns()) {
            std::vector<std::string> cells;
            for (size_t i = 0; i < rows; ++i) cells.push_back(CellText(*c, i));
            out.cells.push_back(std::move(cells));
          }
        }
        done(s, rows, &out);
      });
}

}  // namespace worlddb::load
