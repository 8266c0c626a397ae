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
  explicit Completion(uint32_t count) : remaining_(count) {}
  Completion(const Completion&) = delete;
  Completion& operator=(const Completion&) = delete;

  void Done() {
    if (remaining_.fetch_sub(1, std::memory_order_acq_rel) == 1) FutexWakeAll(&remaining_);
  }

  void Wait() {
    for (int i = 0; i < 256; ++i) {
      if (remaining_.load(std::memory_order_acquire) == 0) return;
      CpuRelax();
    }
    for (;;) {
      const uint32_t v = remaining_.load(std::memory_order_acquire);
      if (v == 0) return;
      FutexWait(&remaining_, v);
    }
  }

 private:
  std::atomic<uint32_t> remaining_;
};

}  // namespace worlddb
