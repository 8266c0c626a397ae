// Fuzz target: the input bytes are a log segment (wal-...1.log), optionally
// followed by a second one (after the separator "\nNEXTSEG\n", named for the
// LSN after the first segment's records), scanned by ScanLog from an
// in-memory file system strictly, with salvage and with tail repair. Must
// never crash, hang or read out of bounds; whatever it delivers must carry
// dense LSNs.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "wal/fault_file_system.h"
#include "wal/log_format.h"
#include "wal/log_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace worlddb;
  using namespace worlddb::wal;
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  constexpr std::string_view kSep = "\nNEXTSEG\n";
  const size_t sep = in.find(kSep);
  const std::string_view first = in.substr(0, sep);
  for (int mode = 0; mode < 3; ++mode) {
    FaultFileSystem fs;
    (void)fs.CreateDir("/log");
    fs.SetContents("/log/" + SegmentName(1), std::vector<uint8_t>(first.begin(), first.end()));
    if (sep != std::string_view::npos) {
      const std::string_view second = in.substr(sep + kSep.size());
      // Name the second segment after the records the first one holds, so
      // the fuzzer can reach the multi-segment paths.
      uint64_t n = 0;
      ScanOptions probe;
      probe.dirs = {"/log"};
      probe.fs = &fs;
      probe.salvage = true;
      auto r = ScanLog(probe, [](const Record&) { return Status::Ok(); });
      if (r.ok()) n = r->last_lsn;
      fs.SetContents("/log/" + SegmentName(n + 1),
                     std::vector<uint8_t>(second.begin(), second.end()));
    }
    ScanOptions o;
    o.dirs = {"/log"};
    o.fs = &fs;
    o.salvage = mode == 1;
    o.repair_tail = mode == 2;
    uint64_t expect = 0;
    auto r = ScanLog(o, [&](const Record& rec) {
      if (expect != 0 && rec.lsn != expect) __builtin_trap();
      if (reinterpret_cast<uintptr_t>(rec.payload.data()) % 8 != 0) __builtin_trap();
      expect = rec.lsn + 1;
      return Status::Ok();
    });
    if (!r.ok() && o.salvage && r.status().code() == StatusCode::kCorruption) __builtin_trap();
  }
  return 0;
}
