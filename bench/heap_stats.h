// Heap bytes currently allocated, for memory-per-entity figures: jemalloc's
// stats.allocated (refreshed), or glibc's mallinfo2 in sanitizer builds.
#pragma once

#include <cstddef>
#include <cstdint>

#ifdef WORLDDB_HAVE_JEMALLOC
#include <jemalloc/jemalloc.h>
#else
#include <malloc.h>
#endif

namespace worlddb::bench {

inline size_t HeapAllocatedBytes() {
#ifdef WORLDDB_HAVE_JEMALLOC
  uint64_t epoch = 1;
  size_t len = sizeof(epoch);
  mallctl("epoch", &epoch, &len, &epoch, len);  // refreshes the statistics
  size_t allocated = 0;
  len = sizeof(allocated);
  if (mallctl("stats.allocated", &allocated, &len, nullptr, 0) != 0) return 0;
  return allocated;
#else
  const struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
#endif
}

}  // namespace worlddb::bench
