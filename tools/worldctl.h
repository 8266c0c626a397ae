// worldctl: the operator's command line. tools/worldctl.cc holds main() and
// the online subcommands (they talk to a running server through the client
// library, net/client.h); offline subcommands on a data directory live in
// tools/worldctl_offline.cc and register themselves through
// AddOfflineCommands().
//
// Exit codes (scripts rely on them; docs/ARCHITECTURE.md "Client library
// and worldctl" repeats them):
//   0  success
//   1  the server refused the request (its error message is printed)
//   2  usage error: bad flags, arguments or input lines (nothing was sent
//      for the offending request)
//   3  connection error: cannot connect, connection lost, timeout, or a
//      response that is not valid protocol
// Offline subcommands use the same codes (1 for damage found or a failed
// operation), and `wal verify` also 4 (kExitTornTail).
//
// Output goes to stdout (an aligned table, or JSON with --json); errors go to
// stderr as "worldctl: <what was wrong>".
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <string_view>

namespace worlddb::worldctl {

enum ExitCode : int {
  kExitOk = 0,
  kExitServerError = 1,
  kExitUsage = 2,
  kExitConnection = 3,
  kExitTornTail = 4,  // `wal verify`: sound, but ends in a torn tail recovery will cut
};

// `s` as a JSON string literal, quoted and escaped (control characters as \uXXXX).
std::string JsonString(std::string_view s);

// Registers the offline subcommands on `app`; each sets *exit_code when it
// runs. Defined in tools/worldctl_offline.cc.
void AddOfflineCommands(CLI::App& app, int* exit_code);

// Registers `capacity` (tools/worldctl_capacity.cc); *json is the global
// --json flag, read when it runs.
void AddCapacityCommand(CLI::App& app, const bool* json, int* exit_code);

}  // namespace worlddb::worldctl
