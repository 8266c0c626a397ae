// Metrics primitives and the Prometheus text exposition format (version
// 0.0.4, https://prometheus.io/docs/instrumenting/exposition_formats/).
//
//   * Histogram: fixed bucket bounds chosen at construction, integer
//     observations (nanoseconds, records, bytes), relaxed atomic counters.
//     Observe() is a bucket search and three relaxed fetch_adds: no lock and
//     no allocation, so it may sit on the request path of any thread.
//   * PrometheusWriter: renders families (HELP and TYPE once per name),
//     samples with escaped label values, and histograms with cumulative
//     `_bucket{le=...}`, `_sum` and `_count`.
//
// The daemon builds the page on demand (net/daemon_metrics.h) from these and
// from the figures the engine, the log and the world already keep, so there
// is no global registry to keep in step with the code.
//
// Thread safety: Histogram may be observed from any threads and snapshotted
// concurrently (a snapshot is then a consistent-enough picture: its buckets
// are read one by one, and its count is their sum, so the rendered buckets
// are always cumulative and end at _count). PrometheusWriter is not
// thread-safe; use one per page.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace worlddb::net {

// A label set, rendered in the given order.
using Labels = std::vector<std::pair<std::string, std::string>>;

// What a histogram held at one moment: non-cumulative counts per bucket
// (the last is the +Inf overflow), their total and the sum of observations.
struct HistogramSnapshot {
  std::vector<uint64_t> bounds;  // inclusive upper bounds, ascending
  std::vector<uint64_t> counts;  // bounds.size() + 1 entries
  uint64_t count = 0;
  uint64_t sum = 0;
};

class Histogram {
 public:
  // `bounds`: inclusive upper bounds, strictly ascending (an observation v
  // lands in the first bucket with v <= bound; beyond the last, in +Inf).
  explicit Histogram(std::vector<uint64_t> bounds);
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  void Observe(uint64_t value);
  HistogramSnapshot Snapshot() const;
  const std::vector<uint64_t>& bounds() const { return bounds_; }

  // Latency buckets in nanoseconds, 50 us to 10 s (rendered in seconds).
  static std::vector<uint64_t> LatencyBoundsNs();

 private:
  const std::vector<uint64_t> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // bounds_.size() + 1
  std::atomic<uint64_t> sum_{0};
};

class PrometheusWriter {
 public:
  enum class Type { kCounter, kGauge, kHistogram };

  // Starts a family: "# HELP name help" and "# TYPE name type". Call once per
  // name, before its samples.
  void Family(std::string_view name, Type type, std::string_view help);
  // "name{labels} value". Non-finite values are written as NaN, +Inf, -Inf.
  void Sample(std::string_view name, const Labels& labels, double value);
  void Sample(std::string_view name, double value) { Sample(name, {}, value); }
  // A histogram's series: name_bucket{labels,le="..."} (cumulative, ending
  // with le="+Inf"), name_sum and name_count. Bounds and sum are multiplied
  // by `scale` (1e-9 turns nanoseconds into seconds).
  void Histogram(std::string_view name, const Labels& labels, const HistogramSnapshot& h,
                 double scale = 1.0);

  const std::string& text() const { return out_; }
  std::string Take() { return std::move(out_); }

  // A label value with \, " and newline escaped as the format requires.
  static std::string EscapeLabelValue(std::string_view v);
  // HELP text: \ and newline escaped.
  static std::string EscapeHelp(std::string_view v);
  // A number as Prometheus reads it: integers exactly, others with 17
  // significant digits; NaN, +Inf, -Inf.
  static std::string FormatValue(double v);

 private:
  void AppendSeries(std::string_view name, std::string_view suffix, const Labels& labels,
                    const std::pair<std::string, std::string>* extra);

  std::string out_;
};

}  // namespace worlddb::net
