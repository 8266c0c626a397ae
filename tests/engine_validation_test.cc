// Bad input to the engine: each case gets a clear error naming what was wrong,
// and the world is left exactly as it was.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "engine/batch_builder.h"
#include "engine/engine.h"

namespace worlddb {
namespace {

class ValidationTest : public ::testing::TestWithParam<uint32_t> {
 protected:
  void SetUp() override {
    EngineOptions o;
    o.world = {0, 0, 1000, 1000};
    o.shards = GetParam();
    auto e = Engine::Open(o);
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    engine_ = std::move(e.value());
    KindDef player{"player",
                   {{"hp", ColumnType::kI32, int32_t{100}, 0},
                    {"name", ColumnType::kString, std::string("anon"), 8},
                    {"alive", ColumnType::kBool, true, 0},
                    {"speed", ColumnType::kF32, 1.5f, 0}}};
    ASSERT_TRUE(engine_->CreateKind(player).ok());
    BatchBuilder b;
    for (uint64_t id = 1; id <= 50; ++id) b.Upsert(id, "player", double(id), double(id));
    ASSERT_TRUE(Apply(b).ok());
    before_ = Snapshot();
  }

  Result<WriteStats> Apply(BatchBuilder& b) {
    auto bytes = b.Finish();
    return engine_->Apply(bytes.data(), bytes.size());
  }

  // Every entity's full state, for "nothing changed" checks.
  std::string Snapshot() {
    QueryResult r;
    Query q = Query::InRect({0, 0, 1000, 1000});
    q.kind = "player";
    q.columns = {"hp", "name", "alive", "speed"};
    EXPECT_TRUE(engine_->Run(q, &r).ok());
    std::vector<std::string> rows;
    for (size_t i = 0; i < r.rows(); ++i) {
      std::string row = std::to_string(r.ids[i]) + "@" + std::to_string(r.x[i]) + "," +
                        std::to_string(r.y[i]) + "," + std::to_string(r.z[i]);
      for (const auto& c : r.columns) {
        std::visit(
            [&](const auto& v) {
              using T = typename std::decay_t<decltype(v)>::value_type;
              if constexpr (std::is_same_v<T, std::string>)
                row += "|" + v[i];
              else
                row += "|" + std::to_string(v[i]);
            },
            c.data);
      }
      rows.push_back(row);
    }
    std::sort(rows.begin(), rows.end());
    std::string all;
    for (auto& s : rows) all += s + "\n";
    return all;
  }

  // Applies `b`, expects failure with `code` and every fragment in the
  // message, and checks the world did not change.
  void ExpectRefused(BatchBuilder& b, StatusCode code, std::vector<std::string> fragments) {
    auto r = Apply(b);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), code) << r.status().ToString();
    for (const auto& f : fragments)
      EXPECT_NE(r.status().message().find(f), std::string::npos)
          << "missing '" << f << "' in: " << r.status().message();
    EXPECT_EQ(Snapshot(), before_);
    EXPECT_EQ(engine_->CheckInvariants(), "");
  }

  std::unique_ptr<Engine> engine_;
  std::string before_;
};

TEST_P(ValidationTest, OutOfBoundsIsRefusedNamingEntityAndValue) {
  BatchBuilder b;
  b.Move(1, 5, 5).Move(2, 1000.5, 3);
  ExpectRefused(b, StatusCode::kInvalidArgument,
                {"moves[1]", "entity 2", "1000.5", "outside the world"});
}

TEST_P(ValidationTest, NegativeOutOfBoundsUpsert) {
  BatchBuilder b;
  b.Upsert(100, "player", -0.001, 3);
  ExpectRefused(b, StatusCode::kInvalidArgument, {"upserts[0]", "entity 100", "outside the world"});
}

TEST_P(ValidationTest, WorldEdgesAreInside) {
  BatchBuilder b;
  b.Upsert(100, "player", 0, 0).Upsert(101, "player", 1000, 1000).Upsert(102, "player", 0, 1000);
  ASSERT_TRUE(Apply(b).ok());
  EXPECT_EQ(engine_->size(), 53u);
}

