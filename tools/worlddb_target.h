// WorldDbTarget: a LoadTarget on one net::Client connection to a worlddb
// server (docs/protocol.md). Kinds "player" and "npc" with the columns
// hp:i32, level:i32, speed:f32, name:string(32); a move batch is one
// ApplyBatch of moves, an area-of-interest query one QueryRequest (radius or
// nearest, kind, projection); replies are read in place from the FlatBuffer
// and copied only when the caller asks for rows.
#pragma once

#include <memory>

#include "engine/batch_builder.h"
#include "engine/query.h"
#include "net/client.h"
#include "tools/load_target.h"

namespace worlddb::load {

class WorldDbTarget : public LoadTarget {
 public:
  static Result<std::unique_ptr<LoadTarget>> Connect(const std::string& host, uint16_t port,
                                                     const std::string& token);
  double position_tolerance() const override { return 0; }
  Status Prepare(bool flush) override;
  void SendLoad(std::span<const EntityInit> rows, bool with_columns, WriteDone done) override;
  void SendMoves(std::span<const Move> moves, WriteDone done) override;
  void SendAoi(const AoiQuery& q, bool want_rows, AoiDone done) override;
  Status Poll(int timeout_ms) override { return client_->Poll(timeout_ms); }
  int fd() const override { return client_->fd(); }
  size_t in_flight() const override { return client_->in_flight(); }
  bool wants_write() const override { return client_->unsent_bytes() > 0; }

 private:
  explicit WorldDbTarget(std::unique_ptr<net::Client> client) : client_(std::move(client)) {}
  void SendWrite(WriteDone done);

  std::unique_ptr<net::Client> client_;
  BatchBuilder batch_;
  Query query_;  // reused: its vectors keep their capacity
};

}  // namespace worlddb::load
