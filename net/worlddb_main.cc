// worlddb: the WorldDB daemon. With no arguments it serves on
// 127.0.0.1:7878 with the data directory ./data. Every setting is a flag and
// may also come from a TOML config file (--config FILE; keys are the flag
// names without dashes, e.g. `port = 9000`; unknown keys are refused; flags
// given on the command line override the file). `--print-config` prints the
// settings in force as a config file and exits 0. Bad settings (unknown key,
// wrong type, out of range, bad durability, ...) exit 2 naming the setting.
//
// Logs go to stderr, one line per event (text or JSON). The line
// "listening on HOST:PORT" is printed once the socket is bound, with the real
// port when --port 0 asked for an ephemeral one (tests read it).
// SIGTERM/SIGINT: stop accepting, finish the requests in flight, exit 0.
#include <signal.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "engine/engine.h"
#include "net/auth.h"
#include "net/daemon_config.h"
#include "net/daemon_metrics.h"
#include "net/daemon_options.h"
#include "net/http_listener.h"
#include "net/json_log_formatter.h"
#include "net/server.h"

namespace {

using worlddb::Engine;
using worlddb::EngineOptions;
using worlddb::Result;
using worlddb::Status;
using namespace worlddb::net;
namespace wal = worlddb::wal;

std::atomic<Server*> g_server{nullptr};

void OnSignal(int) {
  if (Server* s = g_server.load()) s->Stop();
}

void SetUpLogging(const DaemonOptions& o) {
  auto logger = spdlog::stderr_logger_mt("worlddb");
  if (o.log_format == "json") {
    logger->set_formatter(std::make_unique<JsonLogFormatter>());
  } else {
    auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
    formatter->set_pattern("%Y-%m-%dT%H:%M:%S.%fZ %l %v");
    logger->set_formatter(std::move(formatter));
  }
  logger->set_level(spdlog::level::from_str(o.log_level));
  logger->flush_on(spdlog::level::trace);  // one event, one line, at once
  spdlog::set_default_logger(logger);
}

}  // namespace

#ifdef WORLDDB_HAVE_JEMALLOC
// Snapshots fork the server, and fork copies page tables in proportion to the
// pages mapped: on 2 MiB pages the pause at 1M entities fell from ~13 ms to
// ~4 ms (docs/benchmarks.md "Snapshots"). MALLOC_CONF in the environment
// still overrides this.
extern "C" {
const char* malloc_conf = "thp:always,metadata_thp:always";
}
#endif