TEST_P(ValidationTest, NaNIsRefused) {
  BatchBuilder b;
  b.Move(3, std::nan(""), 4);
  ExpectRefused(b, StatusCode::kInvalidArgument, {"moves[0]", "entity 3", "x = nan", "not finite"});
}

TEST_P(ValidationTest, InfinityIsRefused) {
  BatchBuilder b;
  b.Move(3, 4, std::numeric_limits<double>::infinity());
  ExpectRefused(b, StatusCode::kInvalidArgument, {"entity 3", "y = inf"});
}

TEST_P(ValidationTest, InfiniteZIsRefused) {
  BatchBuilder b;
  b.Move(3, 4, 4, -std::numeric_limits<double>::infinity());
  ExpectRefused(b, StatusCode::kInvalidArgument, {"entity 3", "z = -inf"});
}

TEST_P(ValidationTest, UnknownKind) {
  BatchBuilder b;
  b.Upsert(100, "dragon", 1, 1);
  ExpectRefused(b, StatusCode::kNotFound, {"upserts[0]", "kind 'dragon' does not exist"});
}

TEST_P(ValidationTest, UnknownColumn) {
  BatchBuilder b;
  b.Set(4, {{"mana", int32_t{3}}});
  ExpectRefused(b, StatusCode::kNotFound, {"sets[0]", "entity 4", "'mana'", "no such column"});
}

TEST_P(ValidationTest, WrongColumnType) {
  BatchBuilder b;
  b.Set(4, {{"hp", std::string("lots")}});
  ExpectRefused(b, StatusCode::kInvalidArgument, {"'hp'", "string", "i32 column"});
}

TEST_P(ValidationTest, I64ValueForI32ColumnIsWrongType) {
  BatchBuilder b;
  b.Set(4, {{"hp", int64_t{5}}});
  ExpectRefused(b, StatusCode::kInvalidArgument, {"'hp'", "i64", "i32 column"});
}

TEST_P(ValidationTest, StringTooLong) {
  BatchBuilder b;
  b.Set(5, {{"name", std::string("123456789")}});
  ExpectRefused(b, StatusCode::kInvalidArgument, {"'name'", "9 bytes", "max_length 8"});
}

TEST_P(ValidationTest, StringAtMaxLengthIsFine) {
  BatchBuilder b;
  b.Set(5, {{"name", std::string("12345678")}});
  ASSERT_TRUE(Apply(b).ok());
}

TEST_P(ValidationTest, InvalidUtf8) {
  BatchBuilder b;
  b.Set(5, {{"name", std::string("\xC3\x28")}});
  ExpectRefused(b, StatusCode::kInvalidArgument, {"'name'", "UTF-8"});
}

TEST_P(ValidationTest, SameColumnTwiceInOneOperation) {
  BatchBuilder b;
  b.Set(5, {{"hp", int32_t{1}}, {"hp", int32_t{2}}});
  ExpectRefused(b, StatusCode::kInvalidArgument, {"'hp'", "named twice"});
}

TEST_P(ValidationTest, SameIdTwiceInOneBatchIsRefused) {
  BatchBuilder b;
  b.Move(6, 1, 1).Set(7, {{"hp", int32_t{1}}}).Delete(6);
  ExpectRefused(b, StatusCode::kInvalidArgument,
                {"entity 6", "appears twice", "moves[0]", "deletes[0]"});
}

TEST_P(ValidationTest, SameIdTwiceAmongUpserts) {
  BatchBuilder b;
  b.Upsert(200, "player", 1, 1).Upsert(200, "player", 2, 2);
  ExpectRefused(b, StatusCode::kInvalidArgument, {"entity 200", "appears twice"});
}

TEST_P(ValidationTest, MoveOfMissingIdIsRefused) {
  BatchBuilder b;
  b.Move(1, 2, 2).Move(999, 1, 1);
  ExpectRefused(b, StatusCode::kNotFound, {"moves[1]", "entity 999", "does not exist"});
}

