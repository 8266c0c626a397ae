// RedisGeo: how worldload maps its planar world (metres) onto Redis GEO's
// longitude/latitude, and back (../shared/workloads/aoi.md §7).
//
// Contract
//   * One factor for both axes: degrees = metres * 180 / (pi * R) with R =
//     6372797.560856 m, Redis' own sphere radius (EARTH_RADIUS_IN_METERS in
//     geohash_helper.c), i.e. 111,226.29 m per degree. lon = x * factor,
//     lat = y * factor. The aoi world [0, 10000]^2 m becomes [0, 0.0899]^2
//     degrees at the equator, where cos(lat) >= 0.9999988, so Redis'
//     haversine distance equals the planar distance to ~1e-6 relative, and
//     radii are passed to Redis in metres unchanged.
//   * Precision: Redis keeps a 52-bit geohash (26 bits per axis) and answers
//     with the cell centre: 0.597 m (lon) x 0.282 m (lat) cells here, so a
//     stored point is up to kMaxStoredError (0.334 m) from where it was put.
//     Answers near a circle's edge (and kNN ties) may therefore differ from
//     the exact planar answer by points within kCompareTolerance of the edge;
//     worldload's result checks allow exactly that.
//   * Valid for worlds within a few tens of kilometres of (0, 0); worldload's
//     world is at most 10 km on a side.
#pragma once

namespace worlddb::load {

class RedisGeo {
 public:
  static constexpr double kEarthRadiusMetres = 6372797.560856;
  static constexpr double kPi = 3.14159265358979323846;
  static constexpr double kDegreesPerMetre = 180.0 / (kPi * kEarthRadiusMetres);
  // Half the diagonal of a 52-bit geohash cell at the equator (0.597 x 0.282 m
  // here): 0.3335 m.
  static constexpr double kMaxStoredError = 0.334;
  // What a planar answer and Redis' may disagree by: the stored error plus the
  // haversine-vs-plane difference (cos(lat) >= 0.9999988: 1.2e-6 relative,
  // 0.017 m across the 14.1 km diagonal of the world).
  static constexpr double kCompareTolerance = 0.36;

  static double ToDegrees(double metres) { return metres * kDegreesPerMetre; }
  static double ToMetres(double degrees) { return degrees / kDegreesPerMetre; }
  // Redis' great-circle distance (geohashGetDistance: haversine on the sphere
  // of kEarthRadiusMetres) between two points given in degrees.
  static double HaversineMetres(double lon1, double lat1, double lon2, double lat2);
};

}  // namespace worlddb::load
