#include "tools/latency_histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace worlddb::load {

LatencyHistogram::LatencyHistogram() : counts_(kBuckets, 0) {}

size_t LatencyHistogram::BucketOf(uint64_t value) {
  if (value < 2 * kSub) return static_cast<size_t>(value);
  const int msb = 63 - std::countl_zero(value);
  const int shift = msb - kSubBits;  // >= 1
  // (value >> shift) is in [kSub, 2 * kSub): the kSubBits bits below the top one.
  return static_cast<size_t>(shift + 1) * kSub + static_cast<size_t>((value >> shift) - kSub);
}

uint64_t LatencyHistogram::BucketLow(size_t bucket) {
  if (bucket < 2 * kSub) return bucket;
  const int shift = static_cast<int>(bucket / kSub) - 1;
  const uint64_t sub = bucket % kSub + kSub;
  return sub << shift;
}

uint64_t LatencyHistogram::BucketHigh(size_t bucket) {
  if (bucket < 2 * kSub) return bucket;
  const int shift = static_cast<int>(bucket / kSub) - 1;
  const uint64_t sub = bucket % kSub + kSub;
  // The last bucket ends at 2^64 - 1; (sub + 1) << shift would wrap to 0.
  return ((sub + 1) << shift) - 1;
}

void LatencyHistogram::RecordN(uint64_t value_ns, uint64_t n) {
  if (n == 0) return;
  counts_[BucketOf(value_ns)] += n;
  count_ += n;
  sum_ += double(value_ns) * double(n);
  min_ = std::min(min_, value_ns);
  max_ = std::max(max_, value_ns);
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  if (other.count_ == 0) return;
  for (size_t i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  sum_ += other.sum_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
}

void LatencyHistogram::Reset() {
  std::fill(counts_.begin(), counts_.end(), 0);
  count_ = 0;
  min_ = UINT64_MAX;
  max_ = 0;
  sum_ = 0;
}

uint64_t LatencyHistogram::Percentile(double q) const {
  if (count_ == 0) return 0;
  if (q <= 0) return min_;
  // The rank-th smallest value, rank = ceil(q * count) in [1, count].
  const double want = std::ceil(std::min(q, 1.0) * double(count_));
  const uint64_t rank = std::clamp<uint64_t>(static_cast<uint64_t>(want), 1, count_);
  uint64_t seen = 0;
  for (size_t i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::min(BucketHigh(i), max_);
  }
  return max_;
}

}  // namespace worlddb::load
