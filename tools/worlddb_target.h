// WorldDbTarget: a LoadTarget on one net::Client connection to a worlddb
// server (docs/protocol.md). Kinds "player" and "npc" with the columns
// hp:i32, level:i32, speed:f32, name:string(32); a move batch is one
// ApplyBatch of moves. Area-of-interest queries (radius or nearest, kind,
// projection) are gathered: consecutive ones of the same shape go out as one
// QueryBatch of up to `aoi_batch` queries, sent when it is full, when another
// request or a query of another shape follows, or at the next Poll(), so a
// query never waits for queries not yet asked for (aoi_batch 1: one
// QueryRequest each). Replies are read in place from the FlatBuffer and
// copied only when the caller asks for rows.
#pragma once

#include <memory>
#include <vector>

#include "engine/batch_builder.h"
#include "engine/query.h"
#include "net/client.h"
#include "tools/load_target.h"

namespace worlddb::load {

class WorldDbTarget : public LoadTarget {
 public:
  static Result<std::unique_ptr<LoadTarget>> Connect(const std::string& host, uint16_t port,
                                                     const std::string& token, size_t aoi_batch);
  double position_tolerance() const override { return 0; }
  Status Prepare(bool flush) override;
  void SendLoad(std::span<const EntityInit> rows, bool with_columns, WriteDone done) override;
  void SendMoves(std::span<const Move> moves, WriteDone done) override;
  void SendAoi(const AoiQuery& q, bool want_rows, AoiDone done) override;
  Status Poll(int timeout_ms) override {
    FlushAoi();
    return client_->Poll(timeout_ms);
  }
  int fd() const override { return client_->fd(); }
  // Logical requests: a batch of n queries counts n, gathered ones count too.
  size_t in_flight() const override {
    return client_->in_flight() + batched_extra_ + gathered_.size();
  }
  bool wants_write() const override { return client_->unsent_bytes() > 0 || !gathered_.empty(); }

 private:
  struct Gathered {
    bool want_rows;
    AoiDone done;
  };
  WorldDbTarget(std::unique_ptr<net::Client> client, size_t aoi_batch)
      : client_(std::move(client)), aoi_batch_(aoi_batch) {}
  void SendWrite(WriteDone done);
  // Sends the gathered queries (one QueryRequest, or a QueryBatch).
  void FlushAoi();

  std::unique_ptr<net::Client> client_;
  const size_t aoi_batch_;
  BatchBuilder batch_;
  Query query_;  // the gathered queries' shape; reused: its vectors keep their capacity
  std::vector<double> gx_, gy_;
  std::vector<Gathered> gathered_;
  size_t batched_extra_ = 0;  // queries in flight in batches, beyond one per batch
};

}  // namespace worlddb::load
