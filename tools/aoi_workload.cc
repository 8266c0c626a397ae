#include "tools/aoi_workload.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <numbers>

namespace worlddb::aoi {

namespace {

// Doubling is exact, so kTwoPi * u has the same bits as the spec's 2*pi*u
// evaluated left to right.
constexpr double kTwoPi = 2.0 * std::numbers::pi;

}  // namespace

std::string_view DistributionName(Distribution dist) {
  return dist == Distribution::kUniform ? "uniform" : "clustered";
}

double SplitMix64::G() {
  // u1 is drawn first and taken from (0, 1] so log() never sees 0.
  const double u1 = 1.0 - U();
  const double u2 = U();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(kTwoPi * u2);
}

void MoveStepper::Step(double x, double y, double* new_x, double* new_y) {
  const double a = kTwoPi * rng_.U();
  const double d = 2.0 * rng_.U();
  *new_x = ClampToWorld(x + d * std::cos(a));
  *new_y = ClampToWorld(y + d * std::sin(a));
}

void AoiWorkload::InitialPositions(Distribution dist, size_t n, std::vector<double>* xs,
                                   std::vector<double>* ys) {
  xs->resize(n);
  ys->resize(n);
  if (dist == Distribution::kUniform) {
    SplitMix64 rng = SplitMix64::Stream(kStreamUniform);
    for (size_t i = 0; i < n; ++i) {
      // Separate statements: x is drawn before y.
      const double x = kWorldSize * rng.U();
      const double y = kWorldSize * rng.U();
      (*xs)[i] = x;
      (*ys)[i] = y;
    }
    return;
  }
  SplitMix64 rng = SplitMix64::Stream(kStreamClustered);
  double cx[kHotspots], cy[kHotspots];
  for (int h = 0; h < kHotspots; ++h) {
    cx[h] = 1000.0 + 8000.0 * rng.U();
    cy[h] = 1000.0 + 8000.0 * rng.U();
  }
  for (size_t i = 0; i < n; ++i) {
    double x, y;
    if (rng.U() < kClusteredFraction) {
      const int h = static_cast<int>(std::floor(kHotspots * rng.U()));
      const double gx = rng.G();
      const double gy = rng.G();
      x = ClampToWorld(cx[h] + kHotspotSigma * gx);
      y = ClampToWorld(cy[h] + kHotspotSigma * gy);
    } else {
      x = kWorldSize * rng.U();
      y = kWorldSize * rng.U();
    }
    (*xs)[i] = x;
    (*ys)[i] = y;
  }
}

void AoiWorkload::MoveTick(std::vector<double>* xs, std::vector<double>* ys) {
  assert(xs->size() == ys->size());
  MoveStepper stepper;
  for (size_t i = 0; i < xs->size(); ++i) {
    stepper.Step((*xs)[i], (*ys)[i], &(*xs)[i], &(*ys)[i]);
  }
}

std::vector<uint32_t> AoiWorkload::QueryIds(uint64_t tag, size_t n, size_t count) {
  SplitMix64 rng = SplitMix64::Stream(tag);
  const double dn = static_cast<double>(n);
  std::vector<uint32_t> ids(count);
  for (size_t q = 0; q < count; ++q) {
    ids[q] = 1 + static_cast<uint32_t>(std::floor(dn * rng.U()));
  }
  return ids;
}

AoiWorkload::AoiWorkload(Distribution dist, size_t n, size_t num_queries) : dist_(dist) {
  assert(n >= 1 && n < (size_t{1} << 32));
  InitialPositions(dist, n, &load_xs_, &load_ys_);
  moved_xs_ = load_xs_;
  moved_ys_ = load_ys_;
  MoveTick(&moved_xs_, &moved_ys_);
  radius_ids_ = QueryIds(kStreamRadiusQuery, n, num_queries);
  knn_ids_ = QueryIds(kStreamKnnQuery, n, num_queries);
}

}  // namespace worlddb::aoi
