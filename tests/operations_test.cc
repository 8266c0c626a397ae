// Runs the commands docs/operations.md names, as an operator would, so the
// runbooks cannot drift from the program: worldctl's offline subcommands on
// a real data directory (verify, dump, snapshot info, restore by LSN and by
// time), their exit codes on damage, and a server started on a restored
// directory.
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "engine/batch_builder.h"
#include "gtest/gtest.h"
#include "wal/log_format.h"
#include "wal/world.h"

namespace worlddb {
namespace {

namespace fs = std::filesystem;

const std::string kWorldctl = WORLDDB_BINARY_DIR "/tools/worldctl";

struct CmdResult {
  int code = -1;
  std::string out;  // stdout and stderr
};

CmdResult Sh(const std::string& cmd) {
  CmdResult r;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int st = pclose(p);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

class OperationsTest : public testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(kWorldctl)) << kWorldctl << " was not built";
    root_ =
        fs::temp_directory_path() / ("worlddb_ops_" + std::to_string(getpid()) + "_" +
                                     testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
    data_ = (root_ / "data").string();
  }
  void TearDown() override { fs::remove_all(root_); }

  // A data directory: kind "unit" (LSN 1), then batch j (LSN j + 1) moves
  // entity 42 to (j, j) and upserts entity 100 + j; a snapshot after LSN 21;
  // `gap_us` between batches so that times separate them.
  void MakeData(int batches, int gap_us = 0) {
    wal::WorldOptions o;
    o.data_dir = data_;
    o.snapshot_interval_s = 0;
    o.snapshot_log_bytes = 0;
    o.archive = true;
    auto w = wal::World::Open(o);
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    Engine& e = w.value()->engine();
    ASSERT_TRUE(e.CreateKind({"unit", {{"hp", ColumnType::kI32, int32_t{7}}}}).ok());
    BatchBuilder b;
    b.Upsert(42, "unit", 0, 0);
    auto first = b.Finish();
    ASSERT_TRUE(e.Apply(first.data(), first.size()).ok());  // LSN 2
    for (int j = 2; j <= batches; ++j) {
      b.Move(42, j, j).Upsert(100 + j, "unit", -j, -j);
      auto bytes = b.Finish();
      ASSERT_TRUE(e.Apply(bytes.data(), bytes.size()).ok());
      if (j == 20) {
        ASSERT_TRUE(w.value()->Snapshot().ok());
      }
      if (gap_us) std::this_thread::sleep_for(std::chrono::microseconds(gap_us));
    }
  }