int main(int argc, char** argv) {
  DaemonOptions o;
  CLI::App app{"worlddb: the WorldDB server (docs/protocol.md)"};
  app.set_config("--config", "", "TOML config file; keys are the flag names (e.g. port = 7878)");
  app.allow_config_extras(false);
  app.add_option("--listen", o.listen, "address to listen on (IPv4/IPv6 literal or localhost)")
      ->capture_default_str();
  app.add_option("--port", o.port, "TCP port; 0 = an ephemeral port (printed in the log)")
      ->capture_default_str();
  app.add_option("--data-dir", o.data_dir, "data directory (log and snapshots)")
      ->capture_default_str();
  app.add_option("--durability", o.durability_text, "always | interval:MS | none")
      ->capture_default_str();
  app.add_option(
         "--shards", o.shards,
         "engine shards (threads); 0 = one per CPU core but one (the event loop's), at least 1")
      ->capture_default_str();
  app.add_option("--max-frame-bytes", o.max_frame_bytes, "largest request or response frame")
      ->capture_default_str();
  app.add_option("--max-connections", o.max_connections, "open connections at most")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{1} << 20));
  app.add_option("--max-result-rows", o.max_result_rows,
                 "rows one query may return (more: TooManyRows)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max-output-buffer-bytes", o.max_output_buffer_bytes,
                 "unsent response bytes per connection before it is disconnected")
      ->capture_default_str();
  app.add_option("--idle-timeout", o.idle_timeout_seconds,
                 "seconds without traffic before a connection is closed; 0 = never")
      ->capture_default_str()
      ->check(CLI::Range(0u, 7u * 86400u));
  app.add_option("--writer-threads", o.writer_threads, "threads running writes")
      ->capture_default_str()
      ->check(CLI::Range(1u, kMaxWriterThreads));
  app.add_option("--auth-file", o.auth_file, "token file (`TOKEN ROLE` per line); empty = no auth");
  app.add_flag("--allow-remote-without-auth", o.allow_remote_without_auth,
               "allow a non-loopback --listen without --auth-file");
  app.add_option("--log-format", o.log_format, "text | json")->capture_default_str();
  app.add_option("--log-level", o.log_level, "trace | debug | info | warn | error")
      ->capture_default_str();
  app.add_option("--metrics-listen", o.metrics_listen,
                 "address of the HTTP endpoints /metrics, /healthz, /readyz")
      ->capture_default_str();
  app.add_option("--metrics-port", o.metrics_port,
                 "port of the HTTP endpoints; 0 = ephemeral (printed in the log), -1 = off")
      ->capture_default_str();
  app.add_option("--slow-query-ms", o.slow_query_ms,
                 "log requests slower than this at warn level (slow-query log); 0 = off")
      ->capture_default_str();
  app.add_flag(
      "--salvage", o.salvage,
      "start from a damaged data directory by keeping what is intact (docs/operations.md)");
  app.add_option("--segment-bytes", o.segment_bytes, "size of one log segment")
      ->capture_default_str();
  app.add_option("--snapshot-log-bytes", o.snapshot_log_bytes,
                 "take a snapshot once this much log was written since the last; 0 = never")
      ->capture_default_str();
  app.add_option("--snapshot-interval-s", o.snapshot_interval_s,
                 "take a snapshot this often (seconds); 0 = never")
      ->capture_default_str();
  app.add_option("--snapshots-kept", o.snapshots_kept, "snapshots kept; older ones are deleted")
      ->capture_default_str();
  app.add_flag("--archive", o.archive,
               "move log segments no snapshot needs to DATA/archive instead of deleting them");
  app.add_option("--archive-max-age-s", o.archive_max_age_s,
                 "delete archived segments older than this (seconds); 0 = keep")
      ->capture_default_str();
  app.add_option("--archive-max-bytes", o.archive_max_bytes,
                 "delete the oldest archived segments beyond this size; 0 = keep")
      ->capture_default_str();
  bool print_config = false;
  app.add_flag("--print-config", print_config,
               "print the settings in force as a config file (TOML) and exit");
  // Last, so that it covers every option above.
  TightenValueChecks(&app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // Every bad setting, from the command line or the file, exits 2 (as
    // FinishDaemonOptions' refusals do), naming the setting.
    std::fprintf(stderr, "worlddb: %s\n", DescribeParseError(app, e).c_str());
    return 2;
  }
  if (Status s = FinishDaemonOptions(&o); !s.ok()) {
    std::fprintf(stderr, "worlddb: %s\n", s.message().c_str());
    return 2;
  }
  if (print_config) {
    auto toml = EffectiveConfigToml(app);
    if (!toml.ok()) {
      std::fprintf(stderr, "worlddb: %s\n", toml.status().message().c_str());
      return 2;
    }
    std::fputs(toml.value().c_str(), stdout);
    return 0;
  }
  SetUpLogging(o);

  std::unique_ptr<TokenTable> tokens;
  if (!o.auth_file.empty()) {
    auto t = TokenTable::Load(o.auth_file);
    if (!t.ok()) {
      spdlog::error("cannot start: {}", t.status().message());
      return 2;
    }
    tokens = std::make_unique<TokenTable>(std::move(t.value()));
  }
  spdlog::info(
      "starting worlddb: listen={} port={} data_dir={} durability={} shards={} "
      "max_frame_bytes={} max_connections={} max_result_rows={} max_output_buffer_bytes={} "
      "idle_timeout={}s writer_threads={} auth={}",
      o.listen, o.port, o.data_dir, o.durability.ToString(), o.shards, o.max_frame_bytes,
      o.max_connections, o.max_result_rows, o.max_output_buffer_bytes, o.idle_timeout_seconds,
      o.writer_threads,
      tokens ? o.auth_file + " (" + std::to_string(tokens->size()) + " tokens)"
             : std::string("off"));

  // Up before recovery, so that /healthz answers and /readyz says
  // "recovering" while a large log replays. A port that cannot be bound does
  // not stop the database: it serves without metrics (Prometheus's `up`
  // alert says so) rather than not at all.
  DaemonMetrics metrics;
  std::unique_ptr<HttpListener> http;
  if (o.metrics_port >= 0) {
    auto started = HttpListener::Start(
        o.metrics_listen, static_cast<uint16_t>(o.metrics_port),
        {[&metrics] { return metrics.Render(); }, [&metrics] { return metrics.Ready(); }});
    if (started.ok()) {
      http = std::move(started.value());
      spdlog::info("metrics at http://{}/metrics (and /healthz, /readyz)", http->address());
    } else {
      spdlog::error("serving without metrics: {}", started.status().message());
    }
  }

  const auto open_start = std::chrono::steady_clock::now();
  auto opened = wal::World::Open(o.ToWorldOptions());
  if (!opened.ok()) {
    spdlog::error("cannot open the data directory {}: {}", o.data_dir, opened.status().ToString());
    return 1;
  }
  std::unique_ptr<wal::World> world = std::move(opened.value());
  // Declared after `world`, so destroyed before it on every return: the
  // listener's threads read the world.
  struct StopHttp {
    std::unique_ptr<HttpListener>* http;
    ~StopHttp() {
      if (*http) (*http)->Stop();
    }
  } stop_http{&http};
  const double recovery_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - open_start).count();
  spdlog::info("recovered {} in {:.3f} s: {}", o.data_dir, recovery_s,
               world->recovery().ToString());
  metrics.SetWorld(world.get(), recovery_s);

  ServerOptions so = o.ToServerOptions();
  so.tokens = tokens.get();
  wal::World* w = world.get();
  so.snapshot = [w]() -> Result<SnapshotResult> {
    auto taken = w->Snapshot();
    if (!taken.ok()) return taken.status();
    spdlog::info("snapshot {} at LSN {}: {} entities, {} bytes, pause {} us, {} ms", taken->path,
                 taken->lsn, taken->entities, taken->bytes, taken->pause_us,
                 taken->duration_us / 1000);
    return SnapshotResult{taken->lsn, taken->entities, taken->bytes, taken->path};
  };
  so.writable = [w] { return w->Writable(); };
  so.durability_state = [w] {
    DurabilityState d;
    d.durability = w->options().durability.ToString();
    if (wal::LogWriter* log = w->log()) {
      d.log_last_lsn = log->last_lsn();
      d.log_durable_lsn = log->durable_lsn();
      d.log_bytes = log->bytes_written();
    }
    if (auto snap = w->last_snapshot()) {
      d.snapshot_lsn = snap->lsn;
      d.snapshot_time_us = snap->timestamp_us;
      d.snapshot_bytes = snap->bytes;
    }
    if (Status e = w->last_snapshot_error(); !e.ok()) d.snapshot_error = e.ToString();
    return d;
  };
  so.metrics = metrics.requests();
  auto server = Server::Start(&world->engine(), so);
  if (!server.ok()) {
    spdlog::error("cannot start: {}", server.status().message());
    return 1;
  }
  g_server.store(server.value().get());
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

  Status run = server.value()->Run();
  g_server.store(nullptr);
  server.value().reset();
  // Before the log flush, so that nothing reads the world while it closes.
  if (http) http->Stop();
  // Every acknowledged write is already as durable as the mode promised;
  // this makes the rest (interval mode's unsynced tail) durable too.
  Status closed = world->Close();
  if (!closed.ok()) spdlog::error("flushing the log failed: {}", closed.ToString());
  if (!run.ok()) {
    spdlog::error("server failed: {}", run.ToString());
    return 1;
  }
  if (!closed.ok()) return 1;
  spdlog::info("log flushed; exiting");
  return 0;
}
