#include "net/daemon_options.h"

#include <charconv>
#include <thread>

namespace worlddb::net {

Result<Durability> ParseDurability(const std::string& text) {
  Durability d;
  if (text == "always") return d;
  if (text == "none") {
    d.mode = Durability::Mode::kNone;
    return d;
  }
  const std::string prefix = "interval:";
  if (text.rfind(prefix, 0) == 0) {
    const std::string ms = text.substr(prefix.size());
    uint32_t v = 0;
    auto [p, ec] = std::from_chars(ms.data(), ms.data() + ms.size(), v);
    if (ms.empty() || ec != std::errc() || p != ms.data() + ms.size() || v < 1 || v > 3'600'000) {
      return Status::InvalidArgument("--durability " + text +
                                     ": the interval must be a whole number of milliseconds "
                                     "between 1 and 3600000, e.g. interval:10");
    }
    d.mode = Durability::Mode::kInterval;
    d.interval_ms = v;
    return d;
  }
  return Status::InvalidArgument("--durability " + text +
                                 ": expected always, interval:MS (e.g. interval:10) or none");
}

std::string DurabilityName(const Durability& d) {
  switch (d.mode) {
    case Durability::Mode::kAlways:
      return "always";
    case Durability::Mode::kNone:
      return "none";
    case Durability::Mode::kInterval:
      return "interval:" + std::to_string(d.interval_ms);
  }
  return "?";
}

Status FinishDaemonOptions(DaemonOptions* o) {
  auto d = ParseDurability(o->durability_text);
  if (!d.ok()) return d.status();
  o->durability = d.value();
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
  if (o->shards == 0) {
    const unsigned cores = std::thread::hardware_concurrency();
    o->shards = cores == 0 ? 1 : (cores > 256 ? 256 : cores);
  }
  if (o->shards > 256) {
    return Status::InvalidArgument("--shards " + std::to_string(o->shards) +
                                   ": at most 256 (0 = one per CPU core)");
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
  return s;
}

}  // namespace worlddb::net