// Batches longer than the shard's prefetch distance: each move's id is hashed
// once and that hash serves the duplicate check and the id map lookup, so a
// wrong pairing of hashes with moves would show here.
TEST_P(ValidationTest, SameIdTwiceAmongManyMovesNamesBothPositions) {
  BatchBuilder b;
  for (uint64_t id = 1; id <= 50; ++id) b.Move(id, double(id) + 0.5, 3);
  b.Move(37, 9, 9);
  ExpectRefused(b, StatusCode::kInvalidArgument,
                {"entity 37", "appears twice", "moves[36]", "moves[50]"});
}

TEST_P(ValidationTest, MissingIdAfterManyMovesIsRefusedByItsPosition) {
  BatchBuilder b;
  for (uint64_t id = 1; id <= 40; ++id) b.Move(id, 2, double(id));
  b.Move(999, 1, 1);
  for (uint64_t id = 41; id <= 50; ++id) b.Move(id, 2, double(id));
  ExpectRefused(b, StatusCode::kNotFound, {"moves[40]", "entity 999", "does not exist"});
}

TEST_P(ValidationTest, ManyMovesAllApply) {
  BatchBuilder b;
  for (uint64_t id = 1; id <= 50; ++id) b.Move(id, 1000.0 - double(id), double(id) / 4);
  auto r = Apply(b);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r.value().moved, 50u);
  QueryResult q;
  ASSERT_TRUE(engine_->Run(Query::InRect({0, 0, 1000, 1000}), &q).ok());
  ASSERT_EQ(q.rows(), 50u);
  for (size_t i = 0; i < q.rows(); ++i) {
    EXPECT_EQ(q.x[i], 1000.0 - double(q.ids[i])) << q.ids[i];
    EXPECT_EQ(q.y[i], double(q.ids[i]) / 4) << q.ids[i];
  }
}

TEST_P(ValidationTest, SetOfMissingIdIsRefused) {
  BatchBuilder b;
  b.Set(999, {{"hp", int32_t{1}}});
  ExpectRefused(b, StatusCode::kNotFound, {"sets[0]", "entity 999"});
}

TEST_P(ValidationTest, DeleteOfMissingIdIsACountedNoOp) {
  BatchBuilder b;
  b.Delete(999).Delete(1);
  auto r = Apply(b);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->deleted, 1u);
  EXPECT_EQ(r->delete_missing, 1u);
  EXPECT_EQ(engine_->size(), 49u);
}

TEST_P(ValidationTest, OneBadOperationRefusesTheWholeBatch) {
  BatchBuilder b;
  for (uint64_t id = 1; id <= 40; ++id) b.Move(id, 500, 500);
  b.Upsert(300, "player", 1, 1).Delete(301);
  b.Set(45, {{"speed", 2.0f}}).Set(46, {{"speed", 2.0}});  // the last is f64 for an f32 column
  ExpectRefused(b, StatusCode::kInvalidArgument, {"sets[1]", "entity 46", "'speed'"});
  EXPECT_EQ(engine_->size(), 50u);
}

TEST_P(ValidationTest, GarbageBytesAreRefused) {
  std::vector<uint8_t> junk = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  auto r = engine_->Apply(junk.data(), junk.size());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption);
  EXPECT_NE(r.status().message().find("not a valid WriteBatch"), std::string::npos);
  auto empty = engine_->Apply(junk.data(), 0);
  EXPECT_FALSE(empty.ok());
  EXPECT_EQ(Snapshot(), before_);
}

TEST_P(ValidationTest, TruncatedBatchIsRefused) {
  BatchBuilder b;
  b.Upsert(400, "player", 1, 1, 0, {{"name", std::string("bob")}});
  auto bytes = b.FinishCopy();
  // A cut either fails verification or removed only trailing bytes the batch
  // does not reference (alignment padding): then it is the same batch.
  size_t accepted = 0;
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    std::vector<uint8_t> copy(bytes.begin(), bytes.begin() + cut);  // no bytes past the cut
    auto r = engine_->Apply(copy.data(), copy.size());
    if (!r.ok()) continue;
    ++accepted;
    Shard::Entity e;
    ASSERT_TRUE(engine_->Get(400, &e)) << "cut at " << cut;
    EXPECT_EQ(std::get<std::string>(e.columns[1]), "bob");
    BatchBuilder del;
    del.Delete(400);
    ASSERT_TRUE(Apply(del).ok());
  }
  EXPECT_LE(accepted, 8u);
  EXPECT_EQ(Snapshot(), before_);
}

