// The daemon's configuration, run on the real binary: every flag may come
// from the TOML config file, flags override the file, --print-config prints
// the settings in force as a file that --config reads back to the same
// settings, and bad settings are refused at start (exit 2) naming the key.
// Also the JSON log format: every line is valid JSON whatever bytes a logged
// value holds (the formatter directly, and the daemon's own lines).
// GCC 12 at -O2 with the sanitizers reports -Wmaybe-uninitialized inside
// <regex> (std::function in its NFA), not in this file; -Werror builds would
// fail on it. Set before any include so that the headers are covered.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "engine/batch_builder.h"
#include "gtest/gtest.h"
#include "net/client.h"
#include "net/json_log_formatter.h"
#include "tests/child_process.h"

namespace worlddb::net {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

const std::string kServerBinary = std::string(WORLDDB_BINARY_DIR) + "/net/worlddb";

struct CmdResult {
  int code = -1;
  std::string out;  // stdout (stderr too when merged)
};

CmdResult Sh(const std::string& cmd) {
  CmdResult r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int st = ::pclose(p);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
}

bool HavePython() { return Sh("python3 -c 'import json, tomllib' 2>/dev/null").code == 0; }

// Every line of `text` must parse as a JSON object (python3's strict parser).
// Returns "" or what went wrong.
std::string CheckJsonLines(const fs::path& dir, const std::string& text) {
  const fs::path file = dir / "lines.json";
  WriteFile(file, text);
  CmdResult r =
      Sh("python3 -c 'import json, sys\n"
         "for n, line in enumerate(open(sys.argv[1], \"rb\").read().split(b\"\\n\")):\n"
         "    if line:\n"
         "        obj = json.loads(line.decode(\"utf-8\"))\n"
         "        assert isinstance(obj, dict), n\n"
         "print(\"ok\")' " +
         file.string() + " 2>&1");
  return r.code == 0 && r.out == "ok\n" ? "" : r.out;
}

class ConfigTest : public testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(kServerBinary)) << kServerBinary << " was not built";
    root_ =
        fs::temp_directory_path() / ("worlddb_config_" + std::to_string(getpid()) + "_" +
                                     testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override {
    StopServer();
    fs::remove_all(root_);
  }

  // worlddb ARGS, stdout only (stderr to a file we return on failure).
  CmdResult Daemon(const std::string& args, bool merge_stderr = false) {
    return Sh(kServerBinary + " " + args + (merge_stderr ? " 2>&1" : " 2>/dev/null"));
  }

  fs::path Config(const std::string& name, const std::string& text) {
    const fs::path p = root_ / name;
    WriteFile(p, text);
    return p;
  }

  // Starts worlddb with `args`; waits for "listening on". Output to `log`.
  void StartServer(const std::vector<std::string>& args) {
    log_ = root_ / "server.log";
    std::vector<std::string> full = args;
    full.insert(full.begin(), kServerBinary);
    pid_ = test_util::SpawnLogged(full, log_);
    ASSERT_GE(pid_, 0);
    const auto deadline = Clock::now() + std::chrono::seconds(20);
    while (Clock::now() < deadline) {
      const std::string log = ReadFile(log_);
      const std::smatch m = Match(log, std::regex(R"(listening on [^ ]*:(\d+))"));
      if (!m.empty()) {
        port_ = static_cast<uint16_t>(std::stoi(m[1].str()));
        return;
      }
      int status;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        FAIL() << "worlddb exited at startup:\n" << log;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    FAIL() << "worlddb did not start:\n" << ReadFile(log_);
  }
  int StopServer() {
    if (pid_ <= 0) return -1;
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  static std::smatch Match(const std::string& s, const std::regex& re) {
    std::smatch m;
    std::regex_search(s, m, re);
    return m;
  }

  fs::path root_, log_;
  pid_t pid_ = -1;
  uint16_t port_ = 0;
};

// The long flag names `worlddb --help` lists.
std::set<std::string> HelpFlags(const std::string& help) {
  std::set<std::string> flags;
  const std::regex re(R"((^|[\s,])--([a-z][a-z0-9-]*))");
  for (auto it = std::sregex_iterator(help.begin(), help.end(), re); it != std::sregex_iterator();
       ++it) {
    flags.insert((*it)[2].str());
  }
  return flags;
}

// The keys of a --print-config document.
std::set<std::string> ConfigKeys(const std::string& toml) {
  std::set<std::string> keys;
  std::istringstream in(toml);
  std::string line;
  const std::regex re(R"(^([a-z][a-z0-9-]*) = )");
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_search(line, m, re)) keys.insert(m[1].str());
  }
  return keys;
}

