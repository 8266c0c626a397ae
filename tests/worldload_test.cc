// worldload (tools/worldload.h, docs/worldload.md): the latency histogram
// against a brute-force sorted reference, the Redis coordinate mapping, and
// the binary itself run briefly against a real `worlddb` (ephemeral port,
// fresh data directory) and, where redis-server is installed, against a
// throw-away Redis (ephemeral port, persistence off), checking its JSON
// report: operations counted, no errors, no mismatches, and that a
// deliberately wrong model is caught. Every process started here is killed at
// the end of its test (and by the kernel if the test dies: PR_SET_PDEATHSIG).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "gtest/gtest.h"
#include "net/client.h"
#include "tests/child_process.h"
#include "tools/latency_histogram.h"
#include "tools/redis_geo.h"

namespace worlddb::load {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

const std::string kServerBinary = std::string(WORLDDB_BINARY_DIR) + "/net/worlddb";
const std::string kWorldload = std::string(WORLDDB_BINARY_DIR) + "/tools/worldload";

// ---- LatencyHistogram ----

// The exact q-quantile as the histogram defines it: the ceil(q*n)-th smallest.
uint64_t Reference(const std::vector<uint64_t>& sorted, double q) {
  if (q <= 0) return sorted.front();
  const size_t rank =
      std::max<size_t>(1, static_cast<size_t>(std::ceil(q * double(sorted.size()))));
  return sorted[std::min(rank, sorted.size()) - 1];
}

TEST(LatencyHistogram, BucketsTileTheRange) {
  for (size_t b = 0; b + 1 < LatencyHistogram::kBuckets; ++b) {
    ASSERT_LE(LatencyHistogram::BucketLow(b), LatencyHistogram::BucketHigh(b)) << b;
    ASSERT_EQ(LatencyHistogram::BucketHigh(b) + 1, LatencyHistogram::BucketLow(b + 1)) << b;
  }
  EXPECT_EQ(LatencyHistogram::BucketLow(0), 0u);
  EXPECT_EQ(LatencyHistogram::BucketHigh(LatencyHistogram::kBuckets - 1), UINT64_MAX);
  EXPECT_EQ(LatencyHistogram::BucketOf(UINT64_MAX), LatencyHistogram::kBuckets - 1);
  std::mt19937_64 rng(7);
  for (int i = 0; i < 100000; ++i) {
    const uint64_t v = rng() >> (rng() % 64);
    const size_t b = LatencyHistogram::BucketOf(v);
    ASSERT_LE(LatencyHistogram::BucketLow(b), v);
    ASSERT_GE(LatencyHistogram::BucketHigh(b), v);
    // Width at most 1/128 of the lower bound (exact below 256).
    const uint64_t lo = LatencyHistogram::BucketLow(b), hi = LatencyHistogram::BucketHigh(b);
    ASSERT_LE(hi - lo, lo / LatencyHistogram::kSub) << v;
  }
}

TEST(LatencyHistogram, PercentilesMatchSortedReference) {
  std::mt19937_64 rng(20240601);
  for (int round = 0; round < 20; ++round) {
    const size_t n = 1 + rng() % 50000;
    std::vector<uint64_t> values;
    LatencyHistogram h;
    // Log-uniform from 1 ns to ~100 s, with a cluster of exact small values
    // and a heavy tail, like real latencies.
    std::uniform_real_distribution<double> exp10(0, 11);
    for (size_t i = 0; i < n; ++i) {
      uint64_t v;
      switch (rng() % 4) {
        case 0:
          v = rng() % 300;
          break;
        case 1:
          v = 50000 + rng() % 1000;
          break;
        default:
          v = static_cast<uint64_t>(std::pow(10.0, exp10(rng)));
      }
      values.push_back(v);
      h.Record(v);
    }
    std::sort(values.begin(), values.end());
    ASSERT_EQ(h.count(), n);
    EXPECT_EQ(h.min(), values.front());
    EXPECT_EQ(h.max(), values.back());
    for (double q : {0.0, 0.001, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999, 1.0}) {
      const uint64_t want = Reference(values, q);
      const uint64_t got = h.Percentile(q);
      EXPECT_GE(got, want) << "q=" << q << " n=" << n;
      EXPECT_LE(got, want + want / LatencyHistogram::kSub + 1) << "q=" << q << " n=" << n;
    }
  }
}

TEST(LatencyHistogram, MergeEqualsOneHistogram) {
  std::mt19937_64 rng(3);
  LatencyHistogram a, b, all;
  for (int i = 0; i < 20000; ++i) {
    const uint64_t v = rng() % 10000000;
    (i % 3 ? a : b).Record(v);
    all.Record(v);
  }
  a.Merge(b);
  for (double q : {0.5, 0.9, 0.99, 0.999}) EXPECT_EQ(a.Percentile(q), all.Percentile(q));
  EXPECT_EQ(a.count(), all.count());
  EXPECT_EQ(a.max(), all.max());
  a.Reset();
  EXPECT_EQ(a.count(), 0u);
  EXPECT_EQ(a.Percentile(0.99), 0u);
}

// ---- RedisGeo ----

TEST(RedisGeo, MetresToDegreesUsesRedisSphere) {
  // aoi.md §7: deg = m * 180 / (pi * 6372797.560856) = m / 111226.29.
  EXPECT_NEAR(RedisGeo::ToMetres(1.0), 111226.3, 0.005);
  EXPECT_NEAR(RedisGeo::ToDegrees(10000), 0.0899, 0.0001);
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<double> u(0, 10000);
  for (int i = 0; i < 1000; ++i) {
    const double m = u(rng);
    EXPECT_NEAR(RedisGeo::ToMetres(RedisGeo::ToDegrees(m)), m, 1e-9);
  }
}

TEST(RedisGeo, HaversineEqualsPlanarDistanceInTheWorld) {
  // Near the equator Redis' great-circle distance is the planar one to
  // 1.2e-6 relative (cos(0.09 deg) = 0.9999988).
  std::mt19937_64 rng(2);
  std::uniform_real_distribution<double> u(0, 10000), d(-200, 200);
  for (int i = 0; i < 10000; ++i) {
    const double x1 = u(rng), y1 = u(rng);
    const double x2 = std::clamp(x1 + d(rng), 0.0, 10000.0),
                 y2 = std::clamp(y1 + d(rng), 0.0, 10000.0);
    const double planar = std::hypot(x2 - x1, y2 - y1);
    const double h = RedisGeo::HaversineMetres(RedisGeo::ToDegrees(x1), RedisGeo::ToDegrees(y1),
                                               RedisGeo::ToDegrees(x2), RedisGeo::ToDegrees(y2));
    EXPECT_NEAR(h, planar, 1.3e-6 * planar + 1e-9) << x1 << "," << y1 << " " << x2 << "," << y2;
  }
  // The tolerance the checks use covers the stored error (half a 52-bit cell
  // diagonal) plus the haversine difference at the far side of the world.
  const double cell_lon = 360.0 / double(1 << 26) / RedisGeo::kDegreesPerMetre;
  const double cell_lat = 180.0 / double(1 << 26) / RedisGeo::kDegreesPerMetre;
  EXPECT_LE(std::hypot(cell_lon, cell_lat) / 2, RedisGeo::kMaxStoredError);
  EXPECT_LE(RedisGeo::kMaxStoredError + 1.3e-6 * 14143, RedisGeo::kCompareTolerance);
}

// ---- Processes ----

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "worldload_test.XXXXXX").string();
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

