// libFuzzer target: arbitrary bytes offered to Engine::Apply as a WriteBatch.
// Whatever the bytes, Apply must return (ok or a Status), never crash, and
// leave the engine's structures consistent; a refused batch changes nothing.
//
// Built with clang -fsanitize=fuzzer,address,undefined when WORLDDB_FUZZ=ON
// (tools/test.sh runs it for a bounded time); the same function is linked into
// fuzz_replay_write_batch, a ctest that replays the committed corpus under the
// regular toolchain.
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "engine/engine.h"

namespace {

worlddb::Engine& TheEngine() {
  static std::unique_ptr<worlddb::Engine> engine = [] {
    worlddb::EngineOptions o;
    o.world = {0, 0, 1000, 1000};
    o.shards = 2;
    auto e = std::move(worlddb::Engine::Open(o).value());
    using worlddb::ColumnType;
    if (!e->CreateKind({"player",
                        {{"hp", ColumnType::kI32, int32_t{100}, 0},
                         {"name", ColumnType::kString, std::string("anon"), 16},
                         {"alive", ColumnType::kBool, true, 0},
                         {"speed", ColumnType::kF32, 1.0f, 0},
                         {"gold", ColumnType::kI64, int64_t{0}, 0},
                         {"mass", ColumnType::kF64, 1.0, 0}}})
             .ok() ||
        !e->CreateKind({"npc", {}}).ok()) {
      std::abort();
    }
    return e;
  }();
  return *engine;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  worlddb::Engine& e = TheEngine();
  auto r = e.Apply(data, size);
  static uint64_t runs = 0;
  if (r.ok() || ++runs % 256 == 0) {
    if (!e.CheckInvariants().empty()) std::abort();
  }
  return 0;
}
