// Metrics and health (docs/operations.md "Metrics"):
//   * unit tests of the Prometheus text renderer (net/metrics.h), the request
//     counters (net/request_metrics.h) and the readiness rule;
//   * the real `worlddb` daemon with --metrics-port 0, driven through the
//     client library, its /metrics, /healthz and /readyz fetched over HTTP
//     (httplib::Client) and the values checked against what was sent;
//   * the real Prometheus (/usr/bin/prometheus, Debian package) scraping it
//     every second, its query API asked until the series arrive;
//   * tools/deploy/worlddb-alerts.yml checked with `promtool check rules`.
// Every process started here is killed when its test ends, also on failure
// (and by the kernel if the test process dies: PR_SET_PDEATHSIG).
// GCC 12 at -O2 with the sanitizers reports -Wmaybe-uninitialized inside
// <regex> (std::function in its NFA; httplib.h and this file use it), not in
// this file; -Werror builds would fail on it. Set before any include so that
// the headers are covered (as tests/operations_test.cc does).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include "net/metrics.h"

#include <fcntl.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "engine/batch_builder.h"
#include "gtest/gtest.h"
#include "net/client.h"
#include "net/daemon_metrics.h"
#include "net/request_metrics.h"
#include "tests/child_process.h"

namespace worlddb::net {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

const std::string kServerBinary = std::string(WORLDDB_BINARY_DIR) + "/net/worlddb";
const fs::path kSourceDir = WORLDDB_SOURCE_DIR;
const char kPrometheus[] = "/usr/bin/prometheus";
const char kPromtool[] = "/usr/bin/promtool";

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// ---- A small reader of the text format, strict enough to catch mistakes ----

// Sample lines by series ("name{labels}" exactly as written) -> value. Fails
// the test on a sample whose family has no TYPE before it, on a repeated
// series, and on a line that is neither a comment nor a sample.
std::map<std::string, double> ParseExposition(const std::string& text) {
  std::map<std::string, double> out;
  std::map<std::string, std::string> types;  // family -> type
  std::istringstream in(text);
  std::string line;
  static const std::regex kSample(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$)");
  while (std::getline(in, line)) {
    if (line.rfind("# HELP ", 0) == 0) continue;
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream t(line.substr(7));
      std::string name, type;
      t >> name >> type;
      EXPECT_FALSE(types.count(name)) << "TYPE twice for " << name;
      types[name] = type;
      continue;
    }
    std::smatch m;
    if (!std::regex_match(line, m, kSample)) {
      ADD_FAILURE() << "not a sample line: `" << line << "`";
      continue;
    }
    const std::string name = m[1];
    std::string family = name;
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      const std::string s = suffix;
      if (!types.count(family) && name.size() > s.size() &&
          name.compare(name.size() - s.size(), s.size(), s) == 0 &&
          types.count(name.substr(0, name.size() - s.size()))) {
        family = name.substr(0, name.size() - s.size());
      }
    }
    EXPECT_TRUE(types.count(family)) << "sample before its TYPE: " << line;
    const std::string series = name + std::string(m[2]);
    EXPECT_FALSE(out.count(series)) << "series twice: " << series;
    const std::string v = m[3];
    out[series] = v == "+Inf" ? INFINITY : v == "-Inf" ? -INFINITY : std::stod(v);
  }
  return out;
}

double Value(const std::map<std::string, double>& m, const std::string& series) {
  auto it = m.find(series);
  EXPECT_NE(it, m.end()) << "no series " << series;
  return it == m.end() ? -1 : it->second;
}

// ---- Renderer ----