TEST_P(ValidationTest, MissingRequiredKindIsRefused) {
  flatbuffers::FlatBufferBuilder fbb;
  fb::UpsertBuilder ub(fbb);  // no kind: a required field
  ub.add_id(9);
  auto up = ub.Finish();
  auto ups = fbb.CreateVector(std::vector<flatbuffers::Offset<fb::Upsert>>{up});
  fbb.Finish(fb::CreateWriteBatch(fbb, ups));
  auto r = engine_->Apply(fbb.GetBufferPointer(), fbb.GetSize());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption);
}

TEST_P(ValidationTest, RawCellOutOfRangeForI32) {
  flatbuffers::FlatBufferBuilder fbb;
  auto cell = fb::CreateCell(fbb, fbb.CreateString("hp"), fb::ColumnType_I32, int64_t{1} << 40);
  auto cells = fbb.CreateVector(std::vector<flatbuffers::Offset<fb::Cell>>{cell});
  auto set = fb::CreateSetColumns(fbb, 4, cells);
  fbb.Finish(fb::CreateWriteBatch(fbb, 0, 0, fbb.CreateVector(std::vector{set})));
  auto r = engine_->Apply(fbb.GetBufferPointer(), fbb.GetSize());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("does not fit in i32"), std::string::npos)
      << r.status().ToString();
  EXPECT_EQ(Snapshot(), before_);
}

TEST_P(ValidationTest, RawCellUnknownTypeTag) {
  flatbuffers::FlatBufferBuilder fbb;
  auto cell = fb::CreateCell(fbb, fbb.CreateString("hp"), static_cast<fb::ColumnType>(77), 1);
  auto cells = fbb.CreateVector(std::vector<flatbuffers::Offset<fb::Cell>>{cell});
  auto set = fb::CreateSetColumns(fbb, 4, cells);
  fbb.Finish(fb::CreateWriteBatch(fbb, 0, 0, fbb.CreateVector(std::vector{set})));
  auto r = engine_->Apply(fbb.GetBufferPointer(), fbb.GetSize());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("unknown"), std::string::npos) << r.status().ToString();
}

TEST_P(ValidationTest, RawBoolOtherThanZeroOrOne) {
  flatbuffers::FlatBufferBuilder fbb;
  auto cell = fb::CreateCell(fbb, fbb.CreateString("alive"), fb::ColumnType_Bool, 2);
  auto cells = fbb.CreateVector(std::vector<flatbuffers::Offset<fb::Cell>>{cell});
  auto set = fb::CreateSetColumns(fbb, 4, cells);
  fbb.Finish(fb::CreateWriteBatch(fbb, 0, 0, fbb.CreateVector(std::vector{set})));
  auto r = engine_->Apply(fbb.GetBufferPointer(), fbb.GetSize());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("bool must be 0 or 1"), std::string::npos);
}

TEST_P(ValidationTest, NonFiniteFloatColumnValue) {
  BatchBuilder b;
  b.Set(4, {{"speed", std::numeric_limits<float>::quiet_NaN()}});
  ExpectRefused(b, StatusCode::kInvalidArgument, {"'speed'", "finite"});
}

// ---- Queries ----

TEST_P(ValidationTest, KnnWithKZero) {
  QueryResult r;
  Status s = engine_->Run(Query::Nearest(1, 1, 0), &r);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("k = 0"), std::string::npos);
}

TEST_P(ValidationTest, NegativeRadius) {
  QueryResult r;
  Status s = engine_->Run(Query::Circle(1, 1, -1), &r);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("radius -1"), std::string::npos);
}

