// DaemonOptions: every setting of the `worlddb` daemon (a flag each, and a
// key of the same name in a TOML config file), with the parsing of the ones
// that are more than a number. Defaults come from net/net_constants.h.
//
// Thread safety: plain data and pure functions.
#pragma once

#include <cstdint>
#include <string>

#include "engine/status.h"
#include "net/http_listener.h"
#include "net/net_constants.h"
#include "net/server.h"
#include "wal/world.h"

namespace worlddb::net {

struct DaemonOptions {
  std::string listen = "127.0.0.1";
  uint16_t port = kDefaultPort;
  std::string data_dir = "./data";
  std::string durability_text = "always";
  wal::Durability durability;
  uint32_t shards = 0;  // 0: DefaultShards(cores)
  size_t max_frame_bytes = kDefaultMaxFrameBytes;
  size_t max_connections = kDefaultMaxConnections;
  uint64_t max_result_rows = kDefaultMaxResultRows;
  size_t max_output_buffer_bytes = kDefaultMaxOutputBufferBytes;
  uint32_t idle_timeout_seconds = kDefaultIdleTimeoutSeconds;
  uint32_t writer_threads = kDefaultWriterThreads;
  std::string auth_file;  // empty: auth off
  bool allow_remote_without_auth = false;
  std::string log_format = "text";  // text | json
  std::string log_level = "info";   // trace debug info warn error
  // The HTTP endpoints (/metrics, /healthz, /readyz; net/http_listener.h):
  // port 0 = ephemeral, -1 = off.
  std::string metrics_listen = "127.0.0.1";
  int32_t metrics_port = kDefaultMetricsPort;
  // Requests slower than this are logged at warn level; 0 = off.
  uint32_t slow_query_ms = 100;
  // The data directory (wal::WorldOptions; docs/operations.md).
  bool salvage = false;
  uint64_t segment_bytes = uint64_t{64} << 20;
  uint64_t snapshot_log_bytes = uint64_t{1} << 30;
  uint32_t snapshot_interval_s = 3600;
  uint32_t snapshots_kept = 2;
  bool archive = false;
  uint32_t archive_max_age_s = 0;
  uint64_t archive_max_bytes = 0;

  // The server's part (hooks and tokens are added by the caller).
  ServerOptions ToServerOptions() const;
  // The data directory's part.
  wal::WorldOptions ToWorldOptions() const;
};

// The shard count when --shards is 0: one per core but one, at least 1, at
// most 256. The event loop keeps a core busy under load, and every query
// runs on every shard, so a shard that competes with the loop for a core
// costs more than it brings: on 2 cores, 1 shard answered 760 k batched AOI
// queries/s against 568 k with 2, at the same moves/s (docs/benchmarks.md).
// `cores` is hardware_concurrency() (0: unknown).
uint32_t DefaultShards(unsigned cores);

// Checks what flag parsing cannot (durability, log format/level, shards);
// fills `durability`.
Status FinishDaemonOptions(DaemonOptions* o);

}  // namespace worlddb::net
