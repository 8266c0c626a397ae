// worldload: plays Z zone servers against a worlddb server or Redis GEO and
// reports throughput, latency percentiles, missed ticks and result checks
// (docs/worldload.md). The simulation is tools/worldload.h; this file holds
// the flags, the output and the plot.
//
// Exit codes: 0 the run completed with no request errors and no mismatches;
// 1 it completed with errors or mismatches (the report says which); 2 bad
// flags; 3 the run could not go on (cannot connect, connection lost, load
// refused, plot failed).
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tools/worldload.h"

namespace worlddb::load {
namespace {

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

// Throughput (top) and latency (bottom, log scale) per second, through
// gnuplot; the terminal follows the file's extension (.png or .svg).
Status Plot(const WorldLoadReport& r, const std::string& file) {
  namespace fs = std::filesystem;
  const std::string ext = fs::path(file).extension().string();
  std::string terminal;
  if (ext == ".png")
    terminal = "pngcairo size 1200,800";
  else if (ext == ".svg")
    terminal = "svg size 1200,800 dynamic";
  else
    return Status::InvalidArgument("--plot " + file + ": the name must end in .png or .svg");
  char tmpl[] = "/tmp/worldload_plot.XXXXXX";
  if (!::mkdtemp(tmpl)) return Status::IOError("mkdtemp failed");
  const fs::path dir = tmpl;
  {
    std::ofstream data(dir / "timeline.dat");
    data << "# t ticks/s writes/s queries/s aoi_p50_ms aoi_p99_ms move_p99_ms\n";
    for (const TimelinePoint& p : r.timeline)
      data << p.t << ' ' << p.ticks_per_s << ' ' << p.writes_per_s << ' ' << p.queries_per_s << ' '
           << p.aoi_p50_ms << ' ' << p.aoi_p99_ms << ' ' << p.move_p99_ms << '\n';
    std::ofstream gp(dir / "plot.gp");
    const std::string dat = (dir / "timeline.dat").string();
    gp << "set terminal " << terminal << "\n"
       << "set output '" << file << "'\n"
       << "set multiplot layout 2,1 title 'worldload: " << r.target_kind << ", "
       << (r.options.max_throughput ? "max throughput" : "fixed rate")
       << ", N=" << r.options.entities << ", Z=" << r.options.zones << "'\n"
       << "set grid\nset key top left\nset xlabel 'seconds'\n"
       << "set ylabel 'per second'\nset y2label 'ticks/s'\nset ytics nomirror\nset y2tics\n"
       << "plot '" << dat << "' using 1:3 with lines lw 2 title 'writes/s (entities moved)', '"
       << dat << "' using 1:4 with lines lw 2 title 'AOI queries/s', '" << dat
       << "' using 1:2 axes x1y2 with lines lw 1 dt 2 title 'ticks/s'\n"
       << "unset y2tics\nunset y2label\nset ytics mirror\nset logscale y\n"
       << "set ylabel 'latency (ms, log)'\n"
       << "plot '" << dat << "' using 1:($5>0?$5:1/0) with lines lw 2 title 'AOI p50', '" << dat
       << "' using 1:($6>0?$6:1/0) with lines lw 2 title 'AOI p99', '" << dat
       << "' using 1:($7>0?$7:1/0) with lines lw 2 title 'move batch p99'\n"
       << "unset multiplot\n";
  }
  const std::string cmd =
      "gnuplot '" + (dir / "plot.gp").string() + "' 1>&2";  // stdout may carry --json -
  const int rc = std::system(cmd.c_str());
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (rc != 0)
    return Status::IOError("gnuplot failed (exit " + std::to_string(rc) +
                           "); is gnuplot-nox installed?");
  return Status::Ok();
}

int Main(int argc, char** argv) {
  CLI::App app{
      "worldload: Z zone servers moving N entities and asking area-of-interest queries, against "
      "worlddb or Redis GEO (docs/worldload.md)"};
  WorldLoadOptions o;
  std::string dist = "uniform", mode = "fixed", kind = "player", columns = "hp,level", json, plot;
  bool json_stdout = false;
  app.add_option("--target", o.target, "worlddb://HOST:PORT or redis://HOST:PORT")
      ->capture_default_str();
  app.add_option("--token", o.token, "worlddb auth token");
  app.add_option("-n,--entities", o.entities, "entities (ids 1..N)")
      ->check(CLI::Range(size_t{1}, size_t{100000000}))
      ->capture_default_str();
  app.add_option("-z,--zones", o.zones, "zone servers (one connection each)")
      ->check(CLI::Range(size_t{1}, size_t{255}))
      ->capture_default_str();
  app.add_option("-p,--players", o.players, "players among the entities (the rest are NPCs)")
      ->capture_default_str();
  app.add_option("-r,--radius", o.radius, "area-of-interest radius (m)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("-t,--tick-rate", o.tick_rate, "ticks per second (fixed-rate mode)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--dist", dist, "uniform | clustered (aoi.md §3)")
      ->check(CLI::IsMember({"uniform", "clustered"}))
      ->capture_default_str();
  app.add_option("--mode", mode, "fixed (open loop at --tick-rate) | max (lock-step, --in-flight)")
      ->check(CLI::IsMember({"fixed", "max"}))
      ->capture_default_str();
  app.add_option("-d,--duration", o.duration_s, "seconds to run (when --ticks is 0)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--ticks", o.ticks, "ticks to run (0: --duration decides)")->capture_default_str();
  app.add_option("--batch", o.batch, "moves (and load upserts) per write request")
      ->check(CLI::Range(size_t{1}, size_t{100000}))
      ->capture_default_str();
  app.add_option("--aoi-batch", o.aoi_batch,
                 "WorldDB: consecutive AOI queries sent as one QueryBatch request, at most "
                 "(1: one request per query; Redis always sends one command per query)")
      ->check(CLI::Range(size_t{1}, size_t{4096}))
      ->capture_default_str();
  app.add_option("--in-flight", o.in_flight, "max mode: queries in flight per connection")
      ->check(CLI::Range(size_t{1}, size_t{100000}))
      ->capture_default_str();
  app.add_option("--write-in-flight", o.write_in_flight,
                 "max mode: move batches in flight per connection")
      ->check(CLI::Range(size_t{1}, size_t{100000}))
      ->capture_default_str();
  app.add_option("--max-ticks-behind", o.max_ticks_behind,
                 "fixed mode: a zone with this many ticks unanswered skips the next (missed)")
      ->check(CLI::Range(size_t{1}, size_t{1000}))
      ->capture_default_str();
  app.add_option("--move-fraction", o.move_fraction, "chance that an entity moves in a tick")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--player-speed", o.player_speed, "players walk at [v/2, v) m/s")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--npc-speed", o.npc_speed, "NPCs walk at [0, v) m/s")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--kind", kind, "kind the area-of-interest query asks for")
      ->check(CLI::IsMember({"player", "npc"}))
      ->capture_default_str();
  app.add_option("--columns", columns,
                 "projected columns, comma-separated (hp,level,speed,name; "
                 "empty: none)")
      ->capture_default_str();
  app.add_option("--knn", o.knn, "k > 0: k-nearest queries instead of the radius")
      ->capture_default_str();
  app.add_option("--knn-start-radius", o.knn_start_radius,
                 "Redis kNN: first GEOSEARCH radius (m), doubled until k are found")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--check-fraction", o.check_fraction,
                 "fraction of queries whose rows are compared with the model")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--check-budget", o.check_budget,
                 "checks stop being sampled while they took more than this share of the run "
                 "(each scans every entity of the kind)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--seed", o.seed, "seed of the walk, speeds and samples")->capture_default_str();
  app.add_flag("--flush", o.flush, "Redis: FLUSHDB before loading");
  app.add_flag(
      "-q,--quiet", [&o](int64_t) { o.progress = false; }, "no progress lines");
  app.add_option("--json", json,
                 "write the report as JSON to FILE ('-': stdout, instead of the "
                 "text report)");
  app.add_option("--plot", plot, "draw throughput and latency over time to FILE.png or FILE.svg");
  app.add_option("--test-corrupt-model", o.corrupt_model_every,
                 "test hook: the model misplaces every Nth entity of --kind (must be detected)")
      ->group("");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  o.dist = dist == "uniform" ? aoi::Distribution::kUniform : aoi::Distribution::kClustered;
  o.max_throughput = mode == "max";
  o.aoi_kind = kind == "player" ? kPlayer : kNpc;
  o.columns.clear();
  for (const std::string& c : Split(columns)) {
    const int i = ColumnIndex(c);
    if (i < 0) {
      std::fprintf(stderr, "worldload: --columns: no column \"%s\" (hp, level, speed, name)\n",
                   c.c_str());
      return 2;
    }
    o.columns.push_back(i);
  }
  json_stdout = json == "-";
  WorldLoad load(o);
  auto r = load.Run();
  if (!r.ok()) {
    std::fprintf(stderr, "worldload: %s\n", r.status().ToString().c_str());
    return 3;
  }
  if (!json_stdout) std::fputs(r->Text().c_str(), stdout);
  if (!json.empty()) {
    if (json_stdout) {
      std::fputs(r->Json().c_str(), stdout);
    } else {
      std::ofstream out(json);
      out << r->Json();
      if (!out) {
        std::fprintf(stderr, "worldload: cannot write %s\n", json.c_str());
        return 3;
      }
    }
  }
  if (!plot.empty()) {
    Status s = Plot(*r, plot);
    if (!s.ok()) {
      std::fprintf(stderr, "worldload: %s\n", s.ToString().c_str());
      return 3;
    }
  }
  return r->errors == 0 && r->checks_failed == 0 ? 0 : 1;
}

}  // namespace
}  // namespace worlddb::load

int main(int argc, char** argv) { return worlddb::load::Main(argc, argv); }
