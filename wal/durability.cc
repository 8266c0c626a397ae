#include "wal/durability.h"

#include <charconv>

namespace worlddb::wal {

Result<Durability> Durability::Parse(std::string_view text) {
  Durability d;
  if (text == "always") return d;
  if (text == "none") {
    d.mode = Mode::kNone;
    return d;
  }
  if (text == "interval") {
    d.mode = Mode::kInterval;
    return d;
  }
  constexpr std::string_view kPrefix = "interval:";
  if (text.substr(0, kPrefix.size()) == kPrefix) {
    const std::string_view ms = text.substr(kPrefix.size());
    uint32_t v = 0;
    auto [end, ec] = std::from_chars(ms.data(), ms.data() + ms.size(), v);
    if (ec == std::errc() && end == ms.data() + ms.size() && v >= 1 && v <= 3'600'000) {
      d.mode = Mode::kInterval;
      d.interval_ms = v;
      return d;
    }
    return Status::InvalidArgument("durability \"" + std::string(text) +
                                   "\": the interval must be a whole number of milliseconds "
                                   "from 1 to 3600000, as in interval:10");
  }
  return Status::InvalidArgument("durability \"" + std::string(text) +
                                 "\" is not one of always, interval:MS, none");
}

std::string Durability::ToString() const {
  switch (mode) {
    case Mode::kNone:
      return "none";
    case Mode::kAlways:
      return "always";
    case Mode::kInterval:
      return "interval:" + std::to_string(interval_ms);
  }
  return "?";
}

}  // namespace worlddb::wal
