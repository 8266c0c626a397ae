// Completion: a countdown a thread waits on until N workers called Done().
//
// The waiter spins briefly (shard work is usually microseconds), then sleeps
// on a futex. Done() may run its futex wake after the waiter has already
// returned and the Completion's storage is gone: FUTEX_WAKE on such an address
// only looks up waiters in the kernel (none, or a spurious wake-up for a later
// waiter at that address, which re-checks its own counter), and never touches
// user memory. This is why it uses the futex directly rather than
// std::atomic::notify, whose contract requires the object to be alive.
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cassert>
#include <climits>
#include <cstdint>
#include <thread>

namespace worlddb {

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

inline void FutexWait(std::atomic<uint32_t>* word, uint32_t expected) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT_PRIVATE, expected, nullptr,
          nullptr, 0);
}

inline void FutexWakeAll(std::atomic<uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr,
          nullptr, 0);
}

class Completion {
 public:
  explicit Completion(uint32_t count) : state_(count) { assert(count < kSleeper); }
  Completion(const Completion&) = delete;
  Completion& operator=(const Completion&) = delete;

  // The futex wake is a system call (and, for a sleeping waiter, an
  // inter-processor interrupt: ~5-10 us on this VM, paid by the shard thread
  // that counts down last). It is made only when the waiter announced that it
  // sleeps, so a waiter still spinning, or one that waits later, costs the
  // worker nothing.
  void Done() {
    const uint32_t before = state_.fetch_sub(1, std::memory_order_acq_rel);
    if (before == (kSleeper | 1)) FutexWakeAll(&state_);
  }

  void Wait() {
    for (int i = 0; i < 256; ++i) {
      if (Count(state_.load(std::memory_order_acquire)) == 0) return;
      CpuRelax();
    }
    uint32_t v = state_.load(std::memory_order_acquire);
    for (;;) {
      if (Count(v) == 0) return;
      // Announce the sleep first: a Done() that lands before the CAS makes
      // it fail (v is re-read); one that lands after it sees the bit and
      // wakes, and FutexWait returns at once if the value moved meanwhile.
      if (!(v & kSleeper) &&
          !state_.compare_exchange_weak(v, v | kSleeper, std::memory_order_acq_rel,
                                        std::memory_order_acquire)) {
        continue;
      }
      FutexWait(&state_, v | kSleeper);
      v = state_.load(std::memory_order_acquire);
    }
  }

 private:
  static constexpr uint32_t kSleeper = 1u << 31;  // a waiter is (about to be) asleep
  static uint32_t Count(uint32_t v) { return v & ~kSleeper; }
  std::atomic<uint32_t> state_;  // count still to come | kSleeper
};

}  // namespace worlddb