TEST_F(ConfigTest, PrintConfigListsEveryFlagAndExitsZero) {
  CmdResult help = Daemon("--help");
  ASSERT_EQ(help.code, 0) << help.out;
  std::set<std::string> flags = HelpFlags(help.out);
  for (const char* not_a_setting : {"help", "config", "print-config"}) flags.erase(not_a_setting);
  ASSERT_GE(flags.size(), 20u) << help.out;

  CmdResult printed = Daemon("--print-config");
  ASSERT_EQ(printed.code, 0) << printed.out;
  const std::set<std::string> keys = ConfigKeys(printed.out);
  for (const std::string& f : flags) {
    EXPECT_TRUE(keys.count(f)) << "--" << f << " has no key in --print-config:\n" << printed.out;
  }
  for (const std::string& k : keys) EXPECT_TRUE(flags.count(k)) << k;
  EXPECT_NE(printed.out.find("\nport = 7878\n"), std::string::npos) << printed.out;
  EXPECT_NE(printed.out.find("\ndurability = 'always'\n"), std::string::npos) << printed.out;
  EXPECT_NE(printed.out.find("\nsalvage = false\n"), std::string::npos) << printed.out;
}

TEST_F(ConfigTest, PrintConfigRoundTripsThroughTheFile) {
  // Non-default values of every type: number, string, on/off, durability.
  CmdResult first =
      Daemon("--port 9123 --listen ::1 --data-dir " + (root_ / "d").string() +
             " --durability interval:25 --shards 3 --salvage --archive --segment-bytes 1048576 "
             "--log-format json --log-level warn --idle-timeout 60 --print-config");
  ASSERT_EQ(first.code, 0) << first.out;
  EXPECT_NE(first.out.find("\nport = 9123\n"), std::string::npos) << first.out;
  EXPECT_NE(first.out.find("\narchive = true\n"), std::string::npos) << first.out;
  EXPECT_NE(first.out.find("\ndurability = 'interval:25'\n"), std::string::npos) << first.out;
  const fs::path file = Config("effective.toml", first.out);

  CmdResult second = Daemon("--config " + file.string() + " --print-config");
  ASSERT_EQ(second.code, 0) << second.out;
  EXPECT_EQ(second.out, first.out);

  if (!HavePython()) GTEST_SKIP() << "python3 with tomllib missing: TOML validity not checked";
  CmdResult valid =
      Sh("python3 -c 'import sys, tomllib; d = tomllib.load(open(sys.argv[1], \"rb\")); "
         "print(d[\"port\"], d[\"salvage\"], d[\"durability\"])' " +
         file.string() + " 2>&1");
  EXPECT_EQ(valid.code, 0) << valid.out;
  EXPECT_EQ(valid.out, "9123 True interval:25\n");
}

TEST_F(ConfigTest, FlagsOverrideTheFile) {
  const fs::path file = Config("c.toml",
                               "port = 9100\n"
                               "durability = 'none'\n"
                               "max-connections = 50\n");
  CmdResult r = Daemon("--config " + file.string() + " --port 9200 --print-config");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("\nport = 9200\n"), std::string::npos) << r.out;          // the flag
  EXPECT_NE(r.out.find("\ndurability = 'none'\n"), std::string::npos) << r.out;  // the file
  EXPECT_NE(r.out.find("\nmax-connections = 50\n"), std::string::npos) << r.out;
}

TEST_F(ConfigTest, BadSettingsAreRefusedNamingTheKey) {
  struct Case {
    std::string text;  // config file
    std::string key;   // must appear in the message
  };
  const Case cases[] = {
      {"max-result-rowz = 5\n", "max-result-rowz"},         // unknown key
      {"[server]\nport = 1\n", "server"},                   // no sections
      {"port = 'abc'\n", "port"},                           // wrong type
      {"port = true\n", "port"},                            // wrong type
      {"port = 70000\n", "port"},                           // out of range (u16)
      {"max-connections = 0\n", "max-connections"},         // below its range
      {"writer-threads = 100000\n", "writer-threads"},      // above its range
      {"snapshot-log-bytes = -1\n", "snapshot-log-bytes"},  // would wrap to 2^64-1
      {"shards = 010\n", "shards"},                         // would be octal
      {"segment-bytes = 0x100000\n", "segment-bytes"},      // would be hex
      {"segment-bytes = 1000\n", "segment-bytes"},          // below 64 KiB
      {"shards = 1000\n", "shards"},                        // over 256
      {"durability = 'sometimes'\n", "durability"},
      {"durability = 'interval:x'\n", "durability"},
      {"salvage = 3\n", "salvage"},  // on/off is true or false
      {"log-format = 'xml'\n", "log-format"},
      {"log-level = 'loud'\n", "log-level"},
      {"snapshots-kept = 0\n", "snapshots-kept"},
      {"listen = '0.0.0.0'\n", "allow-remote-without-auth"},
  };
  for (const Case& c : cases) {
    const fs::path file =
        Config("bad.toml", "data-dir = '" + (root_ / "d").string() + "'\n" + c.text);
    CmdResult r = Daemon("--config " + file.string() + " --print-config", /*merge_stderr=*/true);
    EXPECT_EQ(r.code, 2) << c.text << r.out;
    EXPECT_NE(r.out.find(c.key), std::string::npos) << c.text << r.out;
    EXPECT_EQ(r.out.find("listening"), std::string::npos) << c.text << r.out;
  }
  // The same checks hold for flags.
  CmdResult r = Daemon("--port -1", true);
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("port"), std::string::npos) << r.out;
  r = Daemon("--no-such-flag", true);
  EXPECT_EQ(r.code, 2) << r.out;
  // A missing config file is refused too.
  r = Daemon("--config " + (root_ / "missing.toml").string(), true);
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("missing.toml"), std::string::npos) << r.out;
}

