#include "engine/id_map.h"

#include <algorithm>
#include <cmath>

namespace worlddb {

bool IdMap::Insert(uint64_t id, Location loc) {
  if (size_ + 1 > max_size_) Rehash(capacity_ < 16 ? 32 : capacity_ + capacity_ / 2);
  size_t i = Home(id);
  for (;;) {
    Slot& s = slots_[i];
    if (s.value == kEmpty) {
      s.id = id;
      s.value = Pack(loc);
      ++size_;
      return true;
    }
    if (s.id == id) return false;
    if (++i == capacity_) i = 0;
  }
}

bool IdMap::Erase(uint64_t id) {
  if (capacity_ == 0) return false;
  size_t i = Home(id);
  for (;;) {
    if (slots_[i].value == kEmpty) return false;
    if (slots_[i].id == id) break;
    if (++i == capacity_) i = 0;
  }
  // Backward-shift: pull later members of the probe run into the hole when
  // their home position allows it, so no tombstone is needed.
  size_t hole = i;
  size_t j = i;
  for (;;) {
    if (++j == capacity_) j = 0;
    if (slots_[j].value == kEmpty) break;
    const size_t home = Home(slots_[j].id);
    // Can slot j's entry move to `hole`? Only if `home` is not cyclically in (hole, j].
    const bool home_in_range = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
    if (!home_in_range) {
      slots_[hole] = slots_[j];
      hole = j;
    }
  }
  slots_[hole].value = kEmpty;
  --size_;
  return true;
}

void IdMap::Reserve(size_t n) {
  if (n <= max_size_) return;
  Rehash(ReservedCapacity(capacity_, n));
}

size_t IdMap::ReservedCapacity(size_t capacity, size_t n) {
  // At least 1.5x growth, so that a run of small reservations (one per batch)
  // rehashes O(log n) times rather than once per batch.
  const size_t exact = static_cast<size_t>(std::ceil(static_cast<double>(n) / kMaxLoad)) + 1;
  return std::max(exact, capacity + capacity / 2);
}

void IdMap::Clear() {
  slots_.reset();
  capacity_ = size_ = max_size_ = 0;
}

void IdMap::Rehash(size_t capacity) {
  std::unique_ptr<Slot[]> old = std::move(slots_);
  const size_t old_capacity = capacity_;
  slots_ = std::make_unique_for_overwrite<Slot[]>(capacity);
  for (size_t i = 0; i < capacity; ++i) slots_[i].value = kEmpty;
  capacity_ = capacity;
  max_size_ = MaxSize(capacity);
  for (size_t i = 0; i < old_capacity; ++i) {
    if (old[i].value == kEmpty) continue;
    size_t j = Home(old[i].id);
    while (slots_[j].value != kEmpty) {
      if (++j == capacity_) j = 0;
    }
    slots_[j] = old[i];
  }
}

}  // namespace worlddb
