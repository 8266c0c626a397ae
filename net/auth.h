// Auth: bearer tokens with roles, read from a token file (docs/protocol.md
// "Auth").
//
// Token file: one `TOKEN ROLE` per line, separated by whitespace; ROLE is
// read, write or admin; blank lines and lines starting with '#' are ignored.
// A token is 1..256 printable ASCII bytes without whitespace. A token may
// appear once.
//
// Roles are ordered: read < write < admin; a role may do what the roles below
// it may.
//
// Thread safety: a TokenTable is immutable after Load/Parse; Lookup may be
// called from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/status.h"

namespace worlddb::net {

enum class Role : uint8_t { kNone = 0, kRead = 1, kWrite = 2, kAdmin = 3 };
const char* RoleName(Role r);

inline constexpr size_t kMaxTokenBytes = 256;

class TokenTable {
 public:
  static Result<TokenTable> Load(const std::string& path);
  // `text` is the file's content; `origin` names it in errors.
  static Result<TokenTable> Parse(std::string_view text, const std::string& origin);

  // The role of `token`, or nothing. Compares against every entry in
  // constant time per entry (no early exit on the first differing byte and
  // none on a match), so the timing does not reveal how much of a token was
  // right.
  std::optional<Role> Lookup(std::string_view token) const;
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::string token;
    Role role;
  };
  std::vector<Entry> entries_;
};

// Equal in time that depends only on the lengths' maximum, not on the bytes.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace worlddb::net
