// IdMap: entity id -> (kind, row) within one shard.
//
// Open addressing with linear probing and backward-shift deletion (no
// tombstones, so lookups never slow down after churn). Keys are hashed with
// XXH3-64. The capacity is any size, not a power of two: a slot is chosen by
// multiply-shift ("fastrange"), so a table sized for N entries at load 0.85
// costs ~19 bytes per entry instead of the up-to-32 that power-of-two growth
// can leave behind.
//
// Thread safety: none; owned by one shard's thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace worlddb {

inline uint64_t HashId(uint64_t id) { return XXH3_64bits(&id, sizeof id); }

class IdMap {
 public:
  struct Location {
    uint16_t kind;
    uint32_t row;
  };
  static uint64_t Pack(Location l) { return (uint64_t{l.kind} << 32) | l.row; }
  static Location Unpack(uint64_t v) {
    return {static_cast<uint16_t>(v >> 32), static_cast<uint32_t>(v)};
  }

  IdMap() = default;
  IdMap(const IdMap&) = delete;
  IdMap& operator=(const IdMap&) = delete;

  size_t size() const { return size_; }
  // The packed location of `id`, or nullptr. The pointer stays valid until the
  // next Insert, Erase or Reserve; writing through it updates the location.
  uint64_t* Find(uint64_t id) { return FindHashed(id, HashId(id)); }
  const uint64_t* Find(uint64_t id) const { return const_cast<IdMap*>(this)->Find(id); }
  // Find() for a caller that already has HashId(id): a batch's ids are hashed
  // once for the duplicate check, the prefetch and the lookup.
  uint64_t* FindHashed(uint64_t id, uint64_t hash) {
    if (capacity_ == 0) return nullptr;
    size_t i = HomeOf(hash);
    for (;;) {
      Slot& s = slots_[i];
      if (s.value == kEmpty) return nullptr;
      if (s.id == id) return &s.value;
      if (++i == capacity_) i = 0;
    }
  }

  // Starts loading id's home slot into cache. Lookups of ids that arrive as a
  // batch are independent cache misses; prefetching a few ahead overlaps them.
  void Prefetch(uint64_t id) const { PrefetchHashed(HashId(id)); }
  void PrefetchHashed(uint64_t hash) const {
    if (capacity_ != 0) __builtin_prefetch(&slots_[HomeOf(hash)]);
  }

  // Inserts id -> loc; returns false (and changes nothing) if id is present.
  bool Insert(uint64_t id, Location loc);
  // Removes id; returns false if it was not present.
  bool Erase(uint64_t id);
  // Makes room for `n` entries without further growth.
  void Reserve(size_t n);
  void Clear();
  size_t MemoryBytes() const { return capacity_ * sizeof(Slot); }

  // The growth policy, also read by capacity planning (engine/footprint.h):
  // a map of `capacity` slots takes MaxSize(capacity) entries before it
  // grows, and Reserve(n) past that grows it to ReservedCapacity(capacity, n).
  static constexpr size_t kSlotBytes = 16;
  static size_t MaxSize(size_t capacity) {
    return static_cast<size_t>(static_cast<double>(capacity) * kMaxLoad);
  }
  static size_t ReservedCapacity(size_t capacity, size_t n);

 private:
  static constexpr uint64_t kEmpty = UINT64_MAX;  // no valid Location packs to this
  static constexpr double kMaxLoad = 0.85;
  struct Slot {
    uint64_t id;
    uint64_t value;
  };
  static_assert(sizeof(Slot) == kSlotBytes);

  size_t Home(uint64_t id) const { return HomeOf(HashId(id)); }
  size_t HomeOf(uint64_t hash) const {
    __extension__ using U128 = unsigned __int128;
    return static_cast<size_t>((static_cast<U128>(hash) * capacity_) >> 64);
  }
  void Rehash(size_t capacity);

  std::unique_ptr<Slot[]> slots_;
  size_t capacity_ = 0;
  size_t size_ = 0;
  size_t max_size_ = 0;  // grow beyond this
};

}  // namespace worlddb
