// Snapshots taken while 4 threads write and another queries: each snapshot
// must hold exactly the state at its LSN — the logged records 1..LSN replayed
// into a second engine — no more, no less.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "engine/batch_builder.h"
#include "engine/engine.h"
#include "wal/snapshot_reader.h"
#include "wal/snapshot_writer.h"

namespace worlddb::wal {
namespace {

namespace fs = std::filesystem;

// Keeps every record in LSN order (LSNs assigned in ticket order, as the real
// log does), so a test can replay any prefix.
class RecordingLog : public CommitLog {
 public:
  Status Commit(uint64_t ticket, RecordType type, std::span<const uint8_t> record, Ack) override {
    std::unique_lock<std::mutex> lock(mu_);
    Arrive(ticket, Entry{type, {record.begin(), record.end()}, !record.empty()}, lock);
    return Status::Ok();
  }
  Result<uint64_t> Mark(uint64_t ticket) override {
    std::unique_lock<std::mutex> lock(mu_);
    Arrive(ticket, Entry{}, lock);
    const uint64_t lsn = lsn_before_[ticket];
    lsn_before_.erase(ticket);
    return lsn;
  }
  Status WaitDurable(uint64_t) override { return Status::Ok(); }
  Status WaitAll(Ack) override { return Status::Ok(); }
  Status Writable() const override { return Status::Ok(); }

  struct Entry {
    RecordType type = RecordType::kWriteBatch;
    std::vector<uint8_t> bytes;
    bool logged = false;
  };
  std::vector<Entry> Records() {
    std::lock_guard<std::mutex> lock(mu_);
    return records_;
  }