  fs::path root_;
  std::string data_;
};

TEST_F(OperationsTest, WalVerifyOnASoundLog) {
  MakeData(30);
  CmdResult r = Sh(kWorldctl + " wal verify --data-dir " + data_);
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("31 records"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("LSN 1..31"), std::string::npos) << r.out;
}

TEST_F(OperationsTest, WalVerifyReportsATornTailWithExitCode4) {
  MakeData(5);
  fs::path seg;
  for (const auto& e : fs::directory_iterator(fs::path(data_) / "wal")) {
    if (e.path().extension() == ".log") seg = std::max(seg, e.path());
  }
  // A torn final write: the file ends inside a record.
  fs::resize_file(seg, fs::file_size(seg) - 3);
  CmdResult r = Sh(kWorldctl + " wal verify --data-dir " + data_);
  EXPECT_EQ(r.code, 4) << r.out;
  EXPECT_NE(r.out.find("torn tail"), std::string::npos) << r.out;
}

TEST_F(OperationsTest, WalVerifyNamesDamageWithExitCode1) {
  MakeData(5);
  fs::path seg;
  for (const auto& e : fs::directory_iterator(fs::path(data_) / "wal")) {
    if (e.path().extension() == ".log") seg = e.path();
  }
  {
    std::fstream f(seg, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(wal::kSegmentHeaderBytes + wal::kRecordHeaderBytes + 2);
    f.put('\x55');
  }
  CmdResult r = Sh(kWorldctl + " wal verify --data-dir " + data_);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("DAMAGED"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(seg.filename().string()), std::string::npos) << r.out;
}

TEST_F(OperationsTest, WalDumpByRangeAndByEntity) {
  MakeData(10);
  CmdResult r = Sh(kWorldctl + " wal dump --data-dir " + data_ + " --from-lsn 2 --to-lsn 3");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 2) << r.out;
  EXPECT_NE(r.out.find("\"lsn\":2,"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"upserts\":[{\"id\":42,\"kind\":\"unit\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"moves\":[{\"id\":42,\"x\":2,\"y\":2,"), std::string::npos) << r.out;

  r = Sh(kWorldctl + " wal dump --data-dir " + data_ + " --entity 105");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  EXPECT_NE(r.out.find("\"id\":105"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("\"id\":42"), std::string::npos)
      << "only entity 105's operations: " << r.out;

  r = Sh(kWorldctl + " wal dump --data-dir " + data_ + " --from-lsn 1 --to-lsn 1");
  EXPECT_NE(r.out.find("\"type\":\"schema_change\",\"create\":\"unit\""), std::string::npos)
      << r.out;
}

TEST_F(OperationsTest, SnapshotInfoVerifiesAndFlagsDamage) {
  MakeData(25);
  CmdResult r = Sh(kWorldctl + " snapshot info --data-dir " + data_);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("lsn 21"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("every block checksum verified"), std::string::npos) << r.out;
  fs::path snap = *fs::directory_iterator(fs::path(data_) / "snapshots");
  {
    std::fstream f(snap, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(static_cast<std::streamoff>(fs::file_size(snap) / 2));
    f.put('\x11');
  }
  r = Sh(kWorldctl + " snapshot info --file " + snap.string());
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("DAMAGED"), std::string::npos) << r.out;
}

TEST_F(OperationsTest, RestoreToAnLsnGivesADirectoryTheWorldStartsFrom) {
  MakeData(30);
  const std::string out = (root_ / "at25").string();
  CmdResult r = Sh(kWorldctl + " restore --data-dir " + data_ + " --to-lsn 25 --out " + out);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("as of LSN 25"), std::string::npos) << r.out;
  // The restored directory is a world as of LSN 25: entity 42 at (24, 24),
  // upserts 102..124.
  wal::WorldOptions o;
  o.data_dir = out;
  auto w = wal::World::Open(o);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ(w.value()->recovery().last_lsn, 25u);
  Shard::Entity e;
  ASSERT_TRUE(w.value()->engine().Get(42, &e));
  EXPECT_EQ(e.x, 24);
  EXPECT_TRUE(w.value()->engine().Get(124, &e));
  EXPECT_FALSE(w.value()->engine().Get(125, &e));
  // Writes go on after the restored LSN.
  BatchBuilder b;
  b.Upsert(9999, "unit", 1, 1);
  auto bytes = b.Finish();
  ASSERT_TRUE(w.value()->engine().Apply(bytes.data(), bytes.size()).ok());
  w.value().reset();
  r = Sh(kWorldctl + " wal verify --data-dir " + out);
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("LSN 26..26"), std::string::npos) << r.out;
}

TEST_F(OperationsTest, RestoreBeforeTheSnapshotUsesTheArchivedLog) {
  MakeData(30);
  const std::string out = (root_ / "at5").string();
  CmdResult r = Sh(kWorldctl + " restore --data-dir " + data_ + " --to-lsn 5 --out " + out);
  ASSERT_EQ(r.code, 0) << r.out;
  wal::WorldOptions o;
  o.data_dir = out;
  auto w = wal::World::Open(o);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  Shard::Entity e;
  ASSERT_TRUE(w.value()->engine().Get(42, &e));
  EXPECT_EQ(e.x, 4);
}

TEST_F(OperationsTest, RestoreToATime) {
  MakeData(12, /*gap_us=*/20000);
  // The commit time of LSN 8, from the dump.
  CmdResult d = Sh(kWorldctl + " wal dump --data-dir " + data_ + " --from-lsn 8 --to-lsn 8");
  const size_t at = d.out.find("\"time_us\":");
  ASSERT_NE(at, std::string::npos) << d.out;
  const std::string t = std::to_string(std::stoull(d.out.substr(at + 10)));
  const std::string out = (root_ / "at_time").string();
  CmdResult r =
      Sh(kWorldctl + " restore --data-dir " + data_ + " --to-time " + t + " --out " + out);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("as of LSN 8"), std::string::npos) << r.out;
}

TEST_F(OperationsTest, RestoreRefusesBadArgumentsClearly) {
  MakeData(3);
  CmdResult r = Sh(kWorldctl + " restore --data-dir " + data_ + " --to-time yesterday --out " +
                   (root_ / "x").string());
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("yesterday"), std::string::npos) << r.out;
  r = Sh(kWorldctl + " restore --data-dir " + data_ + " --to-lsn 99 --out " +
         (root_ / "y").string());
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("past the end of the log"), std::string::npos) << r.out;
  r = Sh(kWorldctl + " restore --data-dir " + data_ + " --to-lsn 2 --out " + data_);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("not empty"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace worlddb