TEST(PrometheusWriter, FormatsValues) {
  EXPECT_EQ(PrometheusWriter::FormatValue(0), "0");
  EXPECT_EQ(PrometheusWriter::FormatValue(42), "42");
  EXPECT_EQ(PrometheusWriter::FormatValue(-7), "-7");
  EXPECT_EQ(PrometheusWriter::FormatValue(1234567890123.0), "1234567890123");
  EXPECT_EQ(PrometheusWriter::FormatValue(0.25), "0.25");
  EXPECT_EQ(PrometheusWriter::FormatValue(50'000 * 1e-9), "5e-05");
  EXPECT_EQ(PrometheusWriter::FormatValue(0.1), "0.1");
  EXPECT_EQ(std::stod(PrometheusWriter::FormatValue(1.0 / 3)), 1.0 / 3);  // round-trips
  EXPECT_EQ(PrometheusWriter::FormatValue(NAN), "NaN");
  EXPECT_EQ(PrometheusWriter::FormatValue(INFINITY), "+Inf");
  EXPECT_EQ(PrometheusWriter::FormatValue(-INFINITY), "-Inf");
}

TEST(PrometheusWriter, EscapesLabelValuesAndHelp) {
  EXPECT_EQ(PrometheusWriter::EscapeLabelValue("plain"), "plain");
  EXPECT_EQ(PrometheusWriter::EscapeLabelValue("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
  // HELP escapes backslash and newline, not quotes.
  EXPECT_EQ(PrometheusWriter::EscapeHelp("say \"hi\"\\\n"), "say \"hi\"\\\\\\n");

  PrometheusWriter w;
  w.Family("x_info", PrometheusWriter::Type::kGauge, "line one\nline two");
  w.Sample("x_info", {{"path", "C:\\data"}, {"msg", "disk \"full\"\n"}}, 1);
  EXPECT_EQ(w.text(),
            "# HELP x_info line one\\nline two\n"
            "# TYPE x_info gauge\n"
            "x_info{path=\"C:\\\\data\",msg=\"disk \\\"full\\\"\\n\"} 1\n");
}

TEST(PrometheusWriter, FamiliesAndSamples) {
  PrometheusWriter w;
  w.Family("a_total", PrometheusWriter::Type::kCounter, "A counter.");
  w.Sample("a_total", 3);
  w.Sample("a_total", {{"type", "radius"}}, 4);
  w.Family("b", PrometheusWriter::Type::kGauge, "A gauge.");
  w.Sample("b", 0.5);
  EXPECT_EQ(w.text(),
            "# HELP a_total A counter.\n# TYPE a_total counter\na_total 3\n"
            "a_total{type=\"radius\"} 4\n"
            "# HELP b A gauge.\n# TYPE b gauge\nb 0.5\n");
}

TEST(Histogram, BucketsAreInclusiveUpperBounds) {
  Histogram h({10, 20, 30});
  for (uint64_t v : {0, 5, 10, 11, 20, 25, 31, 1000}) h.Observe(v);
  const HistogramSnapshot s = h.Snapshot();
  ASSERT_EQ(s.counts.size(), 4u);
  EXPECT_EQ(s.counts[0], 3u);  // 0, 5, 10
  EXPECT_EQ(s.counts[1], 2u);  // 11, 20
  EXPECT_EQ(s.counts[2], 1u);  // 25
  EXPECT_EQ(s.counts[3], 2u);  // 31, 1000
  EXPECT_EQ(s.count, 8u);
  EXPECT_EQ(s.sum, 0u + 5 + 10 + 11 + 20 + 25 + 31 + 1000);
}

TEST(Histogram, RendersCumulativeBucketsSumAndCount) {
  Histogram h({1'000'000, 10'000'000});  // 1 ms, 10 ms in ns
  h.Observe(500'000);
  h.Observe(2'000'000);
  h.Observe(3'000'000);
  h.Observe(50'000'000);
  PrometheusWriter w;
  w.Family("lat_seconds", PrometheusWriter::Type::kHistogram, "Latency.");
  w.Histogram("lat_seconds", {{"type", "radius"}}, h.Snapshot(), 1e-9);
  EXPECT_EQ(w.text(),
            "# HELP lat_seconds Latency.\n# TYPE lat_seconds histogram\n"
            "lat_seconds_bucket{type=\"radius\",le=\"0.001\"} 1\n"
            "lat_seconds_bucket{type=\"radius\",le=\"0.01\"} 3\n"
            "lat_seconds_bucket{type=\"radius\",le=\"+Inf\"} 4\n"
            "lat_seconds_sum{type=\"radius\"} 0.0555\n"
            "lat_seconds_count{type=\"radius\"} 4\n");
}

TEST(Histogram, LatencyBucketsCumulativeUnderConcurrentObservers) {
  Histogram h(Histogram::LatencyBoundsNs());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&h, t] {
      for (uint64_t i = 0; i < 20000; ++i) h.Observe((i * 7919 + t) % 20'000'000'000);
    });
  }
  // Render while they observe: every page must be cumulative and end at _count.
  for (int round = 0; round < 50; ++round) {
    PrometheusWriter w;
    w.Family("l_seconds", PrometheusWriter::Type::kHistogram, "x");
    w.Histogram("l_seconds", {}, h.Snapshot(), 1e-9);
    const auto m = ParseExposition(w.text());
    double prev = 0;
    for (uint64_t b : h.bounds()) {
      const double v =
          Value(m, "l_seconds_bucket{le=\"" +
                       PrometheusWriter::FormatValue(static_cast<double>(b) * 1e-9) + "\"}");
      EXPECT_GE(v, prev);
      prev = v;
    }
    EXPECT_GE(Value(m, "l_seconds_bucket{le=\"+Inf\"}"), prev);
    EXPECT_EQ(Value(m, "l_seconds_bucket{le=\"+Inf\"}"), Value(m, "l_seconds_count"));
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(h.Snapshot().count, 80000u);
}

// ---- Request metrics and readiness ----

TEST(RequestMetrics, CountsRequestsErrorsAndConnections) {
  RequestMetrics r;
  r.Observe(RequestType::kRadius, fb::ErrorCode_Ok, 80'000);
  r.Observe(RequestType::kRadius, fb::ErrorCode_InvalidArgument, 2'000'000);
  r.Observe(RequestType::kWrite, fb::ErrorCode_IOError, 1'000);
  r.Observe(RequestType::kInvalid, fb::ErrorCode_BadMessage, 1'000);
  r.Slow(RequestType::kRadius);
  r.Accepted();
  r.Accepted();
  r.Refused();
  r.Dropped(DropReason::kSlowReader);
  r.SetOpen(1);
  EXPECT_EQ(r.requests(RequestType::kRadius), 2u);
  EXPECT_EQ(r.errors(RequestType::kRadius), 1u);
  PrometheusWriter w;
  r.Render(&w);
  const auto m = ParseExposition(w.text());
  EXPECT_EQ(Value(m, "worlddb_requests_total{type=\"radius\"}"), 2);
  EXPECT_EQ(Value(m, "worlddb_requests_total{type=\"nearest\"}"), 0);
  EXPECT_EQ(Value(m, "worlddb_request_errors_total{type=\"radius\",code=\"InvalidArgument\"}"), 1);
  EXPECT_EQ(Value(m, "worlddb_request_errors_total{type=\"write\",code=\"IOError\"}"), 1);
  EXPECT_EQ(Value(m, "worlddb_request_errors_total{type=\"invalid\",code=\"BadMessage\"}"), 1);
  EXPECT_EQ(m.count("worlddb_request_errors_total{type=\"nearest\",code=\"InvalidArgument\"}"), 0u);
  EXPECT_EQ(Value(m, "worlddb_request_duration_seconds_bucket{type=\"radius\",le=\"0.0001\"}"), 1);
  EXPECT_EQ(Value(m, "worlddb_request_duration_seconds_bucket{type=\"radius\",le=\"0.0025\"}"), 2);
  EXPECT_EQ(Value(m, "worlddb_request_duration_seconds_count{type=\"radius\"}"), 2);
  EXPECT_NEAR(Value(m, "worlddb_request_duration_seconds_sum{type=\"radius\"}"), 0.00208, 1e-12);
  EXPECT_EQ(Value(m, "worlddb_slow_requests_total{type=\"radius\"}"), 1);
  EXPECT_EQ(Value(m, "worlddb_connections_accepted_total"), 2);
  EXPECT_EQ(Value(m, "worlddb_connections_refused_total"), 1);
  EXPECT_EQ(Value(m, "worlddb_connections_open"), 1);
  EXPECT_EQ(Value(m, "worlddb_connections_dropped_total{reason=\"slow_reader\"}"), 1);
  EXPECT_EQ(Value(m, "worlddb_connections_dropped_total{reason=\"idle\"}"), 0);
}

TEST(Readiness, RecoveredAndWritable) {
  EXPECT_TRUE(Readiness(true, Status::Ok()).ok());
  const Status recovering = Readiness(false, Status::Ok());
  EXPECT_EQ(recovering.code(), StatusCode::kUnavailable);
  EXPECT_NE(recovering.message().find("recovering"), std::string::npos);
  const Status stopped =
      Readiness(true, Status::IOError("wal-1.log at 4096: fdatasync: No space left on device"));
  EXPECT_EQ(stopped.code(), StatusCode::kUnavailable);
  EXPECT_NE(stopped.message().find("writes are stopped"), std::string::npos);
  EXPECT_NE(stopped.message().find("No space left on device"), std::string::npos);
}

TEST(DaemonMetrics, BeforeRecoveryNotReadyButRenders) {
  DaemonMetrics d;
  EXPECT_FALSE(d.Ready().ok());
  const auto m = ParseExposition(d.Render());
  EXPECT_EQ(Value(m, "worlddb_ready"), 0);
  EXPECT_EQ(Value(m, "worlddb_requests_total{type=\"radius\"}"), 0);
  EXPECT_EQ(m.count("worlddb_writable"), 0u);  // no world yet
}

// ---- The real daemon ----

// A temporary directory removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "worlddb_metrics_test.XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data()) ? tmpl : "";
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// A child process with its output in a file; SIGTERM, then SIGKILL, at the end.
class Child {
 public:
  void Spawn(std::vector<std::string> args, const fs::path& log) {
    log_ = log;
    pid_ = test_util::SpawnLogged(args, log);
    ASSERT_GE(pid_, 0);
  }
  // Waits until the log holds `marker`; returns the rest of that line.
  std::string WaitFor(const std::string& marker, double seconds = 20) {
    const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
    while (Clock::now() < deadline) {
      const std::string text = ReadFile(log_);
      const size_t at = text.find(marker);
      const size_t eol = at == std::string::npos ? at : text.find('\n', at);
      if (eol != std::string::npos)
        return text.substr(at + marker.size(), eol - at - marker.size());
      int status;
      if (pid_ > 0 && ::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        ADD_FAILURE() << "process exited:\n" << text;
        return "";
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ADD_FAILURE() << "no `" << marker << "` within " << seconds << " s:\n" << ReadFile(log_);
    return "";
  }
  // Waits for the process to exit by itself (then Stop()s it). Returns its
  // wait status, or -1 when it had to be stopped.
  int Wait(double seconds = 15) {
    const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
    int status = 0;
    while (pid_ > 0 && Clock::now() < deadline) {
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return status;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    Stop();
    return -1;
  }
  int Stop(double seconds = 15) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, SIGTERM);
    const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
    int status = 0;
    while (Clock::now() < deadline) {
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return status;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return -1;
  }
  ~Child() { Stop(); }
  std::string log() const { return ReadFile(log_); }

 private:
  pid_t pid_ = -1;
  fs::path log_;
};

uint16_t PortOf(const std::string& host_port) {
  const size_t colon = host_port.rfind(':');
  return static_cast<uint16_t>(std::stoi(host_port.substr(colon + 1)));
}

// worlddb on ephemeral ports (protocol and metrics).
struct Daemon {
  Child child;
  uint16_t port = 0, metrics_port = 0;

  void Start(const fs::path& dir, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {
        kServerBinary,           "--port",       "0",      "--metrics-port", "0", "--data-dir",
        (dir / "data").string(), "--durability", "always", "--shards",       "2"};
    args.insert(args.end(), extra.begin(), extra.end());
    child.Spawn(args, dir / "worlddb.log");
    // "metrics at http://127.0.0.1:PORT/metrics ..." comes first, then
    // "listening on 127.0.0.1:PORT".
    const std::string m = child.WaitFor("metrics at http://");
    if (m.empty()) return;
    metrics_port = PortOf(m.substr(0, m.find('/')));
    const std::string l = child.WaitFor("listening on ");
    if (!l.empty()) port = PortOf(l);
  }
};

std::string HttpGet(uint16_t port, const std::string& path, int* status = nullptr) {
  httplib::Client c("127.0.0.1", port);
  c.set_connection_timeout(5, 0);
  c.set_read_timeout(10, 0);
  auto res = c.Get(path.c_str());
  if (!res) {
    ADD_FAILURE() << "GET " << path << " on port " << port << " failed: " << to_string(res.error());
    if (status) *status = -1;
    return "";
  }
  if (status) *status = res->status;
  return res->body;
}

void Load(Client* c, uint64_t first_id, int n) {
  BatchBuilder b;
  for (int i = 0; i < n; ++i) {
    b.Upsert(first_id + static_cast<uint64_t>(i), "player", (i % 100) * 3.0, (i / 100) * 3.0);
  }
  auto applied = c->Apply(b.Finish());
  ASSERT_TRUE(applied.ok()) << applied.status().ToString();
}

TEST(MetricsDaemon, CountsWhatTheClientSent) {
  TempDir dir;
  Daemon d;
  ASSERT_NO_FATAL_FAILURE(d.Start(dir.path(), {"--slow-query-ms", "1"}));
  ASSERT_NE(d.port, 0);
  ASSERT_NE(d.metrics_port, 0);

  int status = 0;
  EXPECT_EQ(HttpGet(d.metrics_port, "/healthz", &status), "ok\n");
  EXPECT_EQ(status, 200);
  EXPECT_EQ(HttpGet(d.metrics_port, "/readyz", &status), "ready\n");
  EXPECT_EQ(status, 200);
  HttpGet(d.metrics_port, "/nope", &status);
  EXPECT_EQ(status, 404);

  auto client = Client::Connect("127.0.0.1", d.port);
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  Client& c = *client.value();
  ASSERT_TRUE(c.CreateKind({"player", {{"hp", ColumnType::kI32, int32_t{100}}}}).ok());
  ASSERT_TRUE(c.CreateKind({"npc", {}}).ok());
  constexpr int kPlayers = 50'000;
  ASSERT_NO_FATAL_FAILURE(Load(&c, 1, kPlayers / 2));
  ASSERT_NO_FATAL_FAILURE(Load(&c, 1 + kPlayers / 2, kPlayers / 2));
  {
    BatchBuilder b;
    b.Upsert(1'000'000, "npc", 5, 5).Upsert(1'000'001, "npc", 6, 6);
    ASSERT_TRUE(c.Apply(b.Finish()).ok());
  }
  constexpr int kRadius = 37, kNearest = 5, kRect = 3;
  for (int i = 0; i < kRadius; ++i) ASSERT_TRUE(c.Radius(i, i, 10).ok());
  for (int i = 0; i < kNearest; ++i) ASSERT_TRUE(c.Nearest(0, 0, 4).ok());
  for (int i = 0; i < kRect; ++i) ASSERT_TRUE(c.Rect({0, 0, 10, 10}).ok());
  // Errors: an unknown kind (InvalidArgument or NotFound), and a write that
  // moves an id that does not exist.
  Query bad = Query::Circle(0, 0, 10);
  bad.kind = "dragon";
  EXPECT_FALSE(c.Query(bad).ok());
  {
    BatchBuilder b;
    b.Move(999'999'999, 1, 1);
    EXPECT_FALSE(c.Apply(b.Finish()).ok());
  }
  // A slow one for the slow-query log: every player, ordered by distance.
  Query all = Query::Circle(0, 0, 1e6);
  all.kind = "player";
  all.order_by_distance = true;
  auto everything = c.Query(all);
  ASSERT_TRUE(everything.ok()) << everything.status().ToString();
  EXPECT_EQ(everything->rows(), static_cast<size_t>(kPlayers));

  const std::string page = HttpGet(d.metrics_port, "/metrics", &status);
  EXPECT_EQ(status, 200);
  const auto m = ParseExposition(page);
  EXPECT_EQ(Value(m, "worlddb_requests_total{type=\"radius\"}"), kRadius + 2);  // + bad + all
  EXPECT_EQ(Value(m, "worlddb_requests_total{type=\"nearest\"}"), kNearest);
  EXPECT_EQ(Value(m, "worlddb_requests_total{type=\"rectangle\"}"), kRect);
  EXPECT_EQ(Value(m, "worlddb_requests_total{type=\"hello\"}"), 1);
  EXPECT_EQ(Value(m, "worlddb_requests_total{type=\"schema_change\"}"), 2);
  EXPECT_EQ(Value(m, "worlddb_requests_total{type=\"write\"}"), 4);
  EXPECT_EQ(Value(m, "worlddb_request_duration_seconds_count{type=\"radius\"}"), kRadius + 2);
  EXPECT_GT(Value(m, "worlddb_request_duration_seconds_sum{type=\"radius\"}"), 0);
  double radius_errors = 0, write_errors = 0;
  for (const auto& [series, v] : m) {
    if (series.rfind("worlddb_request_errors_total{type=\"radius\"", 0) == 0) radius_errors += v;
    if (series.rfind("worlddb_request_errors_total{type=\"write\"", 0) == 0) write_errors += v;
  }
  EXPECT_EQ(radius_errors, 1);
  EXPECT_EQ(write_errors, 1);
  EXPECT_EQ(Value(m, "worlddb_entities{kind=\"player\"}"), kPlayers);
  EXPECT_EQ(Value(m, "worlddb_entities{kind=\"npc\"}"), 2);
  EXPECT_EQ(Value(m, "worlddb_batches_applied_total"), 3);
  EXPECT_EQ(Value(m, "worlddb_batches_refused_total"), 1);
  EXPECT_EQ(Value(m, "worlddb_rows_applied_total"), kPlayers + 2);
  EXPECT_EQ(Value(m, "worlddb_connections_open"), 1);
  EXPECT_EQ(Value(m, "worlddb_connections_accepted_total"), 1);
  EXPECT_EQ(Value(m, "worlddb_writable"), 1);
  EXPECT_EQ(Value(m, "worlddb_ready"), 1);
  EXPECT_GE(Value(m, "worlddb_recovery_seconds"), 0);
  // The log: 5 records (2 schema changes, 3 batches), each group synced.
  EXPECT_EQ(Value(m, "worlddb_log_records_total"), 5);
  EXPECT_GT(Value(m, "worlddb_log_bytes_total"), 0);
  EXPECT_GE(Value(m, "worlddb_log_fsync_seconds_count"), 1);
  EXPECT_EQ(Value(m, "worlddb_log_fsync_seconds_bucket{le=\"+Inf\"}"),
            Value(m, "worlddb_log_fsync_seconds_count"));
  EXPECT_EQ(Value(m, "worlddb_log_group_commit_records_sum"), 5);
  // Shards: both handled messages and were busy for some time.
  for (const char* shard : {"0", "1"}) {
    const std::string l = std::string("{shard=\"") + shard + "\"}";
    EXPECT_GT(Value(m, "worlddb_shard_messages_total" + l), 0);
    EXPECT_GT(Value(m, "worlddb_shard_busy_seconds_total" + l), 0);
    EXPECT_GE(Value(m, "worlddb_shard_queue_depth" + l), 0);
  }
#ifdef WORLDDB_HAVE_JEMALLOC
  EXPECT_GT(Value(m, "worlddb_memory_allocated_bytes"), 0);
  EXPECT_GE(Value(m, "worlddb_memory_active_bytes"), Value(m, "worlddb_memory_allocated_bytes"));
  EXPECT_GE(Value(m, "worlddb_memory_fragmentation_ratio"), 0);
#endif
  // No snapshot yet: its age counts from the start.
  EXPECT_GE(Value(m, "worlddb_snapshot_age_seconds"), 0);
  EXPECT_EQ(m.count("worlddb_snapshot_size_bytes"), 0u);
  auto snap = c.Snapshot();
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  const auto after = ParseExposition(HttpGet(d.metrics_port, "/metrics"));
  EXPECT_EQ(Value(after, "worlddb_snapshot_size_bytes"), static_cast<double>(snap->bytes));
  EXPECT_LT(Value(after, "worlddb_snapshot_age_seconds"), 60);
  EXPECT_GT(Value(after, "worlddb_snapshot_duration_seconds"), 0);
  EXPECT_EQ(Value(after, "worlddb_snapshot_failing"), 0);
  EXPECT_EQ(Value(after, "worlddb_requests_total{type=\"snapshot\"}"), 1);

  // Every family on the page is in docs/operations.md's reference, and every
  // worlddb_* name the docs, the alert rules and the dashboard use is on the
  // page (worlddb_writes_stopped_info only appears while writes are refused:
  // ReadyzFailsWhenTheDiskIsFull sees it).
  {
    const std::string page_text = HttpGet(d.metrics_port, "/metrics");
    std::set<std::string> families;
    static const std::regex kType(R"(# TYPE (\S+) )");
    for (auto it = std::sregex_iterator(page_text.begin(), page_text.end(), kType);
         it != std::sregex_iterator(); ++it) {
      families.insert((*it)[1].str());
    }
    families.insert("worlddb_writes_stopped_info");
#ifndef WORLDDB_HAVE_JEMALLOC
    // Sanitizer builds run on the sanitizer's allocator: no jemalloc figures.
    for (const char* family :
         {"worlddb_memory_allocated_bytes", "worlddb_memory_active_bytes",
          "worlddb_memory_resident_bytes", "worlddb_memory_fragmentation_ratio"}) {
      families.insert(family);
    }
#endif
    const std::string ops = ReadFile(kSourceDir / "docs/operations.md");
    const size_t ref = ops.find("### Metric reference");
    ASSERT_NE(ref, std::string::npos);
    const std::string reference = ops.substr(ref, ops.find("\n## ", ref) - ref);
    for (const std::string& f : families) {
      EXPECT_NE(reference.find("`" + f + "`"), std::string::npos)
          << f << " is not in docs/operations.md's metric reference";
    }
    static const std::regex kName(R"(worlddb_[a-z_]+)");
    for (const char* file : {"docs/operations.md", "tools/deploy/worlddb-alerts.yml",
                             "tools/deploy/worlddb-grafana-dashboard.json"}) {
      const std::string text = ReadFile(kSourceDir / file);
      ASSERT_FALSE(text.empty()) << file;
      for (auto it = std::sregex_iterator(text.begin(), text.end(), kName);
           it != std::sregex_iterator(); ++it) {
        std::string name = (*it)[0].str();
        for (const std::string suffix : {"_bucket", "_sum", "_count"}) {
          if (!families.count(name) && name.size() > suffix.size() &&
              name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
            name.resize(name.size() - suffix.size());
          }
        }
        // Not metrics: file and binary names (net/worlddb_main.cc, worlddb_demo).
        const size_t end = static_cast<size_t>(it->position(0) + it->length(0));
        if ((end < text.size() && text[end] == '.') || name == "worlddb_demo") continue;
        EXPECT_TRUE(families.count(name)) << file << " names " << (*it)[0] << ", not on the page";
      }
    }
  }

  // The slow-query log: the ordered query over every player took more than
  // 1 ms and was logged with its parameters.
  EXPECT_GE(Value(after, "worlddb_slow_requests_total{type=\"radius\"}"), 1);
  const std::string log = d.child.log();
  EXPECT_NE(log.find("warning slow request: radius took"), std::string::npos) << log;
  EXPECT_NE(log.find("radius 1000000 ordered kind player, 0 predicates, 0 columns, 50000 rows"),
            std::string::npos)
      << log;

  client.value().reset();
  EXPECT_EQ(d.child.Stop(), 0);
}

TEST(MetricsDaemon, OffWithMinusOneAndBadPortRefused) {
  TempDir dir;
  Child c;
  c.Spawn({kServerBinary, "--port", "0", "--metrics-port", "-1", "--data-dir",
           (dir.path() / "data").string(), "--durability", "none"},
          dir.path() / "off.log");
  EXPECT_FALSE(c.WaitFor("listening on ").empty());
  EXPECT_EQ(c.log().find("metrics at"), std::string::npos) << c.log();
  EXPECT_EQ(c.Stop(), 0);

  Child bad;
  bad.Spawn(
      {kServerBinary, "--metrics-port", "70000", "--data-dir", (dir.path() / "data").string()},
      dir.path() / "bad.log");
  // Exits 2 naming the flag.
  const int bad_status = bad.Wait();
  EXPECT_TRUE(WIFEXITED(bad_status) && WEXITSTATUS(bad_status) == 2) << bad_status;
  EXPECT_NE(bad.log().find("--metrics-port"), std::string::npos) << bad.log();

  // A malformed address is refused the same way; a port in use is not
  // (PortInUseServesWithoutMetrics, below).
  Child bad_addr;
  bad_addr.Spawn({kServerBinary, "--metrics-listen", "not-an-address", "--data-dir",
                  (dir.path() / "data").string()},
                 dir.path() / "bad_addr.log");
  const int bad_addr_status = bad_addr.Wait();
  EXPECT_TRUE(WIFEXITED(bad_addr_status) && WEXITSTATUS(bad_addr_status) == 2) << bad_addr_status;
  EXPECT_NE(bad_addr.log().find("--metrics-listen not-an-address"), std::string::npos)
      << bad_addr.log();
}

TEST(MetricsDaemon, PortInUseServesWithoutMetrics) {
  TempDir dir;
  // Hold a port, then ask worlddb for it.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  Child c;
  c.Spawn({kServerBinary, "--port", "0", "--metrics-port", std::to_string(ntohs(a.sin_port)),
           "--data-dir", (dir.path() / "data").string(), "--durability", "none"},
          dir.path() / "busy.log");
  EXPECT_FALSE(c.WaitFor("listening on ").empty());
  EXPECT_NE(c.log().find("error serving without metrics: cannot listen for metrics"),
            std::string::npos)
      << c.log();
  EXPECT_EQ(c.Stop(), 0);
  ::close(fd);
}

// Writes stopped: the data directory on a 1 MiB tmpfs in a mount namespace
// of the server's own (so nothing is left mounted if the test dies) fills
// up; the log fails, /readyz answers 503 with the log's error.
TEST(MetricsDaemon, ReadyzFailsWhenTheDiskIsFull) {
  TempDir dir;
  const fs::path mnt = dir.path() / "small";
  fs::create_directories(mnt);
  const std::string probe =
      "unshare -m --propagation private sh -c 'mount -t tmpfs -o size=1m "
      "tmpfs " +
      mnt.string() + "' > /dev/null 2>&1";
  if (std::system(probe.c_str()) != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs in a new mount namespace (needs root / CAP_SYS_ADMIN)";
  }
  Daemon d;
  d.child.Spawn({"/usr/bin/unshare", "-m", "--propagation", "private", "/bin/sh", "-c",
                 "mount -t tmpfs -o size=1m tmpfs " + mnt.string() + " && exec " + kServerBinary +
                     " --port 0 --metrics-port 0 --data-dir " + (mnt / "data").string() +
                     " --durability always --shards 2 --segment-bytes 65536"
                     " --snapshot-interval-s 0 --snapshot-log-bytes 0"},
                dir.path() / "worlddb.log");
  const std::string m = d.child.WaitFor("metrics at http://");
  ASSERT_FALSE(m.empty());
  d.metrics_port = PortOf(m.substr(0, m.find('/')));
  const std::string l = d.child.WaitFor("listening on ");
  ASSERT_FALSE(l.empty());
  d.port = PortOf(l);
  int status = 0;
  EXPECT_EQ(HttpGet(d.metrics_port, "/readyz", &status), "ready\n");
  EXPECT_EQ(status, 200);

  auto client = Client::Connect("127.0.0.1", d.port);
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  Client& c = *client.value();
  ASSERT_TRUE(c.CreateKind({"player", {}}).ok());
  Status failed;
  for (int i = 0; i < 400 && failed.ok(); ++i) {
    BatchBuilder b;
    for (int j = 0; j < 500; ++j) b.Upsert(static_cast<uint64_t>(i) * 500 + j + 1, "player", j, i);
    auto r = c.Apply(b.Finish());
    if (!r.ok()) failed = r.status();
  }
  ASSERT_FALSE(failed.ok()) << "1 MiB never filled up";

  const std::string body = HttpGet(d.metrics_port, "/readyz", &status);
  EXPECT_EQ(status, 503);
  EXPECT_NE(body.find("writes are stopped"), std::string::npos) << body;
  const auto metrics = ParseExposition(HttpGet(d.metrics_port, "/metrics"));
  EXPECT_EQ(Value(metrics, "worlddb_writable"), 0);
  EXPECT_EQ(Value(metrics, "worlddb_ready"), 0);
  double write_errors = 0, stopped_info = 0;
  for (const auto& [series, v] : metrics) {
    if (series.rfind("worlddb_request_errors_total{type=\"write\"", 0) == 0) write_errors += v;
    if (series.rfind("worlddb_writes_stopped_info{", 0) == 0) stopped_info += v;
  }
  EXPECT_GE(write_errors, 1);
  EXPECT_EQ(stopped_info, 1);
  // Still alive.
  EXPECT_EQ(HttpGet(d.metrics_port, "/healthz", &status), "ok\n");
  client.value().reset();
  d.child.Stop();  // the final flush fails too; the exit code is not the point
}

// ---- Prometheus ----

uint16_t FreeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// The value of an instant query's first result, or NaN while there is none.
double PromQuery(uint16_t port, const std::string& query) {
  httplib::Client c("127.0.0.1", port);
  c.set_connection_timeout(2, 0);
  c.set_read_timeout(5, 0);
  auto res = c.Get("/api/v1/query", httplib::Params{{"query", query}}, httplib::Headers{});
  if (!res || res->status != 200) return NAN;
  static const std::regex kValue(R"re("value":\[[0-9.eE+-]+,"([^"]+)"\])re");
  std::smatch m;
  if (!std::regex_search(res->body, m, kValue)) return NAN;
  return std::stod(m[1]);
}

// Asks until `pred` holds for the value (bounded); returns the last value.
template <class Pred>
double PromWait(uint16_t port, const std::string& query, Pred pred, double seconds = 30) {
  const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
  double v = NAN;
  while (Clock::now() < deadline) {
    v = PromQuery(port, query);
    if (!std::isnan(v) && pred(v)) return v;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  ADD_FAILURE() << "Prometheus: `" << query << "` did not reach the expected value within "
                << seconds << " s (last: " << v << ")";
  return v;
}

TEST(Prometheus, ScrapesTheDaemon) {
  if (::access(kPrometheus, X_OK) != 0) {
    GTEST_SKIP() << kPrometheus
                 << " is missing: install Debian's `prometheus` package "
                    "(tools/install-deps.sh does) to run this test";
  }
  TempDir dir;
  Daemon d;
  ASSERT_NO_FATAL_FAILURE(d.Start(dir.path()));
  ASSERT_NE(d.metrics_port, 0);

  const uint16_t prom_port = FreeLoopbackPort();
  const fs::path config = dir.path() / "prometheus.yml";
  {
    std::ofstream f(config);
    f << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
      << "scrape_configs:\n  - job_name: worlddb\n    static_configs:\n"
      << "      - targets: ['127.0.0.1:" << d.metrics_port << "']\n";
  }
  Child prom;
  prom.Spawn({kPrometheus, "--config.file=" + config.string(),
              "--storage.tsdb.path=" + (dir.path() / "tsdb").string(),
              "--web.listen-address=127.0.0.1:" + std::to_string(prom_port),
              "--storage.tsdb.retention.time=1h"},
             dir.path() / "prometheus.log");
  prom.WaitFor("Server is ready to receive web requests", 30);

  auto client = Client::Connect("127.0.0.1", d.port);
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  Client& c = *client.value();
  ASSERT_TRUE(c.CreateKind({"player", {}}).ok());
  constexpr int kPlayers = 3000, kQueries = 200;
  ASSERT_NO_FATAL_FAILURE(Load(&c, 1, kPlayers));
  for (int i = 0; i < kQueries; ++i) ASSERT_TRUE(c.Radius(i, i, 20).ok());

  EXPECT_EQ(PromWait(prom_port, "up{job=\"worlddb\"}", [](double v) { return v == 1; }), 1);
  EXPECT_EQ(PromWait(prom_port, "worlddb_requests_total{type=\"radius\"}",
                     [](double v) { return v >= kQueries; }),
            kQueries);
  EXPECT_EQ(PromWait(prom_port, "sum(worlddb_entities)", [](double v) { return v == kPlayers; }),
            kPlayers);
  EXPECT_EQ(PromWait(prom_port, "worlddb_writable", [](double v) { return v == 1; }), 1);
  // A quantile over the histogram, as the alert rules compute it.
  const double p99 = PromWait(prom_port,
                              "histogram_quantile(0.99, sum by (le) "
                              "(worlddb_request_duration_seconds_bucket{type=\"radius\"}))",
                              [](double v) { return v > 0; });
  EXPECT_GT(p99, 0);
  EXPECT_LT(p99, 10);
  const double fsyncs =
      PromWait(prom_port, "worlddb_log_fsync_seconds_count", [](double v) { return v >= 1; });
  EXPECT_GE(fsyncs, 1);

  EXPECT_EQ(prom.Stop(), 0) << prom.log();
  client.value().reset();
  EXPECT_EQ(d.child.Stop(), 0);
}

TEST(Prometheus, AlertRulesPassPromtool) {
  if (::access(kPromtool, X_OK) != 0) {
    GTEST_SKIP() << kPromtool << " is missing: install Debian's `prometheus` package";
  }
  const fs::path rules = kSourceDir / "tools/deploy/worlddb-alerts.yml";
  ASSERT_TRUE(fs::exists(rules)) << rules;
  TempDir dir;
  const std::string cmd = std::string(kPromtool) + " check rules " + rules.string() + " > " +
                          (dir.path() / "out.txt").string() + " 2>&1";
  const int rc = std::system(cmd.c_str());
  EXPECT_EQ(rc, 0) << ReadFile(dir.path() / "out.txt");
}

}  // namespace
}  // namespace worlddb::net
