// Starting the real binaries (worlddb, worldctl, worldload) from integration
// tests: one fork/exec with the child's output in a log file, shared by every
// test that runs a daemon.
#pragma once

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <string>
#include <vector>

namespace worlddb::test_util {

// Starts args[0] with `args`, stdout and stderr to `log` (truncated, or
// appended to when `append`), and returns its pid (-1 if fork failed). The
// child dies with the test process (PR_SET_PDEATHSIG), so a failed test
// leaves no server behind; it exits 127 if exec fails.
inline pid_t SpawnLogged(std::vector<std::string> args, const std::filesystem::path& log,
                         bool append = false) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC), 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return pid;
}

}  // namespace worlddb::test_util
