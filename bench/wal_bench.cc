// Write-ahead log benchmark: raw figures of the disk measured by this binary,
// then LogWriter append throughput and commit latency for each mode, writer
// count and batch size, all in one run; prints medians over --runs runs.
//
//   build-wal/bench/wal_bench --dir /work/main/build-wal/wal_bench_data --runs 3
//
// Raw figures (plain pwrite/fdatasync, no io_uring):
//   seq write     MB/s writing --seq-mib MiB in 1 MiB writes then one fdatasync
//   sync append   fdatasync latency after a 4 KiB append that grows the file
//   sync overwr.  fdatasync latency after a 4 KiB write into zero-filled, synced blocks
//   sync falloc   the same into fallocate()d blocks (unwritten extents)
// Writer cells: Commit() from N threads, tickets from one counter, payloads
// are real WriteBatch bytes of 1 or 1,000 moves (BatchBuilder).
#include <fcntl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "engine/batch_builder.h"
#include "wal/log_reader.h"
#include "wal/log_writer.h"

namespace worlddb::wal {
namespace {

using Clock = std::chrono::steady_clock;

double Us(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

double Pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

double Median(std::vector<double> v) { return Pct(std::move(v), 0.5); }

struct Raw {
  double seq_mbs = 0;
  double append_p50 = 0, append_p99 = 0;
  double overwrite_p50 = 0, overwrite_p99 = 0;
  double falloc_p50 = 0, falloc_p99 = 0;
};

void Die(const char* what, const std::string& path) {
  std::perror((std::string(what) + " " + path).c_str());
  std::exit(1);
}

double SeqWrite(const std::string& path, size_t mib) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) Die("open", path);
  std::vector<uint8_t> buf(1 << 20, 0x5A);
  const auto t0 = Clock::now();
  for (size_t i = 0; i < mib; ++i) {
    if (::pwrite(fd, buf.data(), buf.size(), static_cast<off_t>(i << 20)) != 1 << 20) {
      Die("pwrite", path);
    }
  }
  if (::fdatasync(fd) != 0) Die("fdatasync", path);
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  ::close(fd);
  ::unlink(path.c_str());
  return static_cast<double>(mib) / s * 1.048576;  // MB/s
}

// how: 0 append (growing), 1 overwrite zero-filled, 2 overwrite fallocated
std::vector<double> SyncLatencies(const std::string& path, int how, int n) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) Die("open", path);
  const size_t block = 4096;
  const off_t total = static_cast<off_t>(block) * n;
  if (how == 1) {
    std::vector<uint8_t> zeros(1 << 20, 0);
    for (off_t off = 0; off < total; off += static_cast<off_t>(zeros.size())) {
      if (::pwrite(fd, zeros.data(), zeros.size(), off) < 0) Die("pwrite", path);
    }
  } else if (how == 2) {
    if (::fallocate(fd, 0, 0, total) != 0) Die("fallocate", path);
  }
  if (::fdatasync(fd) != 0) Die("fdatasync", path);
  std::vector<uint8_t> buf(block, 0x33);
  std::vector<double> lat;
  lat.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    const auto t0 = Clock::now();
    if (::pwrite(fd, buf.data(), block, static_cast<off_t>(block) * i) !=
        static_cast<ssize_t>(block)) {
      Die("pwrite", path);
    }
    if (::fdatasync(fd) != 0) Die("fdatasync", path);
    lat.push_back(Us(Clock::now() - t0));
  }
  ::close(fd);
  ::unlink(path.c_str());
  return lat;
}

Raw MeasureRaw(const std::string& dir, size_t seq_mib, int syncs) {
  Raw r;
  r.seq_mbs = SeqWrite(dir + "/raw_seq", seq_mib);
  auto a = SyncLatencies(dir + "/raw_append", 0, syncs);
  auto o = SyncLatencies(dir + "/raw_overwrite", 1, syncs);
  auto f = SyncLatencies(dir + "/raw_falloc", 2, syncs);
  r.append_p50 = Pct(a, 0.5);
  r.append_p99 = Pct(a, 0.99);
  r.overwrite_p50 = Pct(o, 0.5);
  r.overwrite_p99 = Pct(o, 0.99);
  r.falloc_p50 = Pct(f, 0.5);
  r.falloc_p99 = Pct(f, 0.99);
  return r;
}

struct Cell {
  SyncMode mode;
  int writers;
  int entities;
  bool preallocate;
  std::string Name() const {
    return std::string(mode == SyncMode::kAlways ? "always" : "interval:10") +
           " w=" + std::to_string(writers) + " e=" + std::to_string(entities) +
           (preallocate ? " prealloc" : "");
  }
};

struct CellResult {
  double recs_per_s = 0, mb_per_s = 0, p50_us = 0, p99_us = 0, recs_per_sync = 0;
};

