// Snapshots (wal/snapshot_writer.h, wal/snapshot_reader.h): round trips over
// every column type and shard count, and refusal of damaged files.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>

#include "engine/batch_builder.h"
#include "engine/engine.h"
#include "wal/snapshot_format.h"
#include "wal/snapshot_reader.h"
#include "wal/snapshot_writer.h"

namespace worlddb::wal {
namespace {

namespace fs = std::filesystem;

// A fresh directory under the system temp dir, removed at the end.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "snapshot_test_XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() { fs::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::unique_ptr<Engine> Open(uint32_t shards, Rect world = {-1000, -1000, 1000, 1000}) {
  EngineOptions o;
  o.world = world;
  o.shards = shards;
  return std::move(Engine::Open(o).value());
}

Value ValueAt(const ResultColumn& c, size_t r) {
  switch (c.type) {
    case ColumnType::kBool:
      return std::get<std::vector<uint8_t>>(c.data)[r] != 0;
    case ColumnType::kI32:
      return std::get<std::vector<int32_t>>(c.data)[r];
    case ColumnType::kI64:
      return std::get<std::vector<int64_t>>(c.data)[r];
    case ColumnType::kF32:
      return std::get<std::vector<float>>(c.data)[r];
    case ColumnType::kF64:
      return std::get<std::vector<double>>(c.data)[r];
    case ColumnType::kString:
      return std::get<std::vector<std::string>>(c.data)[r];
  }
  return false;
}

struct Row {
  std::string kind;
  double x, y, z;
  std::vector<Value> columns;
  bool operator==(const Row&) const = default;
};

// Every entity with its kind, position and columns, by id.
std::map<uint64_t, Row> Dump(Engine& e) {
  std::map<uint64_t, Row> out;
  const auto schema = e.schema();
  for (const KindDef& def : schema->kinds()) {
    Query q = Query::InRect(e.options().world);
    q.kind = def.name;
    for (const ColumnDef& c : def.columns) q.columns.push_back(c.name);
    QueryResult r;
    EXPECT_TRUE(e.Run(q, &r).ok());
    for (size_t i = 0; i < r.rows(); ++i) {
      Row row{def.name, r.x[i], r.y[i], r.z[i], {}};
      for (const ResultColumn& c : r.columns) row.columns.push_back(ValueAt(c, i));
      out[r.ids[i]] = std::move(row);
    }
  }
  return out;
}

void ExpectSameSchema(const Schema& a, const Schema& b) {
  ASSERT_EQ(a.kinds().size(), b.kinds().size());
  for (size_t k = 0; k < a.kinds().size(); ++k) {
    const KindDef &x = a.kinds()[k], &y = b.kinds()[k];
    EXPECT_EQ(x.name, y.name);
    ASSERT_EQ(x.columns.size(), y.columns.size()) << x.name;
    for (size_t c = 0; c < x.columns.size(); ++c) {
      EXPECT_EQ(x.columns[c].name, y.columns[c].name);
      EXPECT_EQ(x.columns[c].type, y.columns[c].type);
      EXPECT_EQ(x.columns[c].default_value, y.columns[c].default_value);
      EXPECT_EQ(x.columns[c].max_length, y.columns[c].max_length);
    }
  }
}

// Same entities, same schema, and the same answers to a few queries.
void ExpectSameWorld(Engine& a, Engine& b) {
  ExpectSameSchema(*a.schema(), *b.schema());
  const auto da = Dump(a), db = Dump(b);
  EXPECT_EQ(da.size(), db.size());
  EXPECT_TRUE(da == db);
  for (double c : {-500.0, 0.0, 333.0}) {
    for (Query q : {Query::Circle(c, -c, 200), Query::Nearest(c, c, 25)}) {
      QueryResult ra, rb;
      ASSERT_TRUE(a.Run(q, &ra).ok());
      ASSERT_TRUE(b.Run(q, &rb).ok());
      auto sorted = [&](QueryResult& r) {
        std::vector<uint64_t> ids = r.ids;
        if (q.shape == Shape::kCircle) std::sort(ids.begin(), ids.end());
        return ids;
      };
      EXPECT_EQ(sorted(ra), sorted(rb));
      EXPECT_EQ(ra.count, rb.count);
    }
  }
}

void ApplyOk(Engine& e, BatchBuilder& b) {
  auto bytes = b.Finish();
  auto r = e.Apply(bytes.data(), bytes.size());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
}

// Several kinds, every column type, an altered kind, multibyte strings, and
// enough entities for several blocks per shard.
void Populate(Engine& e, size_t n) {
  ASSERT_TRUE(e.CreateKind({"player",
                            {{"alive", ColumnType::kBool, true, 0},
                             {"hp", ColumnType::kI32, int32_t{100}, 0},
                             {"gold", ColumnType::kI64, int64_t{-5}, 0},
                             {"speed", ColumnType::kF32, 1.5f, 0},
                             {"mana", ColumnType::kF64, 0.25, 0},
                             {"name", ColumnType::kString, std::string("nobody"), 40}}})
                  .ok());
  ASSERT_TRUE(e.CreateKind({"npc",
                            {{"a", ColumnType::kI32, int32_t{1}, 0},
                             {"b", ColumnType::kString, std::string("bee"), 0},
                             {"c", ColumnType::kF64, 2.0, 0}}})
                  .ok());
  ASSERT_TRUE(e.CreateKind({"rock", {}}).ok());
  ASSERT_TRUE(e.CreateKind({"ghost", {{"boo", ColumnType::kBool, false, 0}}}).ok());  // empty
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> pos(-1000, 1000);
  const char* names[] = {"", "Ånnä", "日本語の名前", "emoji 🐉🔥", "plain", "ß"};
  BatchBuilder b;
  for (uint64_t id = 1; id <= n; ++id) {
    const double x = pos(rng), y = pos(rng), z = pos(rng) / 10;
    switch (id % 3) {
      case 0:
        b.Upsert(id, "player", x, y, z,
                 {{"alive", bool(id % 2)},
                  {"hp", int32_t(id * 7 % 1000) - 500},
                  {"gold", int64_t(id) << 33},
                  {"speed", float(id) / 3},
                  {"mana", -double(id) / 7},
                  {"name", std::string(names[id % 6])}});
        break;
      case 1:
        b.Upsert(id, "npc", x, y, z, {{"a", int32_t(id)}, {"b", std::string(names[id % 6])}});
        break;
      default:
        b.Upsert(id, "rock", x, y, z);
    }
  }
  ApplyOk(e, b);
  // Alter npc: drop b, add d (a string with a multibyte default) and e.
  ASSERT_TRUE(e.AlterKind("npc",
                          {{"d", ColumnType::kString, std::string("ünïcødé"), 0},
                           {"e", ColumnType::kI64, int64_t{9}, 0}},
                          {"b"})
                  .ok());
  for (uint64_t id = 1; id <= n; id += 5) b.Delete(id);
  for (uint64_t id = 2; id <= n; id += 9) {
    if (id % 5 != 1) b.Move(id, pos(rng), pos(rng), -0.0);
  }
  ApplyOk(e, b);
  for (uint64_t id = 4; id <= n; id += 15) {  // npcs (id % 3 == 1), not deleted
    if (id % 5 != 1) b.Set(id, {{"d", std::string("ẞig")}});
  }
  ApplyOk(e, b);
}

class SnapshotRoundTrip : public ::testing::TestWithParam<std::pair<uint32_t, uint32_t>> {};

TEST_P(SnapshotRoundTrip, LoadedWorldEqualsOriginal) {
  const auto [from, to] = GetParam();
  TempDir dir;
  auto src = Open(from);
  Populate(*src, 12000);
  auto info = TakeSnapshot(*src, dir.path(), {.lsn_without_log = 42});
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->lsn, 42u);
  EXPECT_EQ(info->path, dir.path() + "/snapshot-00000000000000000042.wdb");
  EXPECT_EQ(info->entities, src->size());
  EXPECT_EQ(info->kinds, 4u);
  EXPECT_EQ(info->shards_at_write, from);
  EXPECT_EQ(info->bytes, fs::file_size(info->path));
  EXPECT_GT(info->ticket, 0u);

