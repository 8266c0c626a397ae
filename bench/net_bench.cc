// net_bench: the aoi-1m workload (../shared/workloads/aoi.md) through the
// `worlddb` server on loopback, server and client on this machine in one run.
//
// It starts the worlddb binary (--durability none: the log is off) on an
// ephemeral port, and, through the client library (net/client.h):
//   * load: N upserts, 1,000 per message, 8 messages in flight;
//   * move: one tick (§4.2), 1,000 moves per message, from 1 and 4
//     connections (the 4-connection phase moves every entity back to its load
//     position, then an untimed pass moves it forward again, so that the
//     queries see the post-move world);
//   * radius (r = 50 m, ids and positions returned) and kNN (k = 16): batches
//     of 1,000 requests in flight per connection (§5), 1 and 4 connections,
//     reproducing the §8 checksums (count sum, 16th-distance sum);
//   * unpipelined round trips (ping and one radius query, one request in
//     flight) next to a plain 64-byte TCP ping-pong against an echo thread
//     in this process.
// Several connections are driven by one client thread (poll over their
// sockets), so the client uses one core and the server the other.
// Each run is one process; run it 3 times for medians (docs/benchmarks.md).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "engine/batch_builder.h"
#include "net/client.h"
#include "tools/aoi_workload.h"

namespace worlddb::net {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

[[noreturn]] void Die(const std::string& msg) {
  std::fprintf(stderr, "net_bench: %s\n", msg.c_str());
  std::exit(1);
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * double(v.size())));
  return v[i];
}

// ---- The server process ----

struct ServerProcess {
  pid_t pid = -1;
  uint16_t port = 0;
  fs::path dir;

  void Start(const std::string& binary, uint32_t shards) {
    char tmpl[] = "/tmp/net_bench.XXXXXX";
    if (!::mkdtemp(tmpl)) Die("mkdtemp failed");
    dir = tmpl;
    const fs::path log = dir / "server.log";
    std::vector<std::string> args = {
        binary,         "--port", "0",        "--data-dir",           (dir / "data").string(),
        "--durability", "none",   "--shards", std::to_string(shards), "--log-level",
        "warn"};
    // "listening" is logged at info: keep info so the port can be read.
    args.back() = "info";
    pid = ::fork();
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, 2);
      ::dup2(fd, 1);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    const auto deadline = Clock::now() + std::chrono::seconds(20);
    while (Clock::now() < deadline) {
      std::ifstream in(log);
      std::stringstream ss;
      ss << in.rdbuf();
      const std::string text = ss.str();
      const size_t at = text.find("listening on ");
      const size_t eol = at == std::string::npos ? at : text.find('\n', at);
      if (eol != std::string::npos) {
        const std::string addr = text.substr(at, eol - at);
        port = static_cast<uint16_t>(std::stoi(addr.substr(addr.rfind(':') + 1)));
        return;
      }
      int status;
      if (::waitpid(pid, &status, WNOHANG) == pid) Die("worlddb exited at startup:\n" + text);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    Die("worlddb did not report its port");
  }
  // CPU seconds (user + system) the server used so far; *system gets the
  // system part (sending replies is mostly kernel time).
  double CpuSeconds(double* system = nullptr) const {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string s((std::istreambuf_iterator<char>(in)), {});
    const size_t close = s.rfind(')');
    std::istringstream rest(s.substr(close + 2));
    std::string field;
    double ut = 0, st = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {
      if (i == 14) ut = std::stod(field);
      if (i == 15) st = std::stod(field);
    }
    if (system) *system = st / double(::sysconf(_SC_CLK_TCK));
    return (ut + st) / double(::sysconf(_SC_CLK_TCK));
  }
  ~ServerProcess() {
    if (pid > 0) {
      ::kill(pid, SIGTERM);
      int status;
      ::waitpid(pid, &status, 0);
    }
    std::error_code ec;
    if (!dir.empty()) fs::remove_all(dir, ec);
  }
};

