// 16 threads commit concurrently (tickets taken from one counter, calls
// arriving out of order, some empty, some Marks), on the in-memory file
// system and on the real disk through io_uring. Checks LSN density, ticket
// order and content. Runs under TSan (label "stress").
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "wal/fault_file_system.h"
#include "wal/log_reader.h"
#include "wal/log_writer.h"

namespace worlddb::wal {
namespace {

constexpr int kThreads = 16;

std::vector<uint8_t> Payload(uint64_t ticket) {
  std::vector<uint8_t> v(16 + ticket % 300);
  std::memcpy(v.data(), &ticket, 8);
  for (size_t i = 8; i < v.size(); ++i) v[i] = static_cast<uint8_t>(ticket ^ i);
  return v;
}

void Stress(FileSystem* fs, const std::string& dir, SyncMode mode, uint64_t per_thread) {
  LogOptions o;
  o.dir = dir;
  o.fs = fs;
  o.mode = mode;
  o.interval_ms = 1;
  o.segment_bytes = 256 << 10;
  o.group_buffer_bytes = 16 << 10;
  o.preallocate = true;  // the spare preparer runs concurrently too
  auto w = LogWriter::Open(o, 0, 1);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  std::atomic<uint64_t> next{1};
  std::vector<uint64_t> marks(kThreads * per_thread + 1, UINT64_MAX);
  std::vector<std::thread> threads;
  for (int k = 0; k < kThreads; ++k) {
    threads.emplace_back([&, k] {
      for (uint64_t i = 0; i < per_thread; ++i) {
        const uint64_t t = next.fetch_add(1);
        if (t % 11 == 0) {
          auto m = (*w)->Mark(t);
          EXPECT_TRUE(m.ok());
          marks[t] = m.ok() ? *m : 0;
          continue;
        }
        const auto p = t % 7 == 0 ? std::vector<uint8_t>() : Payload(t);
        const Ack ack = static_cast<Ack>((t + static_cast<uint64_t>(k)) % 3);
        EXPECT_TRUE((*w)->Commit(t, RecordType::kWriteBatch, p, ack).ok());
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_TRUE((*w)->Flush().ok());
  const uint64_t total = next.load() - 1;
  uint64_t expect_lsn = 0;
  std::vector<uint64_t> lsn_before(total + 2, 0);  // records logged before ticket t
  for (uint64_t t = 1; t <= total; ++t) {
    lsn_before[t] = expect_lsn;
    if (t % 11 != 0 && t % 7 != 0) ++expect_lsn;
  }
  EXPECT_EQ((*w)->last_lsn(), expect_lsn);
  EXPECT_EQ((*w)->durable_lsn(), expect_lsn);
  for (uint64_t t = 11; t <= total; t += 11) EXPECT_EQ(marks[t], lsn_before[t]) << t;
  const LogStats st = (*w)->stats();
  EXPECT_EQ(st.records, expect_lsn);
  ASSERT_TRUE((*w)->Close().ok());

  ScanOptions so;
  so.dirs = {dir};
  so.fs = fs;
  uint64_t t = 0, n = 0;
  auto r = ScanLog(so, [&](const Record& rec) {
    do {
      ++t;
    } while (t % 11 == 0 || t % 7 == 0);
    EXPECT_EQ(rec.lsn, ++n);
    const auto want = Payload(t);
    EXPECT_TRUE(std::equal(rec.payload.begin(), rec.payload.end(), want.begin(), want.end()))
        << "LSN " << rec.lsn << " should hold ticket " << t;
    return Status::Ok();
  });
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(n, expect_lsn);
  EXPECT_FALSE(r->torn_tail.has_value());
}

TEST(WalWriterStress, SixteenThreadsInMemoryAlways) {
  FaultFileSystem fs;
  Stress(&fs, "/log", SyncMode::kAlways, 400);
}

TEST(WalWriterStress, SixteenThreadsInMemoryInterval) {
  FaultFileSystem fs;
  Stress(&fs, "/log", SyncMode::kInterval, 400);
}

class WalWriterStressDisk : public ::testing::TestWithParam<SyncMode> {};

TEST_P(WalWriterStressDisk, SixteenThreadsThroughIoUring) {
  const std::string dir = std::string(WORLDDB_BINARY_DIR) + "/wal_stress." +
                          std::to_string(::getpid()) +
                          (GetParam() == SyncMode::kAlways ? ".always" : ".interval");
  std::filesystem::remove_all(dir);
  Stress(FileSystem::Default(), dir, GetParam(), 150);
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Modes, WalWriterStressDisk,
                         ::testing::Values(SyncMode::kAlways, SyncMode::kInterval));

}  // namespace
}  // namespace worlddb::wal
