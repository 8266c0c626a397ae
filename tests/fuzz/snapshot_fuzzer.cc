// Fuzz target: the bytes are a snapshot file. ReadSnapshotInfo and
// LoadSnapshot must refuse damage with a Status and never crash; a file that
// passes verification must load. Each input runs twice: as given, and with
// every checksum recomputed, so that mutations reach the structural checks
// behind the checksums (block layout, counts, values, schema).
#include <unistd.h>
#include <xxhash.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "wal/snapshot_format.h"
#include "wal/snapshot_reader.h"

namespace {

using namespace worlddb;
using namespace worlddb::wal;

template <class T>
T Get(const std::vector<uint8_t>& b, size_t off) {
  T v;
  std::memcpy(&v, b.data() + off, sizeof v);
  return v;
}
template <class T>
void Put(std::vector<uint8_t>& b, size_t off, T v) {
  std::memcpy(b.data() + off, &v, sizeof v);
}

// Recomputes every checksum the format has, as far as the layout can be
// followed.
void FixChecksums(std::vector<uint8_t>& b) {
  if (b.size() < kFileHeaderBytes + kFooterBytes) return;
  const uint64_t footer = b.size() - kFooterBytes;
  const uint64_t schema = Get<uint64_t>(b, kOffSchemaBytes);
  if (schema <= footer - kFileHeaderBytes) {
    Put(b, kOffSchemaChecksum, XXH3_64bits(b.data() + kFileHeaderBytes, schema));
    uint64_t off = kFileHeaderBytes + schema, chain = 0;
    while (off + kBlockHeaderBytes <= footer) {
      // Checked like the reader does: a huge payload length must not wrap
      // the sum into a small one.
      const uint64_t room = footer - off - kBlockHeaderBytes;
      const uint64_t types = Pad8(Get<uint16_t>(b, off + 14));
      const uint64_t payload = Get<uint64_t>(b, off + 24);
      if (types > room || payload > room - types) break;
      const uint64_t len = kBlockHeaderBytes + types + payload;
      const uint64_t sum = XXH3_64bits(b.data() + off + 8, len - 8);
      Put(b, off, sum);
      chain = XXH3_64bits_withSeed(&sum, 8, chain);
      off += len;
    }
    Put(b, footer + 24, chain);
  }
  Put(b, footer + 40, XXH3_64bits(b.data() + footer, 40));
  Put(b, kHeaderChecksumOffset, XXH3_64bits(b.data(), kHeaderChecksumOffset));
}

void RunOne(const std::string& path, const std::vector<uint8_t>& bytes) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return;
  if (!bytes.empty()) std::fwrite(bytes.data(), 1, bytes.size(), f);
  std::fclose(f);
  (void)ReadSnapshotInfo(path, false);
  const auto verified = ReadSnapshotInfo(path, true);
  EngineOptions o;
  o.max_batch_bytes = size_t{64} << 20;
  auto engine = std::move(Engine::Open(o).value());
  SnapshotInfo info;
  const Status st = LoadSnapshot(path, engine.get(), &info);
  // The reader checks positions against the file's world, the loader against
  // the engine's: a verified file whose world lies inside the engine's must
  // load, and a loaded file must hold exactly the entities it claims.
  bool inside = false;
  if (bytes.size() >= kFileHeaderBytes) {
    const Rect w{Get<double>(bytes, kOffWorld), Get<double>(bytes, kOffWorld + 8),
                 Get<double>(bytes, kOffWorld + 16), Get<double>(bytes, kOffWorld + 24)};
    inside = w.min_x >= o.world.min_x && w.min_y >= o.world.min_y && w.max_x <= o.world.max_x &&
             w.max_y <= o.world.max_y;
  }
  if (verified.ok() && inside && !st.ok()) {
    std::fprintf(stderr, "verified, but the load failed: %s\n", st.ToString().c_str());
    __builtin_trap();
  }
  if (st.ok() && engine->size() != info.entities) {
    std::fprintf(stderr, "loaded %zu entities, the file says %llu\n", engine->size(),
                 static_cast<unsigned long long>(info.entities));
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (size_t{1} << 20)) return 0;
  static const std::string path =
      "/tmp/snapshot_fuzzer_" + std::to_string(static_cast<long>(getpid())) + ".wdb";
  std::vector<uint8_t> bytes(data, data + size);
  RunOne(path, bytes);
  FixChecksums(bytes);
  RunOne(path, bytes);
  std::remove(path.c_str());
  return 0;
}
