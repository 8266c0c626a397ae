#include "net/daemon_config.h"

#include <string_view>

namespace worlddb::net {
namespace {

bool IsFlag(const CLI::Option& o) { return o.get_expected_min() == 0; }

// "UINT", "INT", "FLOAT", "TEXT", ...: CLI11 appends validators'
// descriptions after a ':' ("UINT:INT in [1 - 1048576]").
std::string BaseType(const CLI::Option& o) {
  const std::string t = o.get_type_name();
  return t.substr(0, t.find(':'));
}

bool Skipped(const CLI::Option& o) {
  const std::string name = o.get_single_name();
  return name == "help" || name == "config" || name == "print-config";
}

bool AllDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

std::string CheckUnsigned(const std::string& s) {
  if (!AllDigits(s)) return "'" + s + "' is not a non-negative decimal integer";
  if (s.size() > 1 && s[0] == '0') return "'" + s + "': no leading zeros (not octal)";
  return "";
}

std::string CheckSigned(const std::string& s) {
  const std::string_view digits = !s.empty() && s[0] == '-' ? std::string_view(s).substr(1) : s;
  if (!AllDigits(digits)) return "'" + s + "' is not a decimal integer";
  if (digits.size() > 1 && digits[0] == '0') return "'" + s + "': no leading zeros (not octal)";
  return "";
}

std::string CheckBool(const std::string& s) {
  return s == "true" || s == "false" ? "" : "'" + s + "' is not true or false";
}

// Literal strings hold anything but `'` and control characters (TOML 1.0).
bool LiteralStringOk(std::string_view s) {
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\'' || u < 0x20 || u == 0x7F) return false;
  }
  return true;
}

// "# line one\n# line two\n"
std::string Comment(const std::string& text) {
  std::string out = "# ";
  for (char c : text) {
    out += c;
    if (c == '\n') out += "# ";
  }
  return out + "\n";
}

}  // namespace

void TightenValueChecks(CLI::App* app) {
  for (CLI::Option* o : app->get_options()) {
    if (Skipped(*o)) continue;
    if (IsFlag(*o)) {
      o->check(CLI::Validator(CheckBool, "true|false"));
      continue;
    }
    const std::string type = BaseType(*o);
    if (type == "UINT") {
      o->check(CLI::Validator(CheckUnsigned, ""));
    } else if (type == "INT") {
      o->check(CLI::Validator(CheckSigned, ""));
    }
  }
}

Result<std::string> EffectiveConfigToml(const CLI::App& app) {
  std::string out =
      "# worlddb --print-config: the settings in force (command line over config file over\n"
      "# defaults). Feed it back with --config FILE.\n";
  for (const CLI::Option* o : app.get_options()) {
    if (Skipped(*o)) continue;
    const std::string key = o->get_single_name();
    std::string value;
    if (IsFlag(*o)) {
      bool on = false;
      if (o->count() > 0) {
        on = o->as<bool>();
      } else {
        on = o->get_default_str() == "true" || o->get_default_str() == "1";
      }
      value = on ? "true" : "false";
    } else {
      const std::string raw = o->count() > 0 ? o->as<std::string>() : o->get_default_str();
      const std::string type = BaseType(*o);
      if (type == "UINT" || type == "INT" || type == "FLOAT") {
        value = raw;
      } else {
        if (!LiteralStringOk(raw)) {
          return Status::InvalidArgument("--print-config: the value of " + key +
                                         " holds a ' or a control character, which the config "
                                         "file reader cannot read back");
        }
        value = "'" + raw + "'";
      }
    }
    out += "\n" + Comment(o->get_description());
    out += key + " = " + value + "\n";
  }
  return out;
}

std::string DescribeParseError(const CLI::App& app, const CLI::ParseError& e) {
  std::string what = e.what();
  const CLI::Option* config = app.get_config_ptr();
  const std::string file =
      config != nullptr && config->count() > 0 ? config->as<std::string>() : std::string();
  static constexpr std::string_view kIni = "INI was not able to parse ";
  if (what.rfind(kIni, 0) == 0) {
    return "config file " + file + ": unknown key '" + what.substr(kIni.size()) +
           "' (keys are the flag names without dashes; worlddb --help lists them)";
  }
  if (!file.empty()) return what + " (command line or config file " + file + ")";
  return what;
}

}  // namespace worlddb::net