CellResult RunCell(const std::string& base, const Cell& c, double seconds) {
  const std::string dir = base + "/log";
  std::filesystem::remove_all(dir);
  LogOptions o;
  o.dir = dir;
  o.mode = c.mode;
  o.interval_ms = 10;
  o.preallocate = c.preallocate;
  auto w = LogWriter::Open(o, 0, 1);
  if (!w.ok()) {
    std::fprintf(stderr, "%s\n", w.status().ToString().c_str());
    std::exit(1);
  }
  // A few distinct payloads per size, encoded before timing.
  std::vector<std::vector<uint8_t>> payloads;
  BatchBuilder b;
  for (int k = 0; k < 16; ++k) {
    for (int e = 0; e < c.entities; ++e) b.Move(static_cast<uint64_t>(e * 16 + k), e * 0.5, k);
    payloads.push_back(b.FinishCopy());
  }
  std::atomic<uint64_t> ticket{1};
  std::atomic<bool> stop{false};
  std::vector<std::vector<double>> lat(static_cast<size_t>(c.writers));
  std::atomic<uint64_t> bytes{0};
  std::vector<std::thread> threads;
  const auto t0 = Clock::now();
  for (int k = 0; k < c.writers; ++k) {
    threads.emplace_back([&, k] {
      auto& mine = lat[static_cast<size_t>(k)];
      uint64_t my_bytes = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        const uint64_t t = ticket.fetch_add(1);
        const auto& p = payloads[t % payloads.size()];
        const auto s = Clock::now();
        const Status st = (*w)->Commit(t, RecordType::kWriteBatch, p);
        mine.push_back(Us(Clock::now() - s));
        my_bytes += p.size();
        if (!st.ok()) {
          std::fprintf(stderr, "%s\n", st.ToString().c_str());
          std::exit(1);
        }
      }
      bytes += my_bytes;
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : threads) t.join();
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  const LogStats st = (*w)->stats();
  (void)(*w)->Close();
  std::vector<double> all;
  for (auto& v : lat) all.insert(all.end(), v.begin(), v.end());
  CellResult r;
  r.recs_per_s = static_cast<double>(all.size()) / secs;
  r.mb_per_s = static_cast<double>(bytes.load()) / secs / 1e6;
  r.p50_us = Pct(all, 0.5);
  r.p99_us = Pct(all, 0.99);
  r.recs_per_sync = st.syncs ? static_cast<double>(st.records) / static_cast<double>(st.syncs) : 0;
  std::filesystem::remove_all(dir);
  return r;
}

struct ScanRate {
  double recs_per_s = 0, mb_per_s = 0;
};

// Writes `records` WriteBatch records of 1,000 moves (interval mode), then
// times ScanLog over them (page cache warm, as right after a crash of the
// process; a cold read adds the disk's sequential read time).
ScanRate MeasureScan(const std::string& base, int records) {
  const std::string dir = base + "/scan";
  std::filesystem::remove_all(dir);
  LogOptions o;
  o.dir = dir;
  o.mode = SyncMode::kInterval;
  o.preallocate = false;
  auto w = LogWriter::Open(o, 0, 1);
  if (!w.ok()) std::exit(1);
  BatchBuilder b;
  for (int t = 1; t <= records; ++t) {
    for (int e = 0; e < 1000; ++e) b.Move(static_cast<uint64_t>(e), e, t);
    if (!(*w)->Commit(static_cast<uint64_t>(t), RecordType::kWriteBatch, b.Finish(), Ack::kQueued)
             .ok()) {
      std::exit(1);
    }
  }
  (void)(*w)->Close();
  ScanOptions so;
  so.dirs = {dir};
  uint64_t sink = 0;
  const auto t0 = Clock::now();
  auto r = ScanLog(so, [&](const Record& rec) {
    sink += rec.payload.size();
    return worlddb::Status::Ok();
  });
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!r.ok() || r->records != static_cast<uint64_t>(records)) std::exit(1);
  std::filesystem::remove_all(dir);
  return {static_cast<double>(r->records) / s, static_cast<double>(sink) / s / 1e6};
}

}  // namespace
}  // namespace worlddb::wal

