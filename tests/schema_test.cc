#include "engine/schema.h"

#include <gtest/gtest.h>

#include "engine/batch_builder.h"
#include "engine/engine.h"

namespace worlddb {
namespace {

KindDef Player() {
  return {"player",
          {{"hp", ColumnType::kI32, int32_t{100}, 0},
           {"name", ColumnType::kString, std::string("x"), 16}}};
}

TEST(SchemaTest, CreateBumpsVersionAndIsReadBack) {
  Schema s;
  SchemaChange c;
  auto next = s.WithKind(Player(), &c);
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(s.version(), 0u);
  EXPECT_EQ((*next)->version(), 1u);
  EXPECT_EQ((*next)->FindKind("player"), 0);
  EXPECT_EQ((*next)->FindColumn(0, "name"), 1);
  EXPECT_EQ((*next)->kind(0).columns[1].max_length, 16u);
  EXPECT_EQ(c.type, SchemaChange::Type::kCreateKind);
}

TEST(SchemaTest, DuplicateKindRefused) {
  Schema s;
  SchemaChange c;
  auto a = s.WithKind(Player(), &c);
  auto b = (*a)->WithKind(Player(), &c);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), StatusCode::kAlreadyExists);
}

TEST(SchemaTest, BadNamesRefused) {
  for (const char* bad : {"", "9lives", "has space", "x", "id", "distance", "kind",
                          "a2345678901234567890123456789012345678901234567890123456789012345"}) {
    EXPECT_FALSE(ValidateName("kind", bad).ok()) << bad;
  }
  EXPECT_TRUE(ValidateName("kind", "orc_2").ok());
}

TEST(SchemaTest, DefaultOfWrongTypeRefused) {
  Schema s;
  SchemaChange c;
  KindDef k{"k", {{"hp", ColumnType::kI32, int64_t{1}, 0}}};
  auto r = s.WithKind(k, &c);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("'hp'"), std::string::npos);
}

TEST(SchemaTest, StringDefaultLongerThanMaxRefused) {
  Schema s;
  SchemaChange c;
  KindDef k{"k", {{"n", ColumnType::kString, std::string("toolong"), 3}}};
  EXPECT_FALSE(s.WithKind(k, &c).ok());
}

TEST(SchemaTest, MaxLengthOnNonStringRefused) {
  Schema s;
  SchemaChange c;
  KindDef k{"k", {{"n", ColumnType::kI64, int64_t{0}, 3}}};
  EXPECT_FALSE(s.WithKind(k, &c).ok());
}

TEST(SchemaTest, DuplicateColumnRefused) {
  Schema s;
  SchemaChange c;
  KindDef k{"k", {{"n", ColumnType::kI64, int64_t{0}, 0}, {"n", ColumnType::kI64, int64_t{0}, 0}}};
  EXPECT_FALSE(s.WithKind(k, &c).ok());
}

TEST(SchemaTest, AlterDropsThenAdds) {
  Schema s;
  SchemaChange c;
  auto a = s.WithKind(Player(), &c);
  auto b = (*a)->WithAlter("player", {{"hp", ColumnType::kF64, 1.0, 0}}, {"hp"}, &c);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ((*b)->version(), 2u);
  EXPECT_EQ((*b)->FindColumn(0, "hp"), 1);
  EXPECT_EQ((*b)->kind(0).columns[1].type, ColumnType::kF64);
  EXPECT_EQ(c.dropped, std::vector<uint32_t>{0});
  EXPECT_EQ(c.added, 1u);
}

TEST(SchemaTest, AlterErrors) {
  Schema s;
  SchemaChange c;
  auto a = s.WithKind(Player(), &c);
  EXPECT_EQ((*a)->WithAlter("ghost", {}, {}, &c).status().code(), StatusCode::kNotFound);
  EXPECT_EQ((*a)->WithAlter("player", {}, {"mana"}, &c).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(
      (*a)->WithAlter("player", {{"hp", ColumnType::kI32, int32_t{1}, 0}}, {}, &c).status().code(),
      StatusCode::kAlreadyExists);
  EXPECT_FALSE((*a)->WithAlter("player", {}, {"hp", "hp"}, &c).ok());
}

// Live alter: existing rows get the new column's default; other columns keep
// their values.
TEST(EngineSchemaTest, AddColumnGivesExistingRowsTheDefault) {
  EngineOptions o;
  o.shards = 2;
  auto e = std::move(Engine::Open(o).value());
  ASSERT_TRUE(e->CreateKind(Player()).ok());
  BatchBuilder b;
  for (uint64_t id = 1; id <= 5000; ++id)
    b.Upsert(id, "player", double(id % 100), double(id / 100), 0, {{"hp", int32_t(id)}});
  auto bytes = b.Finish();
  ASSERT_TRUE(e->Apply(bytes.data(), bytes.size()).ok());
  ASSERT_TRUE(e->AlterKind("player", {{"mana", ColumnType::kI64, int64_t{7}, 0}}, {"name"}).ok());
  EXPECT_EQ(e->schema()->version(), 2u);
  Shard::Entity ent;
  ASSERT_TRUE(e->Get(4321, &ent));
  ASSERT_EQ(ent.columns.size(), 2u);
  EXPECT_EQ(std::get<int32_t>(ent.columns[0]), 4321);
  EXPECT_EQ(std::get<int64_t>(ent.columns[1]), 7);
  // New rows after the alter, and writes to the new column.
  b.Upsert(6000, "player", 1, 1).Set(4321, {{"mana", int64_t{9}}});
  bytes = b.Finish();
  ASSERT_TRUE(e->Apply(bytes.data(), bytes.size()).ok());
  ASSERT_TRUE(e->Get(4321, &ent));
  EXPECT_EQ(std::get<int64_t>(ent.columns[1]), 9);
  // The dropped column is gone from writes.
  b.Set(1, {{"name", std::string("x")}});
  bytes = b.Finish();
  EXPECT_EQ(e->Apply(bytes.data(), bytes.size()).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(e->CheckInvariants(), "");
}

}  // namespace
}  // namespace worlddb
