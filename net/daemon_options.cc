#include "net/daemon_options.h"

#include <arpa/inet.h>

#include <algorithm>
#include <thread>

namespace worlddb::net {

uint32_t DefaultShards(unsigned cores) { return cores <= 2 ? 1 : std::min(cores - 1, 256u); }

Status FinishDaemonOptions(DaemonOptions* o) {
  auto d = wal::Durability::Parse(o->durability_text);
  if (!d.ok()) return Status::InvalidArgument("--durability: " + d.status().message());
  o->durability = d.value();
  if (o->snapshots_kept < 1) {
    return Status::InvalidArgument("--snapshots-kept 0: at least 1 snapshot must be kept");
  }
  if (o->segment_bytes < (uint64_t{64} << 10) || o->segment_bytes > (uint64_t{1} << 32)) {
    return Status::InvalidArgument("--segment-bytes " + std::to_string(o->segment_bytes) +
                                   ": must be from 65536 (64 KiB) to 4294967296 (4 GiB)");
  }
  if (o->log_format != "text" && o->log_format != "json") {
    return Status::InvalidArgument("--log-format " + o->log_format + ": expected text or json");
  }
  static const char* kLevels[] = {"trace", "debug", "info", "warn", "error"};
  bool level_ok = false;
  for (const char* l : kLevels) level_ok |= o->log_level == l;
  if (!level_ok) {
    return Status::InvalidArgument("--log-level " + o->log_level +
                                   ": expected trace, debug, info, warn or error");
  }
  // A malformed address is a setting to fix, refused here; a port in use is
  // a condition at start, which the daemon logs and serves through.
  in_addr a4;
  in6_addr a6;
  const char* metrics_listen = o->metrics_listen.c_str();
  if (o->metrics_listen != "localhost" && inet_pton(AF_INET, metrics_listen, &a4) != 1 &&
      inet_pton(AF_INET6, metrics_listen, &a6) != 1) {
    return Status::InvalidArgument("--metrics-listen " + o->metrics_listen +
                                   ": not an IPv4 or IPv6 address (or localhost)");
  }
  if (o->metrics_port < -1 || o->metrics_port > 65535) {
    return Status::InvalidArgument("--metrics-port " + std::to_string(o->metrics_port) +
                                   ": expected 0..65535 (0 = ephemeral) or -1 (off)");
  }
  if (o->shards == 0) o->shards = DefaultShards(std::thread::hardware_concurrency());
  if (o->shards > 256) {
    return Status::InvalidArgument("--shards " + std::to_string(o->shards) +
                                   ": at most 256 (0 = one per CPU core but one)");
  }
  ServerOptions s = o->ToServerOptions();
  // Auth is loaded later; validate the rest here with a stand-in.
  const bool has_auth = !o->auth_file.empty();
  if (has_auth) s.allow_remote_without_auth = true;
  return ValidateServerOptions(s);
}

ServerOptions DaemonOptions::ToServerOptions() const {
  ServerOptions s;
  s.listen = listen;
  s.port = port;
  s.max_frame_bytes = max_frame_bytes;
  s.max_connections = max_connections;
  s.max_result_rows = max_result_rows;
  s.max_output_buffer_bytes = max_output_buffer_bytes;
  s.idle_timeout_ms = idle_timeout_seconds * 1000;
  s.writer_threads = writer_threads;
  s.allow_remote_without_auth = allow_remote_without_auth;
  s.slow_query_ms = slow_query_ms;
  return s;
}

wal::WorldOptions DaemonOptions::ToWorldOptions() const {
  wal::WorldOptions w;
  w.data_dir = data_dir;
  w.durability = durability;
  w.engine.shards = shards;
  w.engine.max_batch_bytes = max_frame_bytes;  // a request carries at most one frame
  w.segment_bytes = segment_bytes;
  w.salvage = salvage;
  w.snapshot_log_bytes = snapshot_log_bytes;
  w.snapshot_interval_s = snapshot_interval_s;
  w.snapshots_kept = snapshots_kept;
  w.archive = archive;
  w.archive_max_age_s = archive_max_age_s;
  w.archive_max_bytes = archive_max_bytes;
  return w;
}

}  // namespace worlddb::net