  auto read = ReadSnapshotInfo(info->path, true);
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(read->lsn, 42u);
  EXPECT_EQ(read->ticket, info->ticket);
  EXPECT_EQ(read->timestamp_us, info->timestamp_us);
  EXPECT_EQ(read->entities, info->entities);
  EXPECT_EQ(read->shards_at_write, from);
  EXPECT_EQ(read->bytes, info->bytes);

  auto dst = Open(to);
  SnapshotInfo loaded;
  Status st = LoadSnapshot(info->path, dst.get(), &loaded);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(loaded.entities, info->entities);
  EXPECT_EQ(dst->CheckInvariants(), "");
  ExpectSameWorld(*src, *dst);
}

INSTANTIATE_TEST_SUITE_P(Shards, SnapshotRoundTrip,
                         ::testing::Values(std::make_pair(1u, 3u), std::make_pair(3u, 1u),
                                           std::make_pair(2u, 2u)));

TEST(Snapshot, EmptyWorldWithoutKinds) {
  TempDir dir;
  auto src = Open(2);
  auto info = TakeSnapshot(*src, dir.path(), {});
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->entities, 0u);
  EXPECT_EQ(info->kinds, 0u);
  auto dst = Open(1);
  ASSERT_TRUE(LoadSnapshot(info->path, dst.get(), nullptr).ok());
  EXPECT_EQ(dst->size(), 0u);
  EXPECT_TRUE(dst->schema()->kinds().empty());
}