// ---- Phases ----

struct PhaseResult {
  std::string name;
  size_t connections = 0;
  uint64_t ops = 0;
  double seconds = 0;
  double server_cpu = 0;  // fraction of one core
  double server_sys = 0;  // the part of server_cpu spent in the kernel
  std::vector<double> batch_ms;
};

void Print(const PhaseResult& r) {
  // Server CPU per op holds on a machine shared with other jobs, where the
  // rate does not: 1e6 / cpu_us is the rate the server would reach on a
  // core of its own.
  const double cpu_us = r.server_cpu * r.seconds * 1e6 / double(r.ops);
  std::printf("%-12s conns=%zu ops=%-8" PRIu64
              " time=%.3fs rate=%10.0f ops/s  batch p50=%.2fms p99=%.2fms  server_cpu=%.0f%%"
              " (%.2f us/op, %.0f%% system)\n",
              r.name.c_str(), r.connections, r.ops, r.seconds, double(r.ops) / r.seconds,
              Percentile(r.batch_ms, 0.5), Percentile(r.batch_ms, 0.99), 100 * r.server_cpu, cpu_us,
              r.server_cpu > 0 ? 100 * r.server_sys / r.server_cpu : 0.0);
  std::fflush(stdout);
}

// Runs `batches` batches over `conns` connections: connection i takes the
// contiguous slice [i*B/C, (i+1)*B/C) of batch indices and keeps one batch
// (of any number of requests) in flight. send(client, batch) queues it.
PhaseResult RunBatches(const std::string& name, std::vector<std::unique_ptr<Client>>& conns,
                       size_t batches, uint64_t ops,
                       const std::function<void(Client&, size_t)>& send,
                       const ServerProcess& server) {
  const size_t C = conns.size();
  std::vector<size_t> next(C), end(C);
  std::vector<Clock::time_point> started(C);
  std::vector<bool> busy(C, false);
  PhaseResult r;
  r.name = name;
  r.connections = C;
  r.ops = ops;
  double sys0 = 0;
  const double cpu0 = server.CpuSeconds(&sys0);
  const auto t0 = Clock::now();
  size_t active = 0;
  for (size_t i = 0; i < C; ++i) {
    next[i] = i * batches / C;
    end[i] = (i + 1) * batches / C;
    if (next[i] < end[i]) {
      started[i] = Clock::now();
      send(*conns[i], next[i]++);
      busy[i] = true;
      ++active;
    }
  }
  std::vector<pollfd> fds(C);
  while (active > 0) {
    for (size_t i = 0; i < C; ++i) {
      Client& c = *conns[i];
      if (!busy[i]) continue;
      // A batch may also complete inside the Poll that follows its send.
      if (c.in_flight() != 0) {
        Status s = c.Poll(0);
        if (!s.ok()) Die(name + ": " + s.ToString());
      }
      if (c.in_flight() == 0) {
        const auto now = Clock::now();
        r.batch_ms.push_back(1e3 * Seconds(started[i], now));
        if (next[i] < end[i]) {
          started[i] = now;
          send(c, next[i]++);
          if (!c.Poll(0).ok()) Die(name + ": " + c.broken_status().ToString());
        } else {
          busy[i] = false;
          --active;
        }
      }
    }
    bool completed = false;  // a batch finished inside the Poll after its send
    for (size_t i = 0; i < C; ++i) completed |= busy[i] && conns[i]->in_flight() == 0;
    if (completed) continue;
    for (size_t i = 0; i < C; ++i)
      fds[i] = {conns[i]->fd(),
                static_cast<short>((conns[i]->in_flight() ? POLLIN : 0) |
                                   (conns[i]->unsent_bytes() ? POLLOUT : 0)),
                0};
    if (active && ::poll(fds.data(), fds.size(), 10000) == 0) {
      std::string state;
      for (size_t i = 0; i < C; ++i)
        state += " [conn " + std::to_string(i) + ": " + std::to_string(conns[i]->in_flight()) +
                 " in flight, " + std::to_string(conns[i]->unsent_bytes()) + " bytes unsent]";
      Die(name + ": no progress for 10 s:" + state);
    }
  }
  r.seconds = Seconds(t0, Clock::now());
  double sys1 = 0;
  r.server_cpu = (server.CpuSeconds(&sys1) - cpu0) / r.seconds;
  r.server_sys = (sys1 - sys0) / r.seconds;
  return r;
}

