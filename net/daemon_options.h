// DaemonOptions: every setting of the `worlddb` daemon (a flag each, and a
// key of the same name in a TOML config file), with the parsing of the ones
// that are more than a number. Defaults come from net/net_constants.h.
//
// Thread safety: plain data and pure functions.
#pragma once

#include <cstdint>
#include <string>

#include "engine/status.h"
#include "net/net_constants.h"
#include "net/server.h"

namespace worlddb::net {

// --durability: always (fdatasync before every acknowledgement, batched by
// group commit), interval:MS (fdatasync at most every MS milliseconds), none.
struct Durability {
  enum class Mode : uint8_t { kAlways, kInterval, kNone };
  Mode mode = Mode::kAlways;
  uint32_t interval_ms = 0;  // kInterval only, 1..3,600,000
};
Result<Durability> ParseDurability(const std::string& text);
std::string DurabilityName(const Durability& d);

struct DaemonOptions {
  std::string listen = "127.0.0.1";
  uint16_t port = kDefaultPort;
  std::string data_dir = "./data";
  std::string durability_text = "always";
  Durability durability;
  uint32_t shards = 0;  // 0: one per CPU core (at least 1)
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

  // The server's part (hooks and tokens are added by the caller).
  ServerOptions ToServerOptions() const;
};

// Checks what flag parsing cannot (durability, log format/level, shards);
// fills `durability`.
Status FinishDaemonOptions(DaemonOptions* o);

}  // namespace worlddb::net