TEST(Snapshot, KindsWithoutEntities) {
  TempDir dir;
  auto src = Open(2);
  ASSERT_TRUE(src->CreateKind({"a", {{"s", ColumnType::kString, std::string("x"), 3}}}).ok());
  ASSERT_TRUE(src->CreateKind({"b", {}}).ok());
  auto info = TakeSnapshot(*src, dir.path(), {.lsn_without_log = 1});
  ASSERT_TRUE(info.ok());
  auto dst = Open(3);
  ASSERT_TRUE(LoadSnapshot(info->path, dst.get(), nullptr).ok());
  ExpectSameWorld(*src, *dst);
}

// Strings near the 64 KiB cap: blocks are cut by the write buffer, not by
// the row count.
TEST(Snapshot, LongStringsSplitBlocksByBytes) {
  TempDir dir;
  auto src = Open(1);
  ASSERT_TRUE(
      src->CreateKind({"book", {{"text", ColumnType::kString, std::string(), kMaxStringLength}}})
          .ok());
  BatchBuilder b;
  for (uint64_t id = 1; id <= 300; ++id) {
    std::string text(kMaxStringLength - id, 'a' + id % 26);
    b.Upsert(id, "book", double(id), 0, 0, {{"text", text}});
  }
  ApplyOk(*src, b);
  auto info = TakeSnapshot(*src, dir.path(), {.lsn_without_log = 3});
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_GT(info->bytes, 300u * 60000);
  auto dst = Open(2);
  ASSERT_TRUE(LoadSnapshot(info->path, dst.get(), nullptr).ok());
  ExpectSameWorld(*src, *dst);
}

TEST(Snapshot, LoadRefusesANonFreshEngine) {
  TempDir dir;
  auto src = Open(1);
  Populate(*src, 50);
  auto info = TakeSnapshot(*src, dir.path(), {});
  ASSERT_TRUE(info.ok());
  Status st = LoadSnapshot(info->path, src.get(), nullptr);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
}

TEST(Snapshot, LoadRefusesPositionsOutsideTheTargetWorld) {
  TempDir dir;
  auto src = Open(1);
  Populate(*src, 50);
  auto info = TakeSnapshot(*src, dir.path(), {});
  ASSERT_TRUE(info.ok());
  auto dst = Open(1, {-10, -10, 10, 10});
  Status st = LoadSnapshot(info->path, dst.get(), nullptr);
  EXPECT_EQ(st.code(), StatusCode::kCorruption) << st.ToString();
  EXPECT_NE(st.message().find("outside the world"), std::string::npos) << st.ToString();
  EXPECT_TRUE(dst->schema()->kinds().empty());  // nothing applied
}

TEST(Snapshot, MissingDirectoryIsAnError) {
  auto src = Open(1);
  auto info = TakeSnapshot(*src, "/nonexistent/snapshots", {});
  EXPECT_EQ(info.status().code(), StatusCode::kIOError);
  EXPECT_NE(info.status().message().find("/nonexistent/snapshots"), std::string::npos);
}

