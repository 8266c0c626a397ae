// Column types and typed values.
#pragma once

#include <cstdint>
#include <string>
#include <variant>

namespace worlddb {

// The order matches Value's alternatives and the FlatBuffers enum
// fb::ColumnType in engine/batch.fbs (static_asserts in schema.cc).
enum class ColumnType : uint8_t { kBool = 0, kI32 = 1, kI64 = 2, kF32 = 3, kF64 = 4, kString = 5 };

using Value = std::variant<bool, int32_t, int64_t, float, double, std::string>;

inline ColumnType TypeOf(const Value& v) { return static_cast<ColumnType>(v.index()); }
const char* ColumnTypeName(ColumnType t);
// "true", "-3", "1.5", "\"orc\"" — for error messages and tools.
std::string ValueToString(const Value& v);
// The zero value of a type (false, 0, 0.0, "").
Value ZeroValue(ColumnType t);

}  // namespace worlddb
