#include "net/metrics.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>

namespace worlddb::net {

Histogram::Histogram(std::vector<uint64_t> bounds)
    : bounds_(std::move(bounds)),
      counts_(std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1)) {
  assert(std::adjacent_find(bounds_.begin(), bounds_.end(), std::greater_equal<uint64_t>()) ==
         bounds_.end());
}

void Histogram::Observe(uint64_t value) {
  const size_t b = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) -
                                       bounds_.begin());
  counts_[b].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

HistogramSnapshot Histogram::Snapshot() const {
  HistogramSnapshot s;
  s.bounds = bounds_;
  s.counts.resize(bounds_.size() + 1);
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    s.counts[i] = counts_[i].load(std::memory_order_relaxed);
    s.count += s.counts[i];
  }
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

std::vector<uint64_t> Histogram::LatencyBoundsNs() {
  // Dense where game clients live (sub-millisecond to tens of ms), sparse
  // beyond: 17 buckets keep one request type's histogram at 20 series.
  return {50'000,      100'000,       250'000,       500'000,       1'000'000,     2'500'000,
          5'000'000,   10'000'000,    25'000'000,    50'000'000,    100'000'000,   250'000'000,
          500'000'000, 1'000'000'000, 2'500'000'000, 5'000'000'000, 10'000'000'000};
}

std::string PrometheusWriter::EscapeLabelValue(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string PrometheusWriter::EscapeHelp(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string PrometheusWriter::FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[32];
  // Counters are integers; print them exactly (up to 2^53) rather than as
  // 1.2345e+06, which Prometheus reads back the same but people do not.
  if (v == std::trunc(v) && std::fabs(v) < 9007199254740992.0) {
    std::snprintf(buf, sizeof(buf), "%.0f", v);
    return buf;
  }
  // The shortest of 15..17 significant digits that reads back as v, so that
  // 50'000 ns * 1e-9 is le="5e-05", not le="5.0000000000000002e-05".
  for (int digits = 15; digits <= 17; ++digits) {
    std::snprintf(buf, sizeof(buf), "%.*g", digits, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

void PrometheusWriter::Family(std::string_view name, Type type, std::string_view help) {
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  out_ += EscapeHelp(help);
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += type == Type::kCounter ? " counter\n"
          : type == Type::kGauge ? " gauge\n"
                                 : " histogram\n";
}

void PrometheusWriter::AppendSeries(std::string_view name, std::string_view suffix,
                                    const Labels& labels,
                                    const std::pair<std::string, std::string>* extra) {
  out_ += name;
  out_ += suffix;
  if (labels.empty() && !extra) return;
  out_ += '{';
  bool first = true;
  auto add = [&](const std::pair<std::string, std::string>& l) {
    if (!first) out_ += ',';
    first = false;
    out_ += l.first;
    out_ += "=\"";
    out_ += EscapeLabelValue(l.second);
    out_ += '"';
  };
  for (const auto& l : labels) add(l);
  if (extra) add(*extra);
  out_ += '}';
}

void PrometheusWriter::Sample(std::string_view name, const Labels& labels, double value) {
  AppendSeries(name, "", labels, nullptr);
  out_ += ' ';
  out_ += FormatValue(value);
  out_ += '\n';
}

void PrometheusWriter::Histogram(std::string_view name, const Labels& labels,
                                 const HistogramSnapshot& h, double scale) {
  uint64_t cumulative = 0;
  std::pair<std::string, std::string> le{"le", ""};
  for (size_t i = 0; i <= h.bounds.size(); ++i) {
    cumulative += i < h.counts.size() ? h.counts[i] : 0;
    le.second = i < h.bounds.size() ? FormatValue(static_cast<double>(h.bounds[i]) * scale)
                                    : std::string("+Inf");
    AppendSeries(name, "_bucket", labels, &le);
    out_ += ' ';
    out_ += std::to_string(cumulative);
    out_ += '\n';
  }
  AppendSeries(name, "_sum", labels, nullptr);
  out_ += ' ';
  out_ += FormatValue(static_cast<double>(h.sum) * scale);
  out_ += '\n';
  AppendSeries(name, "_count", labels, nullptr);
  out_ += ' ';
  out_ += std::to_string(cumulative);
  out_ += '\n';
}

}  // namespace worlddb::net