// The child cannot create its file (a directory holds the name): the error
// comes back from the child and no snapshot file is left.
TEST(Snapshot, FailingChildLeavesNoFile) {
  TempDir dir;
  auto src = Open(2);
  Populate(*src, 100);
  fs::create_directory(dir.path() + "/" + SnapshotFileName(9) + ".tmp");
  auto info = TakeSnapshot(*src, dir.path(), {.lsn_without_log = 9});
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.status().code(), StatusCode::kIOError);
  EXPECT_NE(info.status().message().find("create snapshot-00000000000000000009.wdb.tmp"),
            std::string::npos)
      << info.status().ToString();
  EXPECT_FALSE(fs::exists(dir.path() + "/" + SnapshotFileName(9)));
  auto list = ListSnapshots(dir.path());
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE(list->empty());
  // The engine goes on: writes and a later snapshot work.
  BatchBuilder b;
  b.Upsert(100000, "rock", 1, 1);
  ApplyOk(*src, b);
  EXPECT_TRUE(TakeSnapshot(*src, dir.path(), {.lsn_without_log = 10}).ok());
}

TEST(Snapshot, ListIgnoresTemporaryAndForeignFilesNewestFirst) {
  TempDir dir;
  auto src = Open(1);
  for (uint64_t lsn : {5, 700, 12}) ASSERT_TRUE(TakeSnapshot(*src, dir.path(), {lsn}).ok());
  for (const std::string& name :
       {SnapshotFileName(900) + ".tmp", std::string("snapshot-12.wdb"), std::string("notes.txt"),
        std::string("snapshot-0000000000000000000x.wdb")}) {
    std::ofstream(dir.path() + "/" + name) << "junk";
  }
  auto list = ListSnapshots(dir.path());
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 3u);
  EXPECT_EQ((*list)[0].lsn, 700u);
  EXPECT_EQ((*list)[1].lsn, 12u);
  EXPECT_EQ((*list)[2].lsn, 5u);
  EXPECT_EQ((*list)[0].path, dir.path() + "/" + SnapshotFileName(700));
  EXPECT_EQ(ListSnapshots("/nonexistent").status().code(), StatusCode::kIOError);
}

// ---- A commit log: LSNs come from Mark, and durability gates the rename -------

class FakeLog : public CommitLog {
 public:
  Status Commit(uint64_t ticket, RecordType, std::span<const uint8_t> record, Ack) override {
    std::unique_lock<std::mutex> lock(mu_);
    Arrive(ticket, !record.empty(), lock);
    return Status::Ok();
  }
  Result<uint64_t> Mark(uint64_t ticket) override {
    std::unique_lock<std::mutex> lock(mu_);
    Arrive(ticket, false, lock);
    marks_.push_back(lsn_);  // single-threaded test: no later ticket got in
    if (mark_error_) return Status::IOError("log stopped");
    return lsn_;
  }
  Status WaitDurable(uint64_t lsn) override {
    std::lock_guard<std::mutex> lock(mu_);
    waited_.push_back(lsn);
    return durable_error_ ? Status::IOError("disk gone") : Status::Ok();
  }
  Status WaitAll(Ack) override { return Status::Ok(); }
  Status Writable() const override { return Status::Ok(); }

  std::mutex mu_;
  uint64_t lsn_ = 0;
  uint64_t next_ = 1;
  std::map<uint64_t, bool> early_;
  std::vector<uint64_t> marks_, waited_;
  bool durable_error_ = false;
  bool mark_error_ = false;

 private:
  // Assigns LSNs in ticket order, as the real log does.
  void Arrive(uint64_t ticket, bool record, std::unique_lock<std::mutex>& lock) {
    early_[ticket] = record;
    while (!early_.empty() && early_.begin()->first == next_) {
      lsn_ += early_.begin()->second ? 1 : 0;
      early_.erase(early_.begin());
      ++next_;
    }
    cv_.notify_all();
    cv_.wait(lock, [&] { return next_ > ticket; });
  }
  std::condition_variable cv_;
};

