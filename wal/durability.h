// Durability: a server's durability mode, as operators write it
// ("always", "interval:MS", "none"; docs/operations.md "Durability modes").
// What each mode promises is implemented by wal/log_writer.h and written
// down in docs/wal_format.md.
//
// Thread safety: plain data and pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "engine/status.h"

namespace worlddb::wal {

struct Durability {
  enum class Mode : uint8_t { kNone, kAlways, kInterval };
  Mode mode = Mode::kAlways;
  uint32_t interval_ms = 10;  // kInterval: fdatasync at least this often

  // "always", "interval" (10 ms), "interval:MS" (1..3,600,000) or "none";
  // anything else is refused with a message quoting it.
  static Result<Durability> Parse(std::string_view text);
  std::string ToString() const;
};

}  // namespace worlddb::wal
