// UTF-8 validation for string column values (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF).
#pragma once

#include <cstddef>

namespace worlddb {

bool IsValidUtf8(const char* data, size_t size);

}  // namespace worlddb
