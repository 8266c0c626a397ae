// Kill test: a writer process (tests/crash/wal_kill_writer.cc) applies batches
// and records each acknowledgement; we SIGKILL it at a random moment, recover
// the data directory, and check that the recovered world is exactly the
// result of batches 1..k for some k that covers every acknowledged batch.
// Each cycle continues the same data directory, so later cycles recover from
// snapshots, rotated segments and earlier torn tails.
//
// WORLDDB_KILL_CYCLES sets the number of cycles per mode (default 50; the long
// mode runs thousands).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "tests/crash/kill_workload.h"
#include "wal/world.h"

namespace worlddb {
namespace {

namespace fs = std::filesystem;

const char* const kWriter = WORLDDB_BINARY_DIR "/tests/wal_kill_writer";

int Cycles() {
  const char* env = std::getenv("WORLDDB_KILL_CYCLES");
  return env ? std::atoi(env) : 50;
}

// The highest batch number in the acks file (complete lines only).
uint64_t LastAck(const std::string& path) {
  std::ifstream in(path);
  std::string line, all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  uint64_t last = 0;
  size_t start = 0;
  for (size_t nl; (nl = all.find('\n', start)) != std::string::npos; start = nl + 1) {
    last =
        std::max<uint64_t>(last, std::strtoull(all.substr(start, nl - start).c_str(), nullptr, 10));
  }
  return last;
}

pid_t Spawn(const std::vector<std::string>& args) {
  const pid_t pid = fork();
  if (pid == 0) {
    std::vector<char*> argv;
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

// Compares the world with the model entity by entity (ids 1..kMaxId).
void ExpectWorldEquals(Engine& engine, const kill_test::Model& model, const std::string& where) {
  std::vector<uint64_t> ids;
  for (uint64_t id = 1; id <= kill_test::kMaxId; ++id) ids.push_back(id);
  QueryResult r;
  std::vector<uint64_t> missing;
  ASSERT_TRUE(engine.GetMany(ids, kill_test::kKind, {"hp", "name"}, &r, &missing).ok()) << where;
  ASSERT_EQ(r.ids.size(), model.size()) << where;
  size_t i = 0;
  for (const auto& [id, e] : model) {
    ASSERT_EQ(r.ids[i], id) << where;
    EXPECT_EQ(r.x[i], e.x) << where << " id " << id;
    EXPECT_EQ(r.y[i], e.y) << where << " id " << id;
    EXPECT_EQ(r.z[i], e.z) << where << " id " << id;
    EXPECT_EQ(std::get<std::vector<int32_t>>(r.columns[0].data)[i], e.hp) << where << " id " << id;
    EXPECT_EQ(std::get<std::vector<std::string>>(r.columns[1].data)[i], e.name)
        << where << " id " << id;
    ++i;
  }
}

void RunKillCycles(const std::string& durability) {
  ASSERT_TRUE(fs::exists(kWriter)) << kWriter << " was not built";
  const fs::path dir = fs::temp_directory_path() /
                       ("worlddb_kill_" + durability.substr(0, 6) + "_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string data = (dir / "data").string(), acks = (dir / "acks").string();
  const uint64_t seed = 12345;
  std::mt19937_64 rng(std::random_device{}());
  uint64_t max_acked = 0, recovered = 0, from_snapshot = 0, torn_tails = 0;
  const int cycles = Cycles();
  for (int c = 0; c < cycles; ++c) {
    const std::string where = durability + " cycle " + std::to_string(c);
    const pid_t pid = Spawn({kWriter, data, acks, std::to_string(seed), durability});
    ASSERT_GT(pid, 0);
    // One kill in five lands anywhere, recovery and start-up included; the
    // others wait until the writer acknowledged something new, so they land
    // among appends, group commits, rotations and snapshots.
    if (rng() % 5 != 0) {
      const auto acked = fs::exists(acks) ? fs::file_size(acks) : 0;
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (std::chrono::steady_clock::now() < deadline &&
             (fs::exists(acks) ? fs::file_size(acks) : 0) == acked) {
        std::this_thread::sleep_for(std::chrono::microseconds(500));
      }
    }
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 50000));
    kill(pid, SIGKILL);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) == 0))
        << where << ": the writer failed on its own (exit " << WEXITSTATUS(status) << ")";
    max_acked = std::max(max_acked, LastAck(acks));

    wal::WorldOptions o;
    o.data_dir = data;
    o.durability = wal::Durability::Parse(durability).value();
    o.snapshot_interval_s = 0;
    o.snapshot_log_bytes = 0;
    auto world = wal::World::Open(o);
    ASSERT_TRUE(world.ok()) << where << ": " << world.status().ToString();
    const uint64_t last_lsn = world.value()->recovery().last_lsn;
    const uint64_t k = last_lsn == 0 ? 0 : last_lsn - 1;  // record 1 creates the kind
    ASSERT_GE(k, max_acked) << where << ": an acknowledged batch was lost ("
                            << world.value()->recovery().ToString() << ")";
    ASSERT_GE(k, recovered) << where << ": recovery went backwards";
    recovered = k;
    from_snapshot += world.value()->recovery().snapshot.has_value();
    torn_tails += world.value()->recovery().torn_tail.has_value();
    if (last_lsn > 0) {
      ExpectWorldEquals(world.value()->engine(), kill_test::ModelAfter(seed, k), where);
      if (testing::Test::HasFailure()) return;
    }
  }
  EXPECT_GT(max_acked, 0u) << "no cycle acknowledged anything: the kills came too early";
  std::printf(
      "%s: %d kills, %llu batches acknowledged, %llu recovered; %llu recoveries started "
      "from a snapshot, %llu cut a torn tail\n",
      durability.c_str(), cycles, static_cast<unsigned long long>(max_acked),
      static_cast<unsigned long long>(recovered), static_cast<unsigned long long>(from_snapshot),
      static_cast<unsigned long long>(torn_tails));
  fs::remove_all(dir);
}

TEST(WalKillTest, AlwaysModeLosesNoAcknowledgedBatch) { RunKillCycles("always"); }

// In interval mode a write is acknowledged once it reached the kernel, which
// survives the death of the process.
TEST(WalKillTest, IntervalModeLosesNoAcknowledgedBatchInAProcessCrash) {
  RunKillCycles("interval:5");
}

}  // namespace
}  // namespace worlddb
