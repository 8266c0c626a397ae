// Generator for the "aoi-1m" workload (../shared/workloads/aoi.md).
//
// Contract
//   * Follows §2-§4 of the spec draw for draw: every random quantity comes from
//     its own splitmix64 stream seeded with kBaseSeed + tag, and draws are taken
//     in exactly the order the spec writes them. Changing the order of any two
//     draws changes every later value and breaks the §8 checksums.
//   * Positions are stored by index id - 1 (ids are 1..n).
//   * Deterministic across runs and (up to last-ulp libm differences in log/cos/
//     sin, see spec §2) across platforms. Build with -ffp-contract=off: the
//     reference values assume no fused multiply-add.
//
// Thread safety: a constructed AoiWorkload is immutable; its const methods may
// be called from several threads. SplitMix64 and MoveStepper are not shared.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace worlddb::aoi {

// ---- Constants of the spec (§1, §4) -----------------------------------------
inline constexpr uint64_t kBaseSeed = 20240601;
inline constexpr double kWorldSize = 10000.0;  // world is [0, kWorldSize]^2
inline constexpr size_t kDefaultEntities = 1000000;
inline constexpr double kQueryRadius = 50.0;
inline constexpr size_t kKnnK = 16;
inline constexpr size_t kNumQueries = 100000;  // per query phase

// Stream tags (§2): stream `tag` starts at state kBaseSeed + tag.
inline constexpr uint64_t kStreamUniform = 1;
inline constexpr uint64_t kStreamClustered = 2;
inline constexpr uint64_t kStreamMove = 3;
inline constexpr uint64_t kStreamRadiusQuery = 4;
inline constexpr uint64_t kStreamKnnQuery = 5;

// Clustered distribution (§3).
inline constexpr int kHotspots = 20;
inline constexpr double kHotspotSigma = 200.0;
inline constexpr double kClusteredFraction = 0.8;

enum class Distribution { kUniform, kClustered };

// "uniform" / "clustered", as the spec and benchmark names spell them.
std::string_view DistributionName(Distribution dist);

// splitmix64 with the spec's U() and G() on top.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  // The stream with the given tag (§2).
  static SplitMix64 Stream(uint64_t tag) { return SplitMix64(kBaseSeed + tag); }

  uint64_t Next() {
    state_ += 0x9E3779B97F4A7C15ULL;
    uint64_t z = state_;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  // Uniform double in [0, 1) with 53 random bits.
  double U() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  // One standard normal: Box-Muller, cos branch only; takes exactly two U().
  double G();

 private:
  uint64_t state_;
};

// clamp(v) of §2: into [0, kWorldSize]. Inline: worldload calls it twice per
// move, millions of times a second.
inline double ClampToWorld(double v) { return std::min(std::max(v, 0.0), kWorldSize); }

// The move step (§4.2) as a stream: each call draws a = 2*pi*U(), d = 2*U()
// and moves (x, y) by d in direction a, clamped to the world. One tick is one
// call per entity in id order 1..n; further ticks (not in the spec, which
// defines one) continue the same stream.
class MoveStepper {
 public:
  MoveStepper() : rng_(SplitMix64::Stream(kStreamMove)) {}
  void Step(double x, double y, double* new_x, double* new_y);

 private:
  SplitMix64 rng_;
};

// One (N, distribution) instance of the workload, fully materialised: the load
// positions, the post-move positions after one tick, and the query id lists.
// At N = 1e6 this holds 32 MB of positions plus 0.8 MB of query ids.
class AoiWorkload {
 public:
  // n >= 1 and n < 2^32 (ids are 32-bit).
  explicit AoiWorkload(Distribution dist, size_t n = kDefaultEntities,
                       size_t num_queries = kNumQueries);

  Distribution distribution() const { return dist_; }
  std::string_view distribution_name() const { return DistributionName(dist_); }
  size_t n() const { return load_xs_.size(); }

  // §3 positions, index id - 1.
  const std::vector<double>& load_xs() const { return load_xs_; }
  const std::vector<double>& load_ys() const { return load_ys_; }
  // Positions after one tick of §4.2 applied to the load positions.
  const std::vector<double>& moved_xs() const { return moved_xs_; }
  const std::vector<double>& moved_ys() const { return moved_ys_; }
  // Query entity ids (1-based) of §4.3 (stream 4) and §4.4 (stream 5). The
  // query centre is the entity's post-move position.
  const std::vector<uint32_t>& radius_query_ids() const { return radius_ids_; }
  const std::vector<uint32_t>& knn_query_ids() const { return knn_ids_; }

  // The building blocks, for callers that do not want the whole instance (a
  // load generator streaming to a server, for example).
  static void InitialPositions(Distribution dist, size_t n, std::vector<double>* xs,
                               std::vector<double>* ys);
  // One tick over positions indexed id - 1, in place.
  static void MoveTick(std::vector<double>* xs, std::vector<double>* ys);
  // `count` ids drawn as id = 1 + floor(n * U()) from stream `tag`.
  static std::vector<uint32_t> QueryIds(uint64_t tag, size_t n, size_t count);

 private:
  Distribution dist_;
  std::vector<double> load_xs_, load_ys_;
  std::vector<double> moved_xs_, moved_ys_;
  std::vector<uint32_t> radius_ids_, knn_ids_;
};

}  // namespace worlddb::aoi
