// Every tunable limit of the store in one place, tied together by
// static_asserts. Limits that outside input can hit (string length, grid size,
// k) are checked and refused with an error naming the value; none is a crash.
#pragma once

#include <cstddef>
#include <cstdint>

namespace worlddb {

// ---- World ----------------------------------------------------------------
// Default world bounds: must hold the benchmark worlds ([0, 10000]^2 in
// ../shared/workloads/aoi.md) with room to spare.
inline constexpr double kDefaultWorldMin = -1048576.0;  // -2^20 m
inline constexpr double kDefaultWorldMax = 1048576.0;   // +2^20 m

// ---- Schema ----------------------------------------------------------------
inline constexpr size_t kMaxKinds = 1024;
inline constexpr size_t kMaxColumnsPerKind = 256;
inline constexpr size_t kMaxNameLength = 64;           // kind and column names
inline constexpr uint32_t kMaxStringLength = 1 << 16;  // hard cap of a string column
inline constexpr uint32_t kDefaultStringLength = 256;  // when a column declares none

// ---- Storage -----------------------------------------------------------------
// Tables grow in chunks of this many rows; growth never copies existing rows.
inline constexpr size_t kChunkRowsLog2 = 12;
inline constexpr size_t kChunkRows = size_t{1} << kChunkRowsLog2;
inline constexpr uint32_t kMaxRowsPerTable = UINT32_MAX - 1;

// ---- Spatial index -------------------------------------------------------------
// A leaf splits when it would hold more than kLeafSplit entries and merges back
// into its parent when the parent's four leaf children together hold no more
// than kLeafMerge. The gap between the two is the hysteresis that keeps an
// entity oscillating across a boundary from splitting and merging every tick.
inline constexpr uint32_t kLeafSplit = 32;
inline constexpr uint32_t kLeafMerge = 8;
// Below this depth a leaf no longer splits (cells of world/2^kMaxDepth; with
// the default world that is ~0.1 mm); it grows instead.
inline constexpr uint32_t kMaxDepth = 32;

// ---- Queries -------------------------------------------------------------------
inline constexpr uint32_t kMaxK = 1 << 20;
inline constexpr uint64_t kMaxDensityCells = uint64_t{1} << 22;  // 2048 x 2048
inline constexpr size_t kMaxPredicates = 32;

static_assert(kLeafMerge * 4 <= kLeafSplit + 1,
              "merging must not immediately produce a leaf that splits again");
static_assert(kLeafMerge > 0 && kLeafSplit >= 4, "leaf thresholds");
static_assert((kChunkRows & (kChunkRows - 1)) == 0, "chunk rows must be a power of two");
static_assert(kDefaultStringLength <= kMaxStringLength, "default string length");
static_assert(kDefaultWorldMin < 0 && kDefaultWorldMax > 10000,
              "default world holds the benchmark world");
static_assert(kMaxKinds <= 65535, "kind ids are 16-bit");

}  // namespace worlddb