TEST_P(ValidationTest, NaNRadiusAndCentre) {
  QueryResult r;
  EXPECT_FALSE(engine_->Run(Query::Circle(1, 1, std::nan("")), &r).ok());
  EXPECT_FALSE(engine_->Run(Query::Circle(std::nan(""), 1, 1), &r).ok());
}

TEST_P(ValidationTest, InvertedRectangle) {
  QueryResult r;
  Status s = engine_->Run(Query::InRect({10, 0, 5, 10}), &r);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("inverted"), std::string::npos);
}

TEST_P(ValidationTest, DensityGridTooLarge) {
  DensityQuery d;
  d.rect = {0, 0, 1000, 1000};
  d.nx = 4096;
  d.ny = 4096;
  DensityResult out;
  Status s = engine_->Density(d, &out);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("4096 x 4096"), std::string::npos);
}

TEST_P(ValidationTest, DensityGridZeroCellsOrFlatRect) {
  DensityQuery d;
  d.rect = {0, 0, 1000, 1000};
  d.nx = 0;
  d.ny = 3;
  DensityResult out;
  EXPECT_EQ(engine_->Density(d, &out).code(), StatusCode::kInvalidArgument);
  d.nx = 3;
  d.rect = {0, 0, 0, 1000};
  EXPECT_EQ(engine_->Density(d, &out).code(), StatusCode::kInvalidArgument);
}

TEST_P(ValidationTest, DensityRectangleWhoseWidthTimesCellsOverflows) {
  DensityQuery d;
  d.rect = {-1.5e308, 0, 1.5e308, 1000};  // finite corners, infinite width
  d.nx = 1;
  d.ny = 1;
  DensityResult out;
  Status s = engine_->Density(d, &out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("too large"), std::string::npos) << s.message();
  d.rect = {0, -5e307, 1000, 5e307};  // finite height, height x ny not
  d.ny = 4;
  EXPECT_EQ(engine_->Density(d, &out).code(), StatusCode::kInvalidArgument);
}

TEST_P(ValidationTest, QueryUnknownKindAndColumn) {
  QueryResult r;
  Query q = Query::Circle(1, 1, 5);
  q.kind = "dragon";
  Status s = engine_->Run(q, &r);
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_NE(s.message().find("'dragon'"), std::string::npos);
  q.kind = "player";
  q.where = {{"mana", CompareOp::kEq, int32_t{1}}};
  s = engine_->Run(q, &r);
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_NE(s.message().find("'mana'"), std::string::npos);
  q.where.clear();
  q.columns = {"mana"};
  EXPECT_EQ(engine_->Run(q, &r).code(), StatusCode::kNotFound);
}

TEST_P(ValidationTest, PredicateOfWrongType) {
  QueryResult r;
  Query q = Query::Circle(1, 1, 5);
  q.kind = "player";
  q.where = {{"hp", CompareOp::kLt, 3.0}};
  Status s = engine_->Run(q, &r);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("'hp'"), std::string::npos);
}

TEST_P(ValidationTest, ColumnsWithoutKind) {
  QueryResult r;
  Query q = Query::Circle(1, 1, 5);
  q.columns = {"hp"};
  Status s = engine_->Run(q, &r);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("set the query's kind"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Shards, ValidationTest, ::testing::Values(1u, 3u),
                         [](const ::testing::TestParamInfo<uint32_t>& p) {
                           return "shards" + std::to_string(p.param);
                         });

TEST(EngineOpenTest, RefusesBadOptions) {
  EngineOptions o;
  o.shards = 0;
  EXPECT_FALSE(Engine::Open(o).ok());
  o.shards = 1;
  o.world = {0, 0, 0, 10};
  EXPECT_FALSE(Engine::Open(o).ok());
  o.world = {0, 0, std::nan(""), 10};
  EXPECT_FALSE(Engine::Open(o).ok());
}

}  // namespace
}  // namespace worlddb

