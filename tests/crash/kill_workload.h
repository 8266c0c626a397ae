// The kill test's workload: a deterministic sequence of write batches that are
// valid whatever the world holds, so batch j is always log record j + 1 (record
// 1 creates the kind), and a brute-force model of the world after batches
// 1..k. Shared by the writer process (tests/crash/wal_kill_writer.cc) and the
// test that kills it (tests/wal_kill_test.cc).
#pragma once

#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "engine/batch_builder.h"
#include "engine/schema.h"

namespace worlddb::kill_test {

inline constexpr uint64_t kFixedIds = 100;  // created by batch 1, never deleted
inline constexpr uint64_t kMaxId = 1000;
inline const char* const kKind = "unit";

inline KindDef UnitKind() {
  return {
      kKind,
      {{"hp", ColumnType::kI32, int32_t{100}}, {"name", ColumnType::kString, std::string("npc")}}};
}

struct Entity {
  double x = 0, y = 0, z = 0;
  int32_t hp = 100;
  std::string name = "npc";
  bool operator==(const Entity&) const = default;
};
using Model = std::map<uint64_t, Entity>;

// Builds batch j (j >= 1) into `b` and applies it to `model`.
inline void MakeBatch(uint64_t seed, uint64_t j, BatchBuilder* b, Model* model) {
  std::mt19937_64 rng(seed * 1000003 + j);
  auto coord = [&] { return static_cast<double>(rng() % 2000000) / 100.0 - 10000.0; };
  if (j == 1) {
    for (uint64_t id = 1; id <= kFixedIds; ++id) {
      Entity e{coord(), coord(), 0, static_cast<int32_t>(id), "fixed-" + std::to_string(id)};
      b->Upsert(id, kKind, e.x, e.y, e.z, {{"hp", e.hp}, {"name", e.name}});
      (*model)[id] = e;
    }
    return;
  }
  // Distinct ids: an id may appear once per batch.
  const size_t n = 1 + rng() % 40;
  std::vector<uint64_t> ids;
  while (ids.size() < n) {
    const uint64_t id = 1 + rng() % kMaxId;
    bool seen = false;
    for (uint64_t x : ids) seen |= x == id;
    if (!seen) ids.push_back(id);
  }
  for (uint64_t id : ids) {
    const uint64_t op = rng() % 4;
    if (id <= kFixedIds) {
      Entity& e = (*model)[id];
      if (op < 2) {
        e.x = coord();
        e.y = coord();
        e.z = static_cast<double>(rng() % 100);
        b->Move(id, e.x, e.y, e.z);
      } else {
        e.hp = static_cast<int32_t>(rng() % 1000) - 500;
        b->Set(id, {{"hp", e.hp}});
      }
    } else if (op < 3) {
      Entity e{coord(), coord(), static_cast<double>(rng() % 10), static_cast<int32_t>(rng() % 100),
               "u" + std::to_string(rng() % 100000)};
      b->Upsert(id, kKind, e.x, e.y, e.z, {{"hp", e.hp}, {"name", e.name}});
      (*model)[id] = e;
    } else {
      b->Delete(id);
      model->erase(id);
    }
  }
}

// The model after batches 1..k.
inline Model ModelAfter(uint64_t seed, uint64_t k) {
  Model model;
  BatchBuilder b;
  for (uint64_t j = 1; j <= k; ++j) {
    MakeBatch(seed, j, &b, &model);
    (void)b.Finish();
  }
  return model;
}

}  // namespace worlddb::kill_test
