#include "tools/redis_geo.h"

#include <cmath>

namespace worlddb::load {

double RedisGeo::HaversineMetres(double lon1, double lat1, double lon2, double lat2) {
  // The same formula, in the same order, as Redis 7's geohashGetDistance.
  const double rad = kPi / 180.0;
  const double lat1r = lat1 * rad, lat2r = lat2 * rad;
  const double u = std::sin((lat2r - lat1r) / 2);
  const double v = std::sin((lon2 * rad - lon1 * rad) / 2);
  return 2.0 * kEarthRadiusMetres *
         std::asin(std::sqrt(u * u + std::cos(lat1r) * std::cos(lat2r) * v * v));
}

}  // namespace worlddb::load