std::vector<std::unique_ptr<Client>> Connections(uint16_t port, size_t n) {
  std::vector<std::unique_ptr<Client>> out;
  for (size_t i = 0; i < n; ++i) {
    auto c = Client::Connect("127.0.0.1", port);
    if (!c.ok()) Die(c.status().ToString());
    out.push_back(std::move(c.value()));
  }
  return out;
}

// Move batches of 1,000 to positions (xs, ys), pre-encoded.
std::vector<std::vector<uint8_t>> MoveBatches(const std::vector<double>& xs,
                                              const std::vector<double>& ys, size_t per) {
  std::vector<std::vector<uint8_t>> out;
  BatchBuilder b;
  for (size_t i = 0; i < xs.size(); i += per) {
    for (size_t j = i; j < std::min(xs.size(), i + per); ++j) b.Move(j + 1, xs[j], ys[j]);
    out.push_back(b.FinishCopy());
  }
  return out;
}

// ---- Plain TCP ping-pong (64 bytes) against an echo thread ----

std::vector<double> TcpPingPong(size_t samples) {
  int ls = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(ls, 1) != 0)
    Die("echo listen failed");
  socklen_t len = sizeof a;
  ::getsockname(ls, reinterpret_cast<sockaddr*>(&a), &len);
  const size_t total = samples + 1000;
  std::thread echo([ls, total] {
    int fd = ::accept(ls, nullptr, nullptr);
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char buf[64];
    for (size_t i = 0; i < total; ++i) {
      if (::recv(fd, buf, 64, MSG_WAITALL) != 64) break;
      if (::send(fd, buf, 64, MSG_NOSIGNAL) != 64) break;
    }
    ::close(fd);
  });
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) Die("echo connect failed");
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  char buf[64] = {};
  std::vector<double> us;
  for (size_t i = 0; i < total; ++i) {
    const auto t0 = Clock::now();
    if (::send(fd, buf, 64, MSG_NOSIGNAL) != 64 || ::recv(fd, buf, 64, MSG_WAITALL) != 64)
      Die("echo failed");
    if (i >= 1000) us.push_back(1e6 * Seconds(t0, Clock::now()));
  }
  ::close(fd);
  echo.join();
  ::close(ls);
  return us;
}

void PrintLatency(const char* name, const std::vector<double>& us) {
  std::printf("%-28s p50=%.1fus p99=%.1fus p99.9=%.1fus (n=%zu)\n", name, Percentile(us, 0.5),
              Percentile(us, 0.99), Percentile(us, 0.999), us.size());
}

std::string DefaultServerPath() {
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return (self.parent_path().parent_path() / "net" / "worlddb").string();
}