// Waits up to `seconds`; kills on timeout. Exit code, or -1.
int WaitExit(pid_t pid, double seconds) {
  const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
  int status = 0;
  while (Clock::now() < deadline) {
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (r < 0) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  return -1;
}

// A child process killed when it goes out of scope.
class Child {
 public:
  Child() = default;
  explicit Child(pid_t pid) : pid_(pid) {}
  ~Child() { Stop(); }
  void Stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    if (WaitExit(pid_, 10) == -1) ::kill(pid_, SIGKILL);
    pid_ = -1;
  }
  void Reset(pid_t pid) {
    Stop();
    pid_ = pid;
  }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

// worlddb with --port 0, durability none, data in `dir`; returns its port.
uint16_t StartWorlddb(const fs::path& dir, Child* child) {
  const fs::path log = dir / "worlddb.log";
  child->Reset(
      test_util::SpawnLogged({kServerBinary, "--port", "0", "--listen", "127.0.0.1", "--data-dir",
                              (dir / "data").string(), "--durability", "none", "--shards", "2"},
                             log));
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  while (Clock::now() < deadline) {
    const std::string text = ReadFile(log);
    const size_t at = text.find("listening on ");
    const size_t eol = at == std::string::npos ? at : text.find('\n', at);
    if (eol != std::string::npos) {
      const std::string addr = text.substr(at, eol - at);
      return static_cast<uint16_t>(std::stoi(addr.substr(addr.rfind(':') + 1)));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ADD_FAILURE() << "worlddb did not start:\n" << ReadFile(log);
  return 0;
}

// Runs worldload with `args` and --json FILE; returns its exit code and the JSON.
int RunWorldload(const fs::path& dir, std::vector<std::string> args, std::string* json,
                 std::string* output) {
  const fs::path json_path = dir / "report.json", log = dir / "worldload.log";
  args.insert(args.begin(), kWorldload);
  args.insert(args.end(), {"--json", json_path.string(), "-q"});
  const int rc = WaitExit(test_util::SpawnLogged(args, log), 60);
  *json = ReadFile(json_path);
  *output = ReadFile(log);
  return rc;
}

// The number after the first occurrence of `key` (a unique JSON fragment such
// as "\"mismatches\": " or "\"moves\": {\"items\": ").
double JsonNumber(const std::string& json, const std::string& key) {
  const size_t at = json.find(key);
  if (at == std::string::npos) {
    ADD_FAILURE() << "no " << key << " in:\n" << json;
    return -1;
  }
  return std::strtod(json.c_str() + at + key.size(), nullptr);
}

// Small worlds: 5,000 entities (500 players) and a large radius, so queries
// return rows and every query is checked.
const std::vector<std::string> kSmall = {
    "-n", "5000",           "-p", "500", "-r", "300", "-z", "3", "--check-fraction",
    "1",  "--check-budget", "1"};

// Fixed-rate runs count exact totals, so no tick may be skipped, however slow
// the build (sanitizers) or the machine: the run then just takes longer.
const char* const kNoSkip = "--max-ticks-behind";

std::vector<std::string> With(std::vector<std::string> extra) {
  std::vector<std::string> a = kSmall;
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

// No request failed and every checked answer matched the model.
void ExpectNoErrors(const std::string& json, const std::string& output) {
  EXPECT_EQ(JsonNumber(json, "\"errors\": "), 0) << output;
  EXPECT_EQ(JsonNumber(json, "\"mismatches\": "), 0) << output;
}

void ExpectClean(const std::string& json, const std::string& output, double ticks) {
  ExpectNoErrors(json, output);
  // Every entity moves every tick (move fraction 1); one query per player per tick.
  EXPECT_EQ(JsonNumber(json, "\"moves\": {\"items\": "), 5000 * ticks) << output;
  EXPECT_EQ(JsonNumber(json, "\"aoi\": {\"items\": ") > 0, true) << output;
  EXPECT_EQ(JsonNumber(json, "\"checks\": "), 500 * ticks) << output;
  EXPECT_GT(JsonNumber(json, "\"p99\": "), 0) << output;
}

class WorldloadWorlddb : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(kWorldload)) << kWorldload << " is not built (target worldload)";
    port_ = StartWorlddb(dir_.path(), &server_);
    ASSERT_NE(port_, 0);
  }
  std::string Target() const { return "worlddb://127.0.0.1:" + std::to_string(port_); }

  TempDir dir_;
  Child server_;
  uint16_t port_ = 0;
};

TEST_F(WorldloadWorlddb, FixedRateCountsEverythingAndMatchesTheModel) {
  std::string json, out;
  const int rc = RunWorldload(
      dir_.path(), With({"--target", Target(), "--ticks", "10", "-t", "20", kNoSkip, "1000"}),
      &json, &out);
  EXPECT_EQ(rc, 0) << out;
  ExpectClean(json, out, 10);
  EXPECT_EQ(JsonNumber(json, "\"zone_ticks_completed\": "), 30) << out;
  EXPECT_EQ(JsonNumber(json, "\"zone_ticks_missed\": "), 0) << out;
  EXPECT_NE(json.find("\"mode\": \"fixed\""), std::string::npos);
}

// Each entity moves with probability --move-fraction in each tick, on its
// own: 50,000 entity-ticks at 0.25 move 12,500 times in the mean (sd ~97),
// and the model stays in step with the server.
TEST_F(WorldloadWorlddb, MoveFractionMovesThatShareOfEntities) {
  std::string json, out;
  const int rc = RunWorldload(dir_.path(),
                              With({"--target", Target(), "--ticks", "10", "-t", "20", kNoSkip,
                                    "1000", "--move-fraction", "0.25"}),
                              &json, &out);
  EXPECT_EQ(rc, 0) << out;
  ExpectNoErrors(json, out);
  EXPECT_EQ(JsonNumber(json, "\"checks\": "), 500 * 10) << out;
  EXPECT_NEAR(JsonNumber(json, "\"moves\": {\"items\": "), 12500, 500) << out;
  EXPECT_EQ(JsonNumber(json, "\"zone_ticks_completed\": "), 30) << out;
}

// --move-fraction 0: nothing moves, and every tick's queries still run and
// complete the tick.
TEST_F(WorldloadWorlddb, MoveFractionZeroMovesNothing) {
  std::string json, out;
  const int rc = RunWorldload(dir_.path(),
                              With({"--target", Target(), "--ticks", "5", "-t", "20", kNoSkip,
                                    "1000", "--move-fraction", "0"}),
                              &json, &out);
  EXPECT_EQ(rc, 0) << out;
  ExpectNoErrors(json, out);
  EXPECT_EQ(JsonNumber(json, "\"moves\": {\"items\": "), 0) << out;
  EXPECT_EQ(JsonNumber(json, "\"checks\": "), 500 * 5) << out;
  EXPECT_EQ(JsonNumber(json, "\"zone_ticks_completed\": "), 15) << out;
}

// Requests of one type the server at `port` answered (its stats).
uint64_t ServerRequests(uint16_t port, const std::string& type) {
  auto c = net::Client::Connect("127.0.0.1", port);
  if (!c.ok()) {
    ADD_FAILURE() << c.status().ToString();
    return 0;
  }
  auto stats = (*c)->Stats();
  if (!stats.ok()) {
    ADD_FAILURE() << stats.status().ToString();
    return 0;
  }
  for (const auto& t : stats->requests)
    if (t.type == type) return t.requests;
  return 0;
}

TEST_F(WorldloadWorlddb, MaxThroughputRadiusAndKnnMatchTheModel) {
  std::string json, out;
  int rc = RunWorldload(dir_.path(),
                        With({"--target", Target(), "--ticks", "4", "--mode", "max", "--columns",
                              "hp,level,speed,name"}),
                        &json, &out);
  EXPECT_EQ(rc, 0) << out;
  ExpectClean(json, out, 4);
  EXPECT_NE(json.find("\"mode\": \"max\""), std::string::npos);
  // The queries went out in batches (the default --aoi-batch), and every
  // batch's rows were checked above.
  EXPECT_GT(ServerRequests(port_, "query_batch"), 0u);
  // kNN on a fresh server (worldload needs one without its kinds).
  Child second;
  TempDir dir2;
  const uint16_t port2 = StartWorlddb(dir2.path(), &second);
  rc = RunWorldload(dir2.path(),
                    With({"--target", "worlddb://127.0.0.1:" + std::to_string(port2), "--ticks",
                          "4", "--mode", "max", "--knn", "8", "--kind", "npc"}),
                    &json, &out);
  EXPECT_EQ(rc, 0) << out;
  ExpectClean(json, out, 4);
  EXPECT_EQ(JsonNumber(json, "\"aoi\": {\"items\": "), 500 * 4 * 8) << out;
  // One request per query.
  Child third;
  TempDir dir3;
  const uint16_t port3 = StartWorlddb(dir3.path(), &third);
  rc = RunWorldload(dir3.path(),
                    With({"--target", "worlddb://127.0.0.1:" + std::to_string(port3), "--ticks",
                          "2", "--mode", "max", "--aoi-batch", "1"}),
                    &json, &out);
  EXPECT_EQ(rc, 0) << out;
  ExpectClean(json, out, 2);
  EXPECT_EQ(ServerRequests(port3, "query_batch"), 0u);
  EXPECT_EQ(ServerRequests(port3, "radius"), 500u * 2);
}

TEST_F(WorldloadWorlddb, WrongModelIsDetected) {
  std::string json, out;
  const int rc = RunWorldload(
      dir_.path(),
      With({"--target", Target(), "--ticks", "5", "-t", "20", "--test-corrupt-model", "2"}), &json,
      &out);
  EXPECT_EQ(rc, 1) << out;  // completed, with mismatches
  EXPECT_GT(JsonNumber(json, "\"mismatches\": "), 0) << out;
  EXPECT_EQ(JsonNumber(json, "\"errors\": "), 0) << out;
  EXPECT_NE(json.find("mismatch_samples\": [\""), std::string::npos) << json;
  // And in rows read from batch replies (max mode batches the queries).
  Child second;
  TempDir dir2;
  const uint16_t port2 = StartWorlddb(dir2.path(), &second);
  const int rc2 = RunWorldload(dir2.path(),
                               With({"--target", "worlddb://127.0.0.1:" + std::to_string(port2),
                                     "--ticks", "2", "--mode", "max", "--test-corrupt-model", "2"}),
                               &json, &out);
  EXPECT_EQ(rc2, 1) << out;
  EXPECT_GT(JsonNumber(json, "\"mismatches\": "), 0) << out;
  EXPECT_EQ(JsonNumber(json, "\"errors\": "), 0) << out;
}

TEST_F(WorldloadWorlddb, SecondRunOnTheSameWorldIsRefused) {
  std::string json, out;
  ASSERT_EQ(RunWorldload(dir_.path(), With({"--target", Target(), "--ticks", "1"}), &json, &out), 0)
      << out;
  EXPECT_EQ(RunWorldload(dir_.path(), With({"--target", Target(), "--ticks", "1"}), &json, &out),
            3);
  EXPECT_NE(out.find("empty world"), std::string::npos) << out;
}

// ---- Redis ----

std::string FindRedisServer() {
  for (const char* p : {"/usr/bin/redis-server", "/usr/local/bin/redis-server"})
    if (fs::exists(p)) return p;
  return "";
}

// A free loopback port (bound, read, released; redis-server has no port 0).
uint16_t FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

bool CanConnect(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

TEST(WorldloadRedis, SameWorkloadAgainstRedisGeoMatchesTheModel) {
  const std::string redis = FindRedisServer();
  if (redis.empty())
    GTEST_SKIP() << "redis-server is not installed (Debian package redis-server; "
                    "tools/install-deps.sh installs it): the Redis path is not tested";
  ASSERT_TRUE(fs::exists(kWorldload)) << kWorldload << " is not built (target worldload)";
  TempDir dir;
  Child server;
  uint16_t port = 0;
  for (int attempt = 0; attempt < 5 && port == 0; ++attempt) {
    const uint16_t p = FreePort();
    server.Reset(test_util::SpawnLogged(
        {redis, "--port", std::to_string(p), "--bind", "127.0.0.1", "--save", "", "--appendonly",
         "no", "--dir", dir.path().string(), "--daemonize", "no"},
        dir.path() / "redis.log"));
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (Clock::now() < deadline && ::kill(server.pid(), 0) == 0 &&
           ::waitpid(server.pid(), nullptr, WNOHANG) == 0) {
      if (CanConnect(p)) {
        port = p;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  ASSERT_NE(port, 0) << ReadFile(dir.path() / "redis.log");
  const std::string target = "redis://127.0.0.1:" + std::to_string(port);
  std::string json, out;
  // Fixed rate, radius with a projection (GEOSEARCH WITHCOORD + HMGET).
  int rc = RunWorldload(dir.path(),
                        With({"--target", target, "--ticks", "6", "-t", "20", kNoSkip, "1000"}),
                        &json, &out);
  EXPECT_EQ(rc, 0) << out;
  ExpectNoErrors(json, out);
  EXPECT_EQ(JsonNumber(json, "\"moves\": {\"items\": "), 5000 * 6) << out;
  EXPECT_GT(JsonNumber(json, "\"checks\": "), 0) << out;
  // A non-empty database is refused without --flush.
  rc = RunWorldload(dir.path(), With({"--target", target, "--ticks", "1"}), &json, &out);
  EXPECT_EQ(rc, 3) << out;
  EXPECT_NE(out.find("--flush"), std::string::npos) << out;
  // Max throughput, adaptive kNN (re-issued with doubled radii).
  rc = RunWorldload(
      dir.path(),
      With({"--target", target, "--flush", "--ticks", "3", "--mode", "max", "--knn", "8"}), &json,
      &out);
  EXPECT_EQ(rc, 0) << out;
  ExpectClean(json, out, 3);
  EXPECT_GT(JsonNumber(json, "\"redis_knn_reissued\": "), 0) << out;
  // And the wrong model is caught through Redis too.
  rc = RunWorldload(dir.path(),
                    With({"--target", target, "--flush", "--ticks", "2", "--mode", "max",
                          "--test-corrupt-model", "2"}),
                    &json, &out);
  EXPECT_EQ(rc, 1) << out;
  EXPECT_GT(JsonNumber(json, "\"mismatches\": "), 0) << out;
}

}  // namespace
}  // namespace worlddb::load
