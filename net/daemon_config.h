// DaemonConfig: the `worlddb` config file on top of CLI11, which reads the
// TOML file (--config FILE; keys are the flag names without dashes, e.g.
// `data-dir = '/srv/worlddb'`), merges it under the command line (a flag
// given on the command line wins) and refuses unknown keys.
//
// CLI11 2.1.2 (Debian 12) is lax where an operator's typo should be loud, so
// TightenValueChecks adds, to every option of the app:
//   * unsigned settings: decimal digits only. CLI11 alone converts with
//     strtoull(base 0), so `-1` became 2^64-1, `010` was octal 8 and `0x10`
//     was hex;
//   * signed settings: an optional '-' and decimal digits;
//   * flags (on/off settings): exactly `true` or `false` in the file (CLI11
//     alone took `salvage = 3` as true).
// What it cannot fix: CLI11 does not decode escapes in double-quoted
// strings ("a\\b" stays a\\b). No setting needs an escape (paths, addresses,
// words), and EffectiveConfigToml writes literal strings ('...'), which CLI11
// reads back exactly; docs/ARCHITECTURE.md "Daemon" says so.
//
// Thread safety: plain functions on an App the caller owns.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "engine/status.h"

namespace worlddb::net {

// Adds the checks above to every option of `app` that exists now; call after
// the last add_option/add_flag.
void TightenValueChecks(CLI::App* app);

// The settings in force after app.parse(): for every option (except help,
// --config and --print-config) its value from the command line, else the
// file, else its default, as a TOML document that --config reads back to the
// same settings. Each key is preceded by its help text as a comment.
// Strings that cannot be written as a TOML literal string (they hold a `'` or
// a control character) are refused: CLI11 could not read them back.
Result<std::string> EffectiveConfigToml(const CLI::App& app);

// A parse error as one line naming the setting: "--port = abc: ..." already
// names it for values; for the config file CLI11 says "INI was not able to
// parse KEY", which this rewrites as "config file FILE: unknown key 'KEY'".
std::string DescribeParseError(const CLI::App& app, const CLI::ParseError& e);

}  // namespace worlddb::net