// The daemon runs with the file's settings (not just prints them), and its
// JSON log lines stay valid JSON with a data directory named with a quote, a
// backslash, a tab and a byte that is not UTF-8.
TEST_F(ConfigTest, ServerRunsFromTheFileAndLogsValidJson) {
  const std::string odd = (root_ / "we\"ird\\dir\t\xff").string();
  const fs::path file = Config("server.toml",
                               "port = 0\n"
                               "listen = '127.0.0.1'\n"
                               "durability = 'none'\n"
                               "shards = 2\n"
                               "log-format = 'json'\n"
                               "max-result-rows = 7\n");
  StartServer({"--config", file.string(), "--data-dir", odd});
  ClientOptions o;
  o.io_timeout_ms = 10000;
  auto c = Client::Connect("127.0.0.1", port_, o);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_TRUE(c.value()->CreateKind({"unit", {}}).ok());
  BatchBuilder b;
  for (uint64_t id = 1; id <= 10; ++id) b.Upsert(id, "unit", static_cast<double>(id), 0);
  ASSERT_TRUE(c.value()->Apply(b.Finish()).ok());
  // max-result-rows = 7 came from the file: 10 rows are too many.
  auto r = c.value()->Radius(0, 0, 100);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("7"), std::string::npos) << r.status().ToString();
  c.value().reset();
  EXPECT_EQ(StopServer(), 0);
  const std::string log = ReadFile(log_);
  EXPECT_NE(log.find("\"level\":\"info\""), std::string::npos) << log;
  EXPECT_NE(log.find("we\\\"ird\\\\dir\\t\\ufffd"), std::string::npos) << log;
  EXPECT_TRUE(fs::exists(odd));
  if (!HavePython()) GTEST_SKIP() << "python3 missing: JSON validity not checked";
  EXPECT_EQ(CheckJsonLines(root_, log), "");
}

TEST(JsonLogFormatterTest, EveryFieldIsEscaped) {
  EXPECT_EQ(JsonLogFormatter::Escape("plain"), "plain");
  EXPECT_EQ(JsonLogFormatter::Escape("a\"b\\c"), "a\\\"b\\\\c");
  EXPECT_EQ(JsonLogFormatter::Escape("l1\nl2\r\t"), "l1\\nl2\\r\\t");
  EXPECT_EQ(JsonLogFormatter::Escape(std::string("\x01\x1f\x7f", 3)), "\\u0001\\u001f\\u007f");
  EXPECT_EQ(JsonLogFormatter::Escape(std::string("nul\0x", 5)), "nul\\u0000x");
  // Valid UTF-8 passes; invalid bytes become U+FFFD one by one.
  EXPECT_EQ(JsonLogFormatter::Escape("h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
            "h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  EXPECT_EQ(JsonLogFormatter::Escape("\xff"), "\\ufffd");
  EXPECT_EQ(JsonLogFormatter::Escape("\xc3"), "\\ufffd");                        // truncated
  EXPECT_EQ(JsonLogFormatter::Escape("\xc0\xaf"), "\\ufffd\\ufffd");             // overlong
  EXPECT_EQ(JsonLogFormatter::Escape("\xed\xa0\x80"), "\\ufffd\\ufffd\\ufffd");  // surrogate
  EXPECT_EQ(JsonLogFormatter::Escape("\xf4\x90\x80\x80"), "\\ufffd\\ufffd\\ufffd\\ufffd");

  // The whole line: the logger name and the message are escaped too.
  JsonLogFormatter f;
  const std::string payload = "path \"x\"\n\xfe";
  spdlog::details::log_msg msg(spdlog::source_loc{}, "we\"ird", spdlog::level::warn,
                               spdlog::string_view_t(payload.data(), payload.size()));
  spdlog::memory_buf_t out;
  f.format(msg, out);
  const std::string line(out.data(), out.size());
  EXPECT_NE(line.find("\"level\":\"warning\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"logger\":\"we\\\"ird\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"msg\":\"path \\\"x\\\"\\n\\ufffd\"}\n"), std::string::npos) << line;
  EXPECT_EQ(std::count(line.begin(), line.end(), '\n'), 1) << line;
  if (!HavePython()) GTEST_SKIP() << "python3 missing: JSON validity not checked";
  const fs::path dir = fs::temp_directory_path();
  EXPECT_EQ(CheckJsonLines(dir, line), "");
}

}  // namespace
}  // namespace worlddb::net
