#include "engine/table.h"

#include <gtest/gtest.h>

#include <cstring>

#include "engine/utf8.h"

namespace worlddb {
namespace {

KindDef Def() {
  return {"k",
          {{"b", ColumnType::kBool, true, 0},
           {"i", ColumnType::kI32, int32_t{-1}, 0},
           {"l", ColumnType::kI64, int64_t{1} << 40, 0},
           {"f", ColumnType::kF32, 0.5f, 0},
           {"d", ColumnType::kF64, 2.25, 0},
           {"s", ColumnType::kString, std::string("dflt"), 0}}};
}

TEST(TableTest, AppendFillsDefaults) {
  const KindDef def = Def();
  Table t(def);
  const uint32_t r = t.Append(42, 7.5, def);
  EXPECT_EQ(r, 0u);
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(t.id(r), 42u);
  EXPECT_EQ(t.z(r), 7.5);
  for (size_t c = 0; c < def.columns.size(); ++c)
    EXPECT_EQ(t.column(c).Get(r), def.columns[c].default_value) << c;
}

TEST(TableTest, GrowsAcrossChunksWithoutMovingRows) {
  const KindDef def = Def();
  Table t(def);
  for (uint64_t id = 0; id < 3 * kChunkRows + 5; ++id) {
    const uint32_t r = t.Append(id, double(id), def);
    t.column(1).SetI32(r, int32_t(id));
  }
  for (uint32_t r = 0; r < t.size(); ++r) {
    ASSERT_EQ(t.id(r), r);
    ASSERT_EQ(t.column(1).GetI32(r), int32_t(r));
  }
}

TEST(TableTest, RemoveMovesTheLastRowIntoTheHole) {
  const KindDef def = Def();
  Table t(def);
  for (uint64_t id = 10; id < 15; ++id) {
    const uint32_t r = t.Append(id, 0, def);
    t.column(5).SetString(r, std::to_string(id).c_str(), 2);
  }
  EXPECT_EQ(t.Remove(1), 4u);  // row 4 (id 14) moved into row 1
  EXPECT_EQ(t.id(1), 14u);
  EXPECT_EQ(t.column(5).GetString(1), "14");
  EXPECT_EQ(t.Remove(3), Table::kNoRow);  // removing the last row moves nothing
  EXPECT_EQ(t.size(), 3u);
}

TEST(TableTest, ChunksAreReturnedWithHysteresis) {
  const KindDef def = Def();
  Table t(def);
  for (uint64_t id = 0; id < 4 * kChunkRows; ++id) t.Append(id, 0, def);
  const size_t full = t.MemoryBytes();
  while (t.size() > kChunkRows) t.Remove(t.size() - 1);
  EXPECT_LT(t.MemoryBytes(), full);
  const size_t shrunk = t.MemoryBytes();
  // Hovering at a chunk boundary does not allocate and free every time.
  for (int i = 0; i < 10; ++i) {
    t.Append(1, 0, def);
    t.Remove(t.size() - 1);
  }
  EXPECT_EQ(t.MemoryBytes(), shrunk);
}

TEST(TableTest, AlterDropsAndAddsWithoutTouchingOtherColumns) {
  KindDef def = Def();
  Table t(def);
  for (uint64_t id = 0; id < 100; ++id) {
    const uint32_t r = t.Append(id, 0, def);
    t.column(4).SetF64(r, double(id));
  }
  // Drop "b" and "s", add "n" (default 9).
  KindDef next = def;
  next.columns.erase(next.columns.begin() + 5);
  next.columns.erase(next.columns.begin());
  next.columns.push_back({"n", ColumnType::kI64, int64_t{9}, 0});
  t.Alter({0, 5}, 1, next);
  ASSERT_EQ(t.column_count(), 5u);
  for (uint32_t r = 0; r < t.size(); ++r) {
    EXPECT_EQ(t.column(3).GetF64(r), double(r));  // "d" kept its values
    EXPECT_EQ(t.column(4).GetI64(r), 9);          // "n" has its default
  }
  // Rows appended after the alter get the new layout.
  const uint32_t r = t.Append(1000, 0, next);
  EXPECT_EQ(t.column(4).GetI64(r), 9);
}

TEST(TableTest, ZComesFromThePositionsTree) {
  const KindDef def = Def();
  QuadTree tree(Rect{0, 0, 100, 100});
  Table t(def, &tree);
  Table plain(def);
  for (uint32_t i = 0; i < 10; ++i) {
    const uint32_t r = t.Append(100 + i, 999.0, def);  // z ignored: the tree's counts
    plain.Append(100 + i, 999.0, def);
    tree.Insert(r, i, i, 0.5 * i, 100 + i);
  }
  EXPECT_EQ(t.z(3), 1.5);
  tree.Move(3, 50, 50, -7.25);
  EXPECT_EQ(t.z(3), -7.25);
  // Removing row 3 moves row 9 into it; the owner renames in the tree.
  tree.Remove(3);
  EXPECT_EQ(t.Remove(3), 9u);
  tree.Rename(9, 3);
  EXPECT_EQ(t.id(3), 109u);
  EXPECT_EQ(t.z(3), 4.5);
  // No z column: one chunk of z fewer than a table that keeps z itself.
  EXPECT_EQ(plain.MemoryBytes() - t.MemoryBytes(), kChunkRows * sizeof(double));
}

TEST(Utf8Test, AcceptsValidSequences) {
  for (const char* s :
       {"", "ascii", "\xC3\xA9t\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80", "\xF4\x8F\xBF\xBF"}) {
    EXPECT_TRUE(IsValidUtf8(s, std::strlen(s))) << s;
  }
}

TEST(Utf8Test, RefusesInvalidSequences) {
  for (const char* s : {"\x80", "\xC3", "\xC3\x28", "\xC0\xAF", "\xE0\x80\xAF", "\xED\xA0\x80",
                        "\xF4\x90\x80\x80", "\xF8\x88\x80\x80\x80", "ab\xE2\x82"}) {
    EXPECT_FALSE(IsValidUtf8(s, std::strlen(s))) << testing::PrintToString(s);
  }
}

}  // namespace
}  // namespace worlddb
