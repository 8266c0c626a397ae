// Writes the seed corpus of write_batch_fuzzer: small valid batches of every
// operation type and a few near-misses. Run once; the output is committed.
//   make_seeds tests/fuzz/corpus/write_batch
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>

#include "engine/batch_builder.h"

using namespace worlddb;

static void Write(const std::string& dir, const std::string& name, BatchBuilder& b) {
  auto bytes = b.Finish();
  std::ofstream(dir + "/" + name, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const std::string dir = argv[1];
  BatchBuilder b;
  b.Upsert(1, "player", 10, 20, 0, {{"hp", int32_t{5}}, {"name", std::string("orc")}});
  Write(dir, "upsert_player", b);
  b.Upsert(2, "npc", 1000, 1000).Upsert(3, "npc", 0, 0);
  Write(dir, "upsert_edges", b);
  b.Move(1, 11, 21).Move(2, 500, 500, 3);
  Write(dir, "moves", b);
  b.Set(1, {{"alive", false}, {"speed", 2.5f}, {"gold", int64_t{-7}}, {"mass", 3.0}});
  Write(dir, "set_all_types", b);
  b.Delete(3).Delete(99);
  Write(dir, "deletes", b);
  b.Upsert(1, "npc", 5, 5).Move(2, 1, 1).Set(4, {{"hp", int32_t{1}}}).Delete(5);
  Write(dir, "mixed", b);
  b.Move(1, NAN, 3);
  Write(dir, "nan", b);
  b.Move(1, 2, 2).Delete(1);
  Write(dir, "duplicate_id", b);
  b.Set(1, {{"name", std::string(40, 'x')}});
  Write(dir, "string_too_long", b);
  return 0;
}