 private:
  void Arrive(uint64_t ticket, Entry e, std::unique_lock<std::mutex>& lock) {
    early_.emplace(ticket, std::move(e));
    while (!early_.empty() && early_.begin()->first == next_) {
      // Later tickets may be processed before this call wakes up: remember
      // the LSN as of this ticket for Mark.
      if (!early_.begin()->second.logged) lsn_before_[next_] = records_.size();
      if (early_.begin()->second.logged) records_.push_back(std::move(early_.begin()->second));
      early_.erase(early_.begin());
      ++next_;
    }
    cv_.notify_all();
    cv_.wait(lock, [&] { return next_ > ticket; });
  }
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t next_ = 1;
  std::map<uint64_t, Entry> early_;
  std::map<uint64_t, uint64_t> lsn_before_;  // unlogged tickets -> LSN at them
  std::vector<Entry> records_;
};

struct Row {
  uint16_t kind;
  double x, y, z;
  std::vector<Value> columns;
  bool operator==(const Row&) const = default;
};

std::map<uint64_t, Row> Dump(Engine& e) {
  std::map<uint64_t, Row> out;
  QueryResult r;
  EXPECT_TRUE(e.Run(Query::InRect(e.options().world), &r).ok());
  for (uint64_t id : r.ids) {
    Shard::Entity ent;
    EXPECT_TRUE(e.Get(id, &ent));
    out[id] = Row{ent.kind, ent.x, ent.y, ent.z, ent.columns};
  }
  return out;
}

TEST(SnapshotStress, EachSnapshotEqualsTheLogPrefixAtItsLsn) {
  std::string tmpl = (fs::temp_directory_path() / "snapshot_stress_XXXXXX").string();
  const std::string dir = mkdtemp(tmpl.data());
  RecordingLog log;
  EngineOptions o;
  o.world = {0, 0, 1000, 1000};
  o.shards = 2;
  auto engine = std::move(Engine::Open(o).value());
  engine->SetCommitLog(&log);
  ASSERT_TRUE(engine
                  ->CreateKind({"unit",
                                {{"hp", ColumnType::kI32, int32_t{10}, 0},
                                 {"tag", ColumnType::kString, std::string("—"), 16}}})
                  .ok());

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> batches{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < 4; ++w) {
    threads.emplace_back([&, w] {
      std::mt19937_64 rng(w);
      std::uniform_real_distribution<double> pos(0, 1000);
      std::vector<uint64_t> live;
      const uint64_t base = uint64_t(w + 1) << 32;
      uint64_t next_id = base;
      BatchBuilder b;
      while (!stop.load(std::memory_order_relaxed)) {
        const int ops = 1 + static_cast<int>(rng() % 16);
        std::vector<uint64_t> touched;
        for (int i = 0; i < ops; ++i) {
          const int what = static_cast<int>(rng() % 4);
          if (what == 0 || live.size() < 8) {
            live.push_back(++next_id);
            touched.push_back(next_id);
            b.Upsert(next_id, "unit", pos(rng), pos(rng), 1,
                     {{"hp", int32_t(rng() % 100)}, {"tag", std::string("ü") + char('a' + w)}});
            continue;
          }
          const size_t at = rng() % live.size();
          const uint64_t id = live[at];
          if (std::find(touched.begin(), touched.end(), id) != touched.end()) continue;
          touched.push_back(id);
          if (what == 1) {
            b.Move(id, pos(rng), pos(rng), 2);
          } else if (what == 2) {
            b.Set(id, {{"hp", int32_t(rng() % 100)}});
          } else {
            b.Delete(id);
            live[at] = live.back();
            live.pop_back();
          }
        }
        auto bytes = b.Finish();
        auto r = engine->Apply(bytes.data(), bytes.size());
        ASSERT_TRUE(r.ok()) << r.status().ToString();
        if (rng() % 8 == 0) {  // a refused batch: a ticket without an LSN
          b.Move(base - 1, 1, 1);
          bytes = b.Finish();
          ASSERT_FALSE(engine->Apply(bytes.data(), bytes.size()).ok());
        }
        batches.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  threads.emplace_back([&] {  // a reader
    while (!stop.load(std::memory_order_relaxed)) {
      QueryResult r;
      ASSERT_TRUE(engine->Run(Query::Circle(500, 500, 100), &r).ok());
    }
  });

  std::vector<SnapshotInfo> snaps;
  for (int s = 0; s < 3; ++s) {
    while (batches.load() < 200u * (s + 1)) std::this_thread::yield();
    if (s == 1) {  // a schema change between snapshots
      ASSERT_TRUE(engine->AlterKind("unit", {{"lvl", ColumnType::kI64, int64_t{3}, 0}}, {}).ok());
    }
    auto info = TakeSnapshot(*engine, dir, {});
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    snaps.push_back(info.value());
  }
  stop = true;
  for (auto& t : threads) t.join();

  const std::vector<RecordingLog::Entry> records = log.Records();
  for (const SnapshotInfo& snap : snaps) {
    ASSERT_LE(snap.lsn, records.size());
    EngineOptions eo = o;
    eo.shards = 1;
    auto expected = std::move(Engine::Open(eo).value());
    for (uint64_t i = 0; i < snap.lsn; ++i) {
      auto r = expected->Replay(records[i].type, records[i].bytes.data(), records[i].bytes.size());
      ASSERT_TRUE(r.ok()) << r.status().ToString();
    }
    eo.shards = 3;
    auto loaded = std::move(Engine::Open(eo).value());
    Status st = LoadSnapshot(snap.path, loaded.get(), nullptr);
    ASSERT_TRUE(st.ok()) << st.ToString();
    EXPECT_EQ(expected->schema()->kind(0).columns.size(), loaded->schema()->kind(0).columns.size());
    const auto a = Dump(*expected), b = Dump(*loaded);
    EXPECT_EQ(a.size(), b.size()) << "snapshot at LSN " << snap.lsn;
    EXPECT_EQ(a.size(), snap.entities);
    EXPECT_TRUE(a == b) << "snapshot at LSN " << snap.lsn;
  }
  fs::remove_all(dir);
}

// Two threads asking for a snapshot of one engine at once: one wins, the
// other is told to try again (or both succeed one after the other).
TEST(SnapshotStress, ConcurrentSnapshotsOfOneEngineDoNotOverlap) {
  std::string tmpl = (fs::temp_directory_path() / "snapshot_stress_XXXXXX").string();
  const std::string dir = mkdtemp(tmpl.data());
  auto engine = std::move(Engine::Open(EngineOptions{}).value());
  ASSERT_TRUE(engine->CreateKind({"rock", {}}).ok());
  BatchBuilder b;
  for (uint64_t id = 1; id <= 20000; ++id) b.Upsert(id, "rock", double(id), 0);
  auto bytes = b.Finish();
  ASSERT_TRUE(engine->Apply(bytes.data(), bytes.size()).ok());
  std::vector<Status> results(4);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      results[i] = TakeSnapshot(*engine, dir, {.lsn_without_log = uint64_t(i)}).status();
    });
  }
  for (auto& t : threads) t.join();
  int ok = 0;
  for (const Status& s : results) {
    if (s.ok()) {
      ++ok;
    } else {
      EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
    }
  }
  EXPECT_GE(ok, 1);
  auto list = ListSnapshots(dir);
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), static_cast<size_t>(ok));
  for (const SnapshotInfo& s : list.value()) EXPECT_TRUE(ReadSnapshotInfo(s.path, true).ok());
  fs::remove_all(dir);
}

}  // namespace
}  // namespace worlddb::wal