namespace worlddb {
namespace {

// Regression: duplicate detection in batches longer than the prefetch
// distance (the first version only ever saw small batches in tests).
TEST(ValidationLargeBatchTest, DuplicateFarApartInALargeBatchIsRefused) {
  for (uint32_t shards : {1u, 2u}) {
    EngineOptions o;
    o.shards = shards;
    auto e = std::move(Engine::Open(o).value());
    ASSERT_TRUE(e->CreateKind({"k", {}}).ok());
    BatchBuilder b;
    for (uint64_t id = 1; id <= 5000; ++id) b.Upsert(id, "k", double(id % 100), 0);
    b.Upsert(17, "k", 1, 1);
    auto bytes = b.Finish();
    auto r = e->Apply(bytes.data(), bytes.size());
    ASSERT_FALSE(r.ok()) << "shards " << shards;
    EXPECT_NE(r.status().message().find("entity 17 appears twice"), std::string::npos)
        << r.status().ToString();
    EXPECT_EQ(e->size(), 0u);
    for (uint64_t id = 1; id <= 5000; ++id) b.Move(id, 1, 1);
    b.Delete(4999);
    bytes = b.Finish();
    EXPECT_FALSE(e->Apply(bytes.data(), bytes.size()).ok());
  }
}

}  // namespace
}  // namespace worlddb

namespace worlddb {
namespace {

// Regression (found by write_batch_fuzzer): a batch whose bytes start off an
// 8-byte boundary had its Move structs read misaligned (UBSan).
TEST(ValidationAlignmentTest, BatchAtAnyAddressIsApplied) {
  EngineOptions o;
  o.world = {0, 0, 1000, 1000};
  auto e = std::move(Engine::Open(o).value());
  ASSERT_TRUE(e->CreateKind({"k", {{"hp", ColumnType::kI32, int32_t{1}, 0}}}).ok());
  BatchBuilder b;
  b.Upsert(1, "k", 1, 1).Upsert(2, "k", 2, 2);
  auto up = b.FinishCopy();
  b.Move(1, 10, 10).Move(2, 20, 20);
  auto mv = b.FinishCopy();
  for (size_t offset = 1; offset < 8; ++offset) {
    std::vector<uint8_t> buf(offset + std::max(up.size(), mv.size()));
    std::copy(up.begin(), up.end(), buf.begin() + offset);
    ASSERT_TRUE(e->Apply(buf.data() + offset, up.size()).ok()) << offset;
    std::copy(mv.begin(), mv.end(), buf.begin() + offset);
    auto r = e->Apply(buf.data() + offset, mv.size());
    ASSERT_TRUE(r.ok()) << offset << ": " << r.status().ToString();
    Shard::Entity ent;
    ASSERT_TRUE(e->Get(2, &ent));
    EXPECT_EQ(ent.x, 20);
  }
}

}  // namespace
}  // namespace worlddb

namespace worlddb {
namespace {

// Applies `bytes` from an 8-byte aligned copy, so that only the layout inside
// the buffer can be misaligned.
Result<WriteStats> ApplyAlignedCopy(const std::vector<uint8_t>& bytes) {
  std::vector<uint64_t> aligned((bytes.size() + 7) / 8);
  std::memcpy(aligned.data(), bytes.data(), bytes.size());
  EngineOptions o;
  auto e = std::move(Engine::Open(o).value());
  return e->Apply(reinterpret_cast<const uint8_t*>(aligned.data()), bytes.size());
}

// Regression (found by write_batch_fuzzer): a verified buffer whose Move
// vector sits at a 4- but not 8-byte aligned offset is refused, not read.
TEST(ValidationAlignmentTest, MisalignedMoveVectorIsRefused) {
  const std::vector<uint8_t> bytes = {
      0xc, 0x0, 0x0, 0x0, 0x8,  0x0,  0x8, 0x0,  0x0, 0x0, 0x4, 0x0, 0x8, 0x0, 0x0, 0x0,  0x8,
      0x0, 0x0, 0x0, 0x4, 0x0,  0x0,  0x0, 0x1,  0x0, 0x0, 0x0, 0x1, 0x0, 0x0, 0x0, 0x0,  0x4,
      0x0, 0x0, 0x0, 0x1, 0x0,  0x0,  0x0, 0x1,  0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0,  0x0,
      0x0, 0x0, 0x0, 0x0, 0xf8, 0x7f, 0x0, 0x0,  0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x39, 0x0,
      0x0, 0x0, 0x0, 0x0, 0x0,  0x0,  0x8, 0x40, 0x0, 0x2, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0,  0x7e};
  auto r = ApplyAlignedCopy(bytes);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption);
  EXPECT_NE(r.status().message().find("not 8-byte aligned"), std::string::npos)
      << r.status().ToString();
}

}  // namespace
}  // namespace worlddb