int Main(int argc, char** argv) {
  CLI::App app{"net_bench: the aoi-1m workload through the worlddb server on loopback"};
  std::string server_path = DefaultServerPath(), dist_name = "uniform";
  size_t n = aoi::kDefaultEntities, queries = aoi::kNumQueries, rtt_samples = 20000;
  uint32_t shards = 1;
  app.add_option("--server", server_path, "worlddb binary")->capture_default_str();
  app.add_option("--dist", dist_name, "uniform | clustered")
      ->check(CLI::IsMember({"uniform", "clustered"}))
      ->capture_default_str();
  app.add_option("--entities", n, "entities (checksums need 1000000)")
      ->check(CLI::Range(size_t{1000}, size_t{100000000}))
      ->capture_default_str();
  app.add_option("--queries", queries, "queries per query phase (a prefix of the spec's)")
      ->check(CLI::Range(size_t{1000}, aoi::kNumQueries))
      ->capture_default_str();
  app.add_option("--shards", shards, "server shards")->capture_default_str();
  app.add_option("--rtt-samples", rtt_samples, "unpipelined round trips")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (!std::filesystem::exists(server_path)) Die("no server binary at " + server_path);

  const aoi::Distribution dist =
      dist_name == "uniform" ? aoi::Distribution::kUniform : aoi::Distribution::kClustered;
  std::printf("generating aoi workload: %s, N=%zu\n", dist_name.c_str(), n);
  aoi::AoiWorkload w(dist, n, aoi::kNumQueries);

  ServerProcess server;
  server.Start(server_path, shards);
  std::printf("server: %s --durability none --shards %u, port %u\n", server_path.c_str(), shards,
              server.port);
  constexpr size_t kPerMessage = 1000;  // entities per write, requests per batch (§5)

  auto one = Connections(server.port, 1);
  auto four = Connections(server.port, 4);
  if (!one[0]->CreateKind({"e", {}}).ok()) Die("create kind failed");

  // Load: 1,000 upserts per message, 8 messages per "batch" in flight.
  std::vector<std::vector<uint8_t>> load;
  {
    BatchBuilder b;
    for (size_t i = 0; i < n; i += kPerMessage) {
      for (size_t j = i; j < std::min(n, i + kPerMessage); ++j)
        b.Upsert(j + 1, "e", w.load_xs()[j], w.load_ys()[j]);
      load.push_back(b.FinishCopy());
    }
  }
  auto check_apply = [](const Status& s, const ReplyView&) {
    if (!s.ok()) Die("write refused: " + s.ToString());
  };
  constexpr size_t kLoadInFlight = 8;
  Print(RunBatches(
      "load", one, (load.size() + kLoadInFlight - 1) / kLoadInFlight, n,
      [&](Client& c, size_t b) {
        for (size_t m = b * kLoadInFlight; m < std::min(load.size(), (b + 1) * kLoadInFlight); ++m)
          c.SendApply(load[m], Ack::kMode, check_apply);
      },
      server));
  load.clear();

  // Move: one message of 1,000 moves per batch in flight per connection.
  auto forward = MoveBatches(w.moved_xs(), w.moved_ys(), kPerMessage);
  auto back = MoveBatches(w.load_xs(), w.load_ys(), kPerMessage);
  uint64_t moved = 0;
  auto count_moves = [&moved](const Status& s, const ReplyView& r) {
    if (!s.ok()) Die("move refused: " + s.ToString());
    moved += r->body_as_ApplyReply()->moved();
  };
  auto move_phase = [&](const char* name, auto& conns, auto& batches) {
    return RunBatches(
        name, conns, batches.size(), n,
        [&](Client& c, size_t b) { c.SendApply(batches[b], Ack::kMode, count_moves); }, server);
  };
  Print(move_phase("move", one, forward));
  Print(move_phase("move", four, back));
  move_phase("move(untimed)", four, forward);
  if (moved != 3 * n)
    Die("moved " + std::to_string(moved) + " entities, expected " + std::to_string(3 * n));

  // Radius and kNN: 1,000 requests per batch in flight per connection.
  const size_t nbatches = (queries + kPerMessage - 1) / kPerMessage;
  uint64_t count_sum = 0, rows = 0;
  double knn_sum = 0;
  auto radius_send = [&](Client& c, size_t b) {
    for (size_t qi = b * kPerMessage; qi < std::min(queries, (b + 1) * kPerMessage); ++qi) {
      const uint32_t id = w.radius_query_ids()[qi];
      c.SendQuery(Query::Circle(w.moved_xs()[id - 1], w.moved_ys()[id - 1], aoi::kQueryRadius),
                  [&](const Status& s, const ReplyView& r) {
                    if (!s.ok()) Die("radius: " + s.ToString());
                    const fb::QueryReply* q = r->body_as_QueryReply();
                    count_sum += q->count();
                    // ids and positions come back: touch them as a client would.
                    if (!q->ids() || !q->x() || q->x()->size() != q->ids()->size())
                      Die("radius reply without ids and positions");
                    rows += q->ids()->size();
                  });
    }
  };
  auto knn_send = [&](Client& c, size_t b) {
    for (size_t qi = b * kPerMessage; qi < std::min(queries, (b + 1) * kPerMessage); ++qi) {
      const uint32_t id = w.knn_query_ids()[qi];
      c.SendQuery(Query::Nearest(w.moved_xs()[id - 1], w.moved_ys()[id - 1], aoi::kKnnK),
                  [&](const Status& s, const ReplyView& r) {
                    if (!s.ok()) Die("knn: " + s.ToString());
                    const fb::QueryReply* q = r->body_as_QueryReply();
                    if (!q->distance() || q->distance()->size() != aoi::kKnnK)
                      Die("knn reply without 16 distances");
                    knn_sum += q->distance()->Get(aoi::kKnnK - 1);
                  });
    }
  };
  const bool full = n == aoi::kDefaultEntities && queries == aoi::kNumQueries;
  for (auto* conns : {&one, &four}) {
    count_sum = rows = 0;
    Print(RunBatches("radius", *conns, nbatches, queries, radius_send, server));
    std::printf("  radius count sum = %" PRIu64 " (rows returned %" PRIu64 ")", count_sum, rows);
    if (full) {
      const uint64_t want = dist == aoi::Distribution::kUniform ? 7921942 : 54311467;
      std::printf(" %s (aoi.md §8: %" PRIu64 ")", count_sum == want ? "OK" : "MISMATCH", want);
    }
    std::printf("\n");
    knn_sum = 0;
    Print(RunBatches("knn", *conns, nbatches, queries, knn_send, server));
    std::printf("  knn 16th-distance sum = %.6f", knn_sum);
    if (full) {
      const double want = dist == aoi::Distribution::kUniform ? 2170552.293952 : 1567778.049514;
      std::printf(" %s (aoi.md §8: %.6f)", std::abs(knn_sum - want) < 1e-5 ? "OK" : "MISMATCH",
                  want);
    }
    std::printf("\n");
  }

  // Unpipelined round trips: one request in flight on one connection.
  std::vector<double> tcp = TcpPingPong(rtt_samples);
  PrintLatency("tcp ping-pong 64 B", tcp);
  std::vector<double> ping, radius;
  Client& c = *one[0];
  for (size_t i = 0; i < rtt_samples + 1000; ++i) {
    const auto t0 = Clock::now();
    if (!c.Ping().ok()) Die("ping failed");
    if (i >= 1000) ping.push_back(1e6 * Seconds(t0, Clock::now()));
  }
  PrintLatency("worlddb ping (unpipelined)", ping);
  for (size_t i = 0; i < rtt_samples + 1000; ++i) {
    const uint32_t id = w.radius_query_ids()[i % queries];
    const auto t0 = Clock::now();
    auto r = c.Query(Query::Circle(w.moved_xs()[id - 1], w.moved_ys()[id - 1], aoi::kQueryRadius));
    if (!r.ok()) Die("radius failed");
    if (i >= 1000) radius.push_back(1e6 * Seconds(t0, Clock::now()));
  }
  PrintLatency("worlddb radius (unpipelined)", radius);
  std::printf("ping p50 / tcp p50 = %.2f\n", Percentile(ping, 0.5) / Percentile(tcp, 0.5));
  return 0;
}

}  // namespace
}  // namespace worlddb::net

int main(int argc, char** argv) { return worlddb::net::Main(argc, argv); }
