#include "net/json_log_formatter.h"

#include <chrono>
#include <cstdio>
#include <ctime>

namespace worlddb::net {
namespace {

// Length of the valid UTF-8 sequence starting at s[i], or 0 if there is none
// (overlong forms, surrogates and code points past U+10FFFF are invalid).
size_t Utf8Length(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const auto cont = [&](size_t k) { return i + k < s.size() && (b(k) & 0xC0) == 0x80; };
  const unsigned char c = b(0);
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    if (c == 0xE0 && b(1) < 0xA0) return 0;   // overlong
    if (c == 0xED && b(1) >= 0xA0) return 0;  // UTF-16 surrogates
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (c == 0xF0 && b(1) < 0x90) return 0;   // overlong
    if (c == 0xF4 && b(1) >= 0x90) return 0;  // past U+10FFFF
    return 4;
  }
  return 0;
}

void Append(spdlog::memory_buf_t* dest, std::string_view s) {
  dest->append(s.data(), s.data() + s.size());
}

}  // namespace

void JsonLogFormatter::AppendEscaped(std::string_view s, spdlog::memory_buf_t* dest) {
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"':
        Append(dest, "\\\"");
        ++i;
        continue;
      case '\\':
        Append(dest, "\\\\");
        ++i;
        continue;
      case '\n':
        Append(dest, "\\n");
        ++i;
        continue;
      case '\r':
        Append(dest, "\\r");
        ++i;
        continue;
      case '\t':
        Append(dest, "\\t");
        ++i;
        continue;
      default:
        break;
    }
    if (c < 0x20 || c == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
      Append(dest, buf);
      ++i;
      continue;
    }
    const size_t n = Utf8Length(s, i);
    if (n == 0) {
      Append(dest, "\\ufffd");  // one replacement character per invalid byte
      ++i;
      continue;
    }
    Append(dest, s.substr(i, n));
    i += n;
  }
}

std::string JsonLogFormatter::Escape(std::string_view s) {
  spdlog::memory_buf_t buf;
  AppendEscaped(s, &buf);
  return std::string(buf.data(), buf.size());
}

void JsonLogFormatter::format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) {
  using namespace std::chrono;
  const auto since_epoch = msg.time.time_since_epoch();
  const std::time_t secs = duration_cast<seconds>(since_epoch).count();
  const auto micros = duration_cast<microseconds>(since_epoch).count() % 1000000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char time_buf[96];  // room for any int the compiler can imagine in each field
  std::snprintf(time_buf, sizeof time_buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ",
                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<long long>(micros));
  const auto level = spdlog::level::to_string_view(msg.level);
  Append(&dest, "{\"time\":\"");
  AppendEscaped(time_buf, &dest);
  Append(&dest, "\",\"level\":\"");
  AppendEscaped(std::string_view(level.data(), level.size()), &dest);
  Append(&dest, "\",\"logger\":\"");
  AppendEscaped(std::string_view(msg.logger_name.data(), msg.logger_name.size()), &dest);
  Append(&dest, "\",\"msg\":\"");
  AppendEscaped(std::string_view(msg.payload.data(), msg.payload.size()), &dest);
  Append(&dest, "\"}\n");
}

std::unique_ptr<spdlog::formatter> JsonLogFormatter::clone() const {
  return std::make_unique<JsonLogFormatter>();
}

}  // namespace worlddb::net
