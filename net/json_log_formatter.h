// JsonLogFormatter: the daemon's `--log-format json` lines. One JSON object
// per event, every field escaped through one function, so that nothing a
// message, a path or a client-supplied name carries can break the line:
//
//   {"time":"2026-11-23T07:01:02.123456Z","level":"info","logger":"worlddb","msg":"..."}
//
// Escaping: `"` and `\` are escaped, control characters (< 0x20, and 0x7f)
// become \n, \t, \r or \u00XX, and bytes that are not valid UTF-8 become
// U+FFFD, so every line is valid JSON (RFC 8259 wants UTF-8) whatever the
// bytes logged. A spdlog pattern cannot give this: only a custom flag sees
// the message, and the other fields would go out raw.
//
// Thread safety: like any spdlog formatter, used under the sink's lock;
// clone() gives each sink its own.
#pragma once

#include <spdlog/formatter.h>

#include <memory>
#include <string>
#include <string_view>

namespace worlddb::net {

class JsonLogFormatter : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override;
  std::unique_ptr<spdlog::formatter> clone() const override;

  // Appends `s` escaped as the inside of a JSON string (no quotes).
  static void AppendEscaped(std::string_view s, spdlog::memory_buf_t* dest);
  static std::string Escape(std::string_view s);
};

}  // namespace worlddb::net
