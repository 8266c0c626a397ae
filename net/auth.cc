#include "net/auth.h"

#include <fstream>
#include <sstream>

namespace worlddb::net {

const char* RoleName(Role r) {
  switch (r) {
    case Role::kNone:
      return "none";
    case Role::kRead:
      return "read";
    case Role::kWrite:
      return "write";
    case Role::kAdmin:
      return "admin";
  }
  return "?";
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  const size_t n = a.size() > b.size() ? a.size() : b.size();
  // Read both strings over the longer length (zero past the end) so that a
  // length mismatch costs as much as a content mismatch.
  volatile uint8_t diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    const uint8_t x = i < a.size() ? static_cast<uint8_t>(a[i]) : 0;
    const uint8_t y = i < b.size() ? static_cast<uint8_t>(b[i]) : 0;
    diff = diff | static_cast<uint8_t>(x ^ y);
  }
  return diff == 0;
}

Result<TokenTable> TokenTable::Parse(std::string_view text, const std::string& origin) {
  TokenTable t;
  size_t line_no = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string line(text.substr(pos, end - pos));
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::istringstream in(line);
    std::string token, role, extra;
    if (!(in >> token) || token[0] == '#') continue;
    const std::string where = origin + " line " + std::to_string(line_no);
    if (!(in >> role)) {
      return Status::InvalidArgument(where + ": expected `TOKEN ROLE` (role read, write or admin)");
    }
    if (in >> extra) {
      return Status::InvalidArgument(where + ": unexpected text after the role: `" + extra + "`");
    }
    if (token.size() > kMaxTokenBytes) {
      return Status::InvalidArgument(where + ": token longer than " +
                                     std::to_string(kMaxTokenBytes) + " bytes");
    }
    for (char c : token) {
      if (c < 0x21 || c > 0x7e) {
        return Status::InvalidArgument(where + ": token has a non-printable or non-ASCII byte");
      }
    }
    Role r;
    if (role == "read") {
      r = Role::kRead;
    } else if (role == "write") {
      r = Role::kWrite;
    } else if (role == "admin") {
      r = Role::kAdmin;
    } else {
      return Status::InvalidArgument(where + ": unknown role `" + role +
                                     "` (expected read, write or admin)");
    }
    for (const Entry& e : t.entries_) {
      if (e.token == token) return Status::InvalidArgument(where + ": duplicate token");
    }
    t.entries_.push_back({std::move(token), r});
  }
  if (t.entries_.empty()) {
    return Status::InvalidArgument(origin + ": no tokens (one `TOKEN ROLE` per line)");
  }
  return t;
}

Result<TokenTable> TokenTable::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IOError("cannot read the token file " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return Parse(ss.str(), path);
}

std::optional<Role> TokenTable::Lookup(std::string_view token) const {
  Role found = Role::kNone;
  // Every entry is compared, matched or not.
  for (const Entry& e : entries_) {
    const bool eq = ConstantTimeEquals(e.token, token);
    found = eq ? e.role : found;
  }
  if (token.empty() || found == Role::kNone) return std::nullopt;
  return found;
}

}  // namespace worlddb::net