TEST(Snapshot, LsnComesFromTheLogAndDurabilityGatesTheFile) {
  TempDir dir;
  FakeLog log;
  auto src = Open(2);
  src->SetCommitLog(&log);
  Populate(*src, 300);  // 4 kinds + 1 alter + 3 batches = 8 records
  auto info = TakeSnapshot(*src, dir.path(), {.lsn_without_log = 999});
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->lsn, 8u);
  EXPECT_EQ(log.marks_, std::vector<uint64_t>{8});
  EXPECT_EQ(log.waited_, std::vector<uint64_t>{8});
  EXPECT_EQ(info->ticket, 9u);
  // A refused batch takes a ticket but no LSN; the next snapshot's LSN stays.
  BatchBuilder b;
  b.Move(123456, 0, 0);
  auto bytes = b.Finish();
  EXPECT_FALSE(src->Apply(bytes.data(), bytes.size()).ok());
  log.durable_error_ = true;
  auto failed = TakeSnapshot(*src, dir.path(), {});
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.status().message().find("disk gone"), std::string::npos);
  auto list = ListSnapshots(dir.path());
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);  // only the first; the failed one's .tmp is gone
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 1);
  auto dst = Open(1);
  ASSERT_TRUE(LoadSnapshot(info->path, dst.get(), nullptr).ok());
  ExpectSameWorld(*src, *dst);
}

// Mark fails after the child was forked: the child must learn that no LSN
// comes (EOF on its socket, which needs the child to close its copy of the
// parent's end) and exit; the call returns the log's error, no file is left.
TEST(Snapshot, FailingMarkAfterTheForkEndsTheChild) {
  TempDir dir;
  FakeLog log;
  auto src = Open(2);
  src->SetCommitLog(&log);
  Populate(*src, 100);
  log.mark_error_ = true;
  auto info = TakeSnapshot(*src, dir.path(), {});
  ASSERT_FALSE(info.ok());
  EXPECT_NE(info.status().message().find("log stopped"), std::string::npos);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 0);
  // The engine goes on.
  QueryResult r;
  EXPECT_TRUE(src->Run(Query::Circle(0, 0, 100), &r).ok());
}

// ---- Damage ---------------------------------------------------------------------

std::vector<uint8_t> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)),
                              std::istreambuf_iterator<char>());
}

