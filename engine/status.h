// Status and Result<T>: how every expected failure is reported. Nothing on an
// I/O or query path throws; a Status names what was wrong in words a client
// can show to a person ("moves[3]: entity 42: x = nan is not finite").
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>

namespace worlddb {

enum class StatusCode : int {
  kOk = 0,
  kInvalidArgument = 1,    // malformed or out-of-range input
  kNotFound = 2,           // a named kind, column or entity does not exist
  kAlreadyExists = 3,      // a kind or column name is taken
  kResourceExhausted = 4,  // a limit was hit (grid too large, too many kinds)
  kCorruption = 5,         // bytes that fail verification
  kIOError = 6,
  kUnavailable = 7,  // the engine is stopping
};

const char* StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string msg) {
    return {StatusCode::kInvalidArgument, std::move(msg)};
  }
  static Status NotFound(std::string msg) { return {StatusCode::kNotFound, std::move(msg)}; }
  static Status AlreadyExists(std::string msg) {
    return {StatusCode::kAlreadyExists, std::move(msg)};
  }
  static Status ResourceExhausted(std::string msg) {
    return {StatusCode::kResourceExhausted, std::move(msg)};
  }
  static Status Corruption(std::string msg) { return {StatusCode::kCorruption, std::move(msg)}; }
  static Status IOError(std::string msg) { return {StatusCode::kIOError, std::move(msg)}; }
  static Status Unavailable(std::string msg) { return {StatusCode::kUnavailable, std::move(msg)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "InvalidArgument: moves[3]: ..." or "OK".
  std::string ToString() const;

 private:
  Status(StatusCode code, std::string msg) : code_(code), message_(std::move(msg)) {}
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// A value or the Status saying why there is none.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) { assert(!status_.ok()); }  // NOLINT

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() & {
    assert(ok());
    return *value_;
  }
  const T& value() const& {
    assert(ok());
    return *value_;
  }
  T&& value() && {
    assert(ok());
    return std::move(*value_);
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }

 private:
  Status status_;
  std::optional<T> value_;
};

#define WORLDDB_RETURN_IF_ERROR(expr) \
  do {                                \
    ::worlddb::Status _st = (expr);   \
    if (!_st.ok()) return _st;        \
  } while (0)

}  // namespace worlddb