int main(int argc, char** argv) {
  using namespace worlddb::wal;
  CLI::App app{"WorldDB write-ahead log benchmark"};
  std::string dir = "wal_bench_data";
  int runs = 3;
  double seconds = 1.0;
  size_t seq_mib = 256;
  int syncs = 300;
  int scan_records = 5000;
  app.add_option("--dir", dir, "scratch directory on the disk the log would use");
  app.add_option("--runs", runs, "repetitions (medians are reported)");
  app.add_option("--seconds", seconds, "duration of each writer cell");
  app.add_option("--seq-mib", seq_mib, "MiB written for the sequential figure");
  app.add_option("--syncs", syncs, "fdatasyncs per raw latency figure");
  app.add_option("--scan-records", scan_records, "1,000-move records for the reader figure");
  CLI11_PARSE(app, argc, argv);
  std::filesystem::create_directories(dir);

  std::vector<Cell> cells;
  for (SyncMode m : {SyncMode::kAlways, SyncMode::kInterval}) {
    for (int e : {1, 1000}) {
      for (int w : {1, 8, 64}) cells.push_back({m, w, e, false});
    }
  }
  cells.push_back({SyncMode::kAlways, 1, 1, true});
  cells.push_back({SyncMode::kAlways, 1, 1000, true});

  std::vector<Raw> raws;
  std::vector<double> scan_recs, scan_mbs;
  std::map<std::string, std::vector<CellResult>> res;
  for (int r = 0; r < runs; ++r) {
    std::fprintf(stderr, "run %d/%d\n", r + 1, runs);
    raws.push_back(MeasureRaw(dir, seq_mib, syncs));
    for (const Cell& c : cells) res[c.Name()].push_back(RunCell(dir, c, seconds));
    const ScanRate sr = MeasureScan(dir, scan_records);
    scan_recs.push_back(sr.recs_per_s);
    scan_mbs.push_back(sr.mb_per_s);
  }
  auto med = [&](auto f) {
    std::vector<double> v;
    for (const Raw& x : raws) v.push_back(f(x));
    return Median(v);
  };
  const Raw raw{med([](const Raw& x) { return x.seq_mbs; }),
                med([](const Raw& x) { return x.append_p50; }),
                med([](const Raw& x) { return x.append_p99; }),
                med([](const Raw& x) { return x.overwrite_p50; }),
                med([](const Raw& x) { return x.overwrite_p99; }),
                med([](const Raw& x) { return x.falloc_p50; }),
                med([](const Raw& x) { return x.falloc_p99; })};
  std::printf("Raw disk (%s), medians of %d runs\n", dir.c_str(), runs);
  std::printf("| figure | value |\n|---|---|\n");
  std::printf("| sequential write | %.0f MB/s |\n", raw.seq_mbs);
  std::printf("| fdatasync after 4 KiB append (grows file) p50 / p99 | %.0f / %.0f us |\n",
              raw.append_p50, raw.append_p99);
  std::printf(
      "| fdatasync after 4 KiB overwrite of zero-filled blocks p50 / p99 | %.0f / %.0f us |\n",
      raw.overwrite_p50, raw.overwrite_p99);
  std::printf(
      "| fdatasync after 4 KiB write into fallocated blocks p50 / p99 | %.0f / %.0f us |\n\n",
      raw.falloc_p50, raw.falloc_p99);

  std::printf("LogWriter, medians of %d runs of %.1f s per cell\n", runs, seconds);
  std::printf("| cell | records/s | MB/s | commit p50 us | commit p99 us | records/fdatasync |\n");
  std::printf("|---|---|---|---|---|---|\n");
  std::map<std::string, CellResult> m;
  for (const Cell& c : cells) {
    const auto& v = res[c.Name()];
    auto pick = [&](auto f) {
      std::vector<double> x;
      for (const auto& r : v) x.push_back(f(r));
      return Median(x);
    };
    CellResult r{pick([](const CellResult& x) { return x.recs_per_s; }),
                 pick([](const CellResult& x) { return x.mb_per_s; }),
                 pick([](const CellResult& x) { return x.p50_us; }),
                 pick([](const CellResult& x) { return x.p99_us; }),
                 pick([](const CellResult& x) { return x.recs_per_sync; })};
    m[c.Name()] = r;
    std::printf("| %s | %.0f | %.1f | %.0f | %.0f | %.1f |\n", c.Name().c_str(), r.recs_per_s,
                r.mb_per_s, r.p50_us, r.p99_us, r.recs_per_sync);
  }
  std::printf(
      "\nReader: ScanLog over %d records of 1,000 moves (page cache warm): %.0f records/s "
      "= %.0f M moves/s, %.0f MB/s\n",
      scan_records, Median(scan_recs), Median(scan_recs) * 1000 / 1e6, Median(scan_mbs));
  const auto& a1 = m["always w=1 e=1"];
  const auto& a64 = m["always w=64 e=1"];
  const auto& a1p = m["always w=1 e=1 prealloc"];
  double best_mbs = 0;
  std::string best;
  for (const auto& [name, r] : m) {
    if (name.find("e=1000") != std::string::npos && r.mb_per_s > best_mbs) {
      best_mbs = r.mb_per_s;
      best = name;
    }
  }
  std::printf("\nTargets\n| target | measured |\n|---|---|\n");
  std::printf("| always, 1 writer: commit p50 <= 1.5x raw fdatasync p50 (append) | %.2fx |\n",
              a1.p50_us / raw.append_p50);
  std::printf("| same, preallocated segment vs raw overwrite fdatasync p50 | %.2fx |\n",
              a1p.p50_us / raw.overwrite_p50);
  std::printf("| always, 64 writers of 1-entity records vs 1 writer: >= 30x throughput | %.1fx |\n",
              a64.recs_per_s / a1.recs_per_s);
  std::printf("| 1,000-entity records: >= 50%% of raw sequential bandwidth (best: %s) | %.0f%% |\n",
              best.c_str(), 100.0 * best_mbs / raw.seq_mbs);
  std::printf("| preallocation: always w=1 e=1 commit p50, prealloc / not | %.2f |\n",
              a1p.p50_us / a1.p50_us);
  std::printf("| preallocation: always w=1 e=1000 commit p50, prealloc / not | %.2f |\n",
              m["always w=1 e=1000 prealloc"].p50_us / m["always w=1 e=1000"].p50_us);
  std::filesystem::remove_all(dir);
  return 0;
}