void WriteFile(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

class SnapshotDamage : public ::testing::Test {
 protected:
  void SetUp() override {
    src_ = Open(2);
    Populate(*src_, 60);
    auto info = TakeSnapshot(*src_, dir_.path(), {.lsn_without_log = 77});
    ASSERT_TRUE(info.ok());
    good_ = ReadFile(info->path);
    bad_path_ = dir_.path() + "/damaged.wdb";
    // Block offsets, walked with the format's own rules.
    uint64_t schema_bytes;
    std::memcpy(&schema_bytes, good_.data() + kOffSchemaBytes, 8);
    for (uint64_t off = kFileHeaderBytes + schema_bytes; off < good_.size() - kFooterBytes;) {
      blocks_.push_back(off);
      uint64_t payload;
      uint16_t cols;
      std::memcpy(&payload, good_.data() + off + 24, 8);
      std::memcpy(&cols, good_.data() + off + 14, 2);
      off += kBlockHeaderBytes + Pad8(cols) + payload;
    }
  }
  // The damaged file is refused by ReadSnapshotInfo and LoadSnapshot, and
  // the message names `offset` (when given) and what to do.
  void ExpectRefused(const std::vector<uint8_t>& bytes, int64_t offset, const std::string& what,
                     bool load = true) {
    WriteFile(bad_path_, bytes);
    auto r = ReadSnapshotInfo(bad_path_, true);
    ASSERT_FALSE(r.ok()) << what;
    EXPECT_EQ(r.status().code(), StatusCode::kCorruption) << what << ": " << r.status().ToString();
    const std::string& m = r.status().message();
    EXPECT_NE(m.find(bad_path_), std::string::npos) << m;
    EXPECT_NE(m.find("use an older snapshot"), std::string::npos) << m;
    if (offset >= 0) {
      EXPECT_NE(m.find("at byte offset " + std::to_string(offset) + ":"), std::string::npos)
          << what << ": " << m;
    }
    if (load) {
      auto e = Open(1);
      Status st = LoadSnapshot(bad_path_, e.get(), nullptr);
      EXPECT_EQ(st.code(), StatusCode::kCorruption) << what;
      EXPECT_TRUE(e->schema()->kinds().empty()) << what;
      EXPECT_EQ(e->size(), 0u) << what;
    }
  }
  TempDir dir_;
  std::unique_ptr<Engine> src_;
  std::vector<uint8_t> good_;
  std::string bad_path_;
  std::vector<uint64_t> blocks_;
};

TEST_F(SnapshotDamage, TheGoodFileLoads) {
  WriteFile(bad_path_, good_);
  ASSERT_TRUE(ReadSnapshotInfo(bad_path_, true).ok());
  EXPECT_GE(blocks_.size(), 6u);  // 2 shards x 3 kinds with entities
}

TEST_F(SnapshotDamage, TruncationAtEveryOffsetIsRefused) {
  // Every length in the header and the footer, every 8th (and its
  // neighbour) in between.
  for (size_t len = 0; len < good_.size(); ++len) {
    if (len > 256 && len + 64 < good_.size() && len % 8 > 1) continue;
    std::vector<uint8_t> cut(good_.begin(), good_.begin() + static_cast<ptrdiff_t>(len));
    ExpectRefused(cut, -1, "truncated to " + std::to_string(len), len % 61 == 0);
    if (HasFailure()) return;
  }
}

TEST_F(SnapshotDamage, TruncatedToWholeWordsNamesTheSize) {
  std::vector<uint8_t> cut(good_.begin(), good_.end() - 8);
  ExpectRefused(cut, -1, "one word short");
  WriteFile(bad_path_, cut);
  // The footer is read where it should be: its magic is wrong.
  EXPECT_NE(ReadSnapshotInfo(bad_path_, false).status().message().find("footer"),
            std::string::npos);
}

TEST_F(SnapshotDamage, BitFlipAnywhereIsRefused) {
  for (size_t i = 0; i < good_.size(); ++i) {
    std::vector<uint8_t> bad = good_;
    bad[i] ^= static_cast<uint8_t>(1u << (i % 8));
    ExpectRefused(bad, -1, "bit flip at " + std::to_string(i), i % 97 == 0);
    if (HasFailure()) return;
  }
}

TEST_F(SnapshotDamage, BitFlipInEveryBlockNamesTheBlockOffset) {
  for (size_t b = 0; b < blocks_.size(); ++b) {
    const uint64_t end = b + 1 < blocks_.size() ? blocks_[b + 1] : good_.size() - kFooterBytes;
    std::vector<uint8_t> bad = good_;
    bad[(blocks_[b] + 8 + end) / 2] ^= 0x10;
    ExpectRefused(bad, static_cast<int64_t>(blocks_[b]), "block " + std::to_string(b));
    WriteFile(bad_path_, bad);
    const std::string m = ReadSnapshotInfo(bad_path_, true).status().message();
    EXPECT_NE(m.find("block " + std::to_string(b) + ": checksum mismatch"), std::string::npos) << m;
    EXPECT_NE(m.find("checksum mismatch"), std::string::npos) << m;
    // Header-only reading does not look at blocks.
    EXPECT_TRUE(ReadSnapshotInfo(bad_path_, false).ok());
  }
}

TEST_F(SnapshotDamage, HeaderSchemaAndFooterDamageNamed) {
  std::vector<uint8_t> bad = good_;
  bad[0] = 'X';
  ExpectRefused(bad, 0, "magic");
  bad = good_;
  bad[kOffLsn] ^= 1;
  ExpectRefused(bad, kHeaderChecksumOffset, "lsn");
  bad = good_;
  bad[kFileHeaderBytes + 5] ^= 1;
  ExpectRefused(bad, kFileHeaderBytes, "schema");
  bad = good_;
  bad[good_.size() - kFooterBytes + 9] ^= 1;  // entity total
  ExpectRefused(bad, static_cast<int64_t>(good_.size() - 8), "footer");
}

TEST_F(SnapshotDamage, NewerVersionIsRefusedByName) {
  std::vector<uint8_t> bad = good_;
  const uint32_t v = kSnapshotVersion + 1;
  std::memcpy(bad.data() + kOffVersion, &v, 4);
  const uint64_t sum = XXH3_64bits(bad.data(), kHeaderChecksumOffset);
  std::memcpy(bad.data() + kHeaderChecksumOffset, &sum, 8);
  ExpectRefused(bad, kOffVersion, "version");
  WriteFile(bad_path_, bad);
  EXPECT_NE(ReadSnapshotInfo(bad_path_, false).status().message().find("format version 2"),
            std::string::npos);
}

// Regression: a block (checksum recomputed, as a buggy or hostile writer
// would) whose payload ends inside the padding of a bool column. The reader's
// position then passes the payload's end; a later column's claim used to
// wrap around in unsigned arithmetic and read past the block.
TEST_F(SnapshotDamage, PayloadEndingInsidePaddingIsRefused) {
  std::vector<uint8_t> bad = good_;
  bool found = false;
  for (uint64_t off : blocks_) {
    uint16_t kind;
    uint32_t rows;
    std::memcpy(&kind, bad.data() + off + 12, 2);
    std::memcpy(&rows, bad.data() + off + 16, 4);
    if (kind != 0 || rows % 8 == 0) continue;  // player: bool, i32, ...
    const uint64_t payload = 33ull * rows;     // ids, x, y, z, then the bools unpadded
    std::memcpy(bad.data() + off + 24, &payload, 8);
    const uint64_t sum = XXH3_64bits(bad.data() + off + 8, kBlockHeaderBytes - 8 + 8 + payload);
    std::memcpy(bad.data() + off, &sum, 8);
    found = true;
    break;
  }
  ASSERT_TRUE(found) << "Populate(60) on 2 shards has a player block of rows % 8 != 0";
  ExpectRefused(bad, -1, "payload inside padding");
  WriteFile(bad_path_, bad);
  const std::string m = ReadSnapshotInfo(bad_path_, true).status().message();
  EXPECT_NE(m.find("i32 values run past the block's payload"), std::string::npos) << m;
}

// A block dropped from the middle, with its checksum intact: the totals and
// the checksum chain in the footer catch it.
TEST_F(SnapshotDamage, MissingBlockIsRefused) {
  std::vector<uint8_t> bad(good_.begin(), good_.begin() + static_cast<ptrdiff_t>(blocks_[1]));
  bad.insert(bad.end(), good_.begin() + static_cast<ptrdiff_t>(blocks_[2]), good_.end());
  ExpectRefused(bad, -1, "block dropped");
  WriteFile(bad_path_, bad);
  EXPECT_NE(ReadSnapshotInfo(bad_path_, true).status().message().find("footer"), std::string::npos);
}

// Writes the fuzzer's seed corpus into $WORLDDB_WRITE_SNAPSHOT_SEEDS
// (tests/fuzz/corpus/snapshot); skipped otherwise.
TEST(Snapshot, WriteFuzzSeedsWhenAsked) {
  const char* out = std::getenv("WORLDDB_WRITE_SNAPSHOT_SEEDS");
  if (!out) GTEST_SKIP() << "set WORLDDB_WRITE_SNAPSHOT_SEEDS=<dir> to write the seeds";
  TempDir dir;
  auto save = [&](Engine& e, uint64_t lsn, const std::string& name) {
    auto info = TakeSnapshot(e, dir.path(), {lsn});
    EXPECT_TRUE(info.ok());
    if (!info.ok()) return std::vector<uint8_t>();
    fs::copy_file(info->path, std::string(out) + "/" + name, fs::copy_options::overwrite_existing);
    return ReadFile(info->path);
  };
  auto empty = Open(1);
  save(*empty, 1, "empty_world");
  auto rocks = Open(2);
  ASSERT_TRUE(rocks->CreateKind({"rock", {}}).ok());
  BatchBuilder b;
  for (uint64_t id = 1; id <= 5; ++id) b.Upsert(id, "rock", double(id), -double(id), 0.5);
  ApplyOk(*rocks, b);
  save(*rocks, 2, "five_rocks");
  auto all = Open(2);
  Populate(*all, 24);
  std::vector<uint8_t> bytes = save(*all, 3, "all_types");
  ASSERT_GT(bytes.size(), 20u);
  bytes.erase(bytes.end() - 20, bytes.end());
  WriteFile(std::string(out) + "/all_types_truncated", bytes);
}

}  // namespace
}  // namespace worlddb::wal
