// LatencyHistogram: an HDR-style log-linear histogram of latencies in
// nanoseconds, for load generators (tools/worldload).
//
// Contract
//   * Values below 2^(kSubBits+1) ns (256 ns) are counted exactly; above that a
//     value lands in a bucket whose width is at most 1/2^kSubBits (0.78 %) of
//     its lower bound, so every percentile is reported within 0.78 % (plus
//     1 ns) of the exact order statistic. The range is all of uint64_t.
//   * Percentile(q) returns the upper bound of the bucket holding the
//     ceil(q * count)-th smallest value (q in [0, 1]; the smallest value for
//     q = 0), capped at the largest value recorded: never below the exact
//     value. Percentiles of several histograms are taken after Merge(), never
//     averaged (an average of percentiles is not a percentile).
//   * Fixed memory: 7,424 counters (58 KiB), no allocation after construction.
//
// Thread safety: none; one histogram per thread, merged afterwards.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace worlddb::load {

class LatencyHistogram {
 public:
  static constexpr int kSubBits = 7;
  static constexpr uint64_t kSub = uint64_t{1} << kSubBits;  // sub-buckets per power of two
  // Exact values 0..2*kSub-1, then kSub buckets per power of two up to 2^63.
  static constexpr size_t kBuckets = (64 - kSubBits + 1) * kSub;

  LatencyHistogram();

  void Record(uint64_t value_ns) { RecordN(value_ns, 1); }
  void RecordN(uint64_t value_ns, uint64_t n);
  void Merge(const LatencyHistogram& other);
  void Reset();

  uint64_t count() const { return count_; }
  uint64_t min() const { return count_ ? min_ : 0; }
  uint64_t max() const { return max_; }
  double mean() const { return count_ ? sum_ / double(count_) : 0; }
  // See the contract; 0 when empty.
  uint64_t Percentile(double q) const;

  // Bucket arithmetic, public for the tests.
  static size_t BucketOf(uint64_t value);
  static uint64_t BucketLow(size_t bucket);
  static uint64_t BucketHigh(size_t bucket);

 private:
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0, min_ = UINT64_MAX, max_ = 0;
  double sum_ = 0;  // for the mean only
};

}  // namespace worlddb::load
