#include "engine/id_map.h"

#include <gtest/gtest.h>

#include <random>
#include <unordered_map>

namespace worlddb {
namespace {

TEST(IdMapTest, EmptyFindsNothing) {
  IdMap m;
  EXPECT_EQ(m.Find(1), nullptr);
  EXPECT_FALSE(m.Erase(1));
}

TEST(IdMapTest, InsertFindEraseExtremeIds) {
  IdMap m;
  for (uint64_t id : {uint64_t{0}, uint64_t{1}, UINT64_MAX, UINT64_MAX - 1}) {
    EXPECT_TRUE(m.Insert(id, {3, 7}));
    EXPECT_FALSE(m.Insert(id, {4, 8}));
  }
  EXPECT_EQ(m.size(), 4u);
  ASSERT_NE(m.Find(UINT64_MAX), nullptr);
  EXPECT_EQ(IdMap::Unpack(*m.Find(UINT64_MAX)).row, 7u);
  EXPECT_TRUE(m.Erase(0));
  EXPECT_EQ(m.Find(0), nullptr);
  EXPECT_NE(m.Find(UINT64_MAX - 1), nullptr);
}

TEST(IdMapTest, PackRoundTrip) {
  const IdMap::Location l{65535, 0xFFFFFFFEu};
  EXPECT_EQ(IdMap::Unpack(IdMap::Pack(l)).kind, 65535);
  EXPECT_EQ(IdMap::Unpack(IdMap::Pack(l)).row, 0xFFFFFFFEu);
}

TEST(IdMapTest, ReserveSizesForLoad) {
  IdMap m;
  m.Reserve(1000000);
  const size_t bytes = m.MemoryBytes();
  for (uint64_t i = 0; i < 1000000; ++i) m.Insert(i * 7919, {0, uint32_t(i)});
  EXPECT_EQ(m.MemoryBytes(), bytes) << "Reserve(n) must hold n without growing";
  EXPECT_LT(double(bytes) / 1e6, 20.0) << "bytes per entry at full reservation";
}

// Differential against std::unordered_map with heavy churn, so backward-shift
// deletion is exercised across wrap-around.
TEST(IdMapTest, RandomizedAgainstUnorderedMap) {
  std::mt19937_64 rng(42);
  IdMap m;
  std::unordered_map<uint64_t, uint32_t> ref;
  for (int step = 0; step < 400000; ++step) {
    const uint64_t id = rng() % 5000;
    switch (rng() % 3) {
      case 0: {
        const uint32_t row = uint32_t(rng());
        EXPECT_EQ(m.Insert(id, {1, row}), ref.emplace(id, row).second);
        break;
      }
      case 1:
        EXPECT_EQ(m.Erase(id), ref.erase(id) == 1);
        break;
      default: {
        const uint64_t* v = m.Find(id);
        auto it = ref.find(id);
        ASSERT_EQ(v != nullptr, it != ref.end());
        if (v) {
          EXPECT_EQ(IdMap::Unpack(*v).row, it->second);
        }
      }
    }
    ASSERT_EQ(m.size(), ref.size());
  }
  for (const auto& [id, row] : ref) {
    ASSERT_NE(m.Find(id), nullptr);
    EXPECT_EQ(IdMap::Unpack(*m.Find(id)).row, row);
  }
}

}  // namespace
}  // namespace worlddb