namespace worlddb {
namespace {

// Found by the differential test: -0.0 survived a move (a struct) but not an
// upsert (FlatBuffers elides fields equal to the default). Both now store +0.0.
TEST(ValidationSignedZeroTest, NegativeZeroIsStoredAsPositiveZero) {
  EngineOptions o;
  o.world = {-10, -10, 10, 10};
  auto e = std::move(Engine::Open(o).value());
  ASSERT_TRUE(e->CreateKind({"k", {{"f", ColumnType::kF64, 1.0, 0}}}).ok());
  BatchBuilder b;
  b.Upsert(1, "k", 1, 1).Upsert(2, "k", 1, 1);
  auto bytes = b.Finish();
  ASSERT_TRUE(e->Apply(bytes.data(), bytes.size()).ok());
  b.Move(1, -0.0, -0.0, -0.0).Set(2, {{"f", -0.0}});
  bytes = b.Finish();
  ASSERT_TRUE(e->Apply(bytes.data(), bytes.size()).ok());
  Shard::Entity ent;
  ASSERT_TRUE(e->Get(1, &ent));
  EXPECT_FALSE(std::signbit(ent.x));
  EXPECT_FALSE(std::signbit(ent.y));
  EXPECT_FALSE(std::signbit(ent.z));
  ASSERT_TRUE(e->Get(2, &ent));
  EXPECT_FALSE(std::signbit(std::get<double>(ent.columns[0])));
}

}  // namespace
}  // namespace worlddb

namespace worlddb {
namespace {

// Regression (found by write_batch_fuzzer in CI): the deletes vector of
// 8-byte ids at a 4- but not 8-byte aligned offset.
TEST(ValidationAlignmentTest, MisalignedDeleteVectorIsRefused) {
  const std::vector<uint8_t> bytes = {
      0x10, 0x0, 0x0, 0x0,  0xc, 0x0, 0xc, 0x0,  0x0,  0x0, 0x4, 0x0, 0x0, 0x0, 0x8, 0x0, 0xc,
      0x0,  0x0, 0x0, 0x18, 0x0, 0x0, 0x0, 0x18, 0x0,  0x0, 0x0, 0x4, 0x0, 0x0, 0x0, 0x1, 0x0,
      0x0,  0x0, 0x1, 0x0,  0x0, 0x0, 0x0, 0x0,  0x0,  0x0, 0x0, 0x0, 0x0, 0x0, 0x1, 0x0, 0x0,
      0x0,  0x1, 0x0, 0x0,  0x0, 0x0, 0x0, 0x0,  0x0,  0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x40,
      0x0,  0x0, 0x0, 0x0,  0x0, 0x0, 0x0, 0x40, 0x0,  0x0, 0x0, 0x0, 0x4, 0x0, 0x0, 0x0, 0x1,
      0x0,  0x0, 0x0, 0x1,  0x0, 0x0, 0x0, 0x0,  0x0,  0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x1, 0x0,
      0x0,  0x0, 0x1, 0x0,  0x0, 0x0, 0x0, 0x0,  0x0,  0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0,
      0x40, 0x0, 0x0, 0x0,  0x0, 0x0, 0x0, 0x0,  0x40, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0};
  auto r = ApplyAlignedCopy(bytes);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption) << r.status().ToString();
  EXPECT_NE(r.status().message().find("deletes vector"), std::string::npos)
      << r.status().ToString();
}

}  // namespace
}  // namespace worlddb
