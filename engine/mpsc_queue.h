// MpscQueue: an intrusive, unbounded, lock-free multi-producer single-consumer
// queue (Dmitry Vyukov's design). Push is one atomic exchange and never
// blocks or fails; Pop is for the single consumer and may return nullptr while
// a producer is half-way through a push (the caller simply tries again).
//
// Nodes are owned by the producers: a node must stay alive until the consumer
// has popped it and signalled the producer by other means (the engine's
// Completion). The queue never allocates.
#pragma once

#include <atomic>

namespace worlddb {

struct QueueNode {
  std::atomic<QueueNode*> next{nullptr};
};

class MpscQueue {
 public:
  MpscQueue() : head_(&stub_), tail_(&stub_) {}
  MpscQueue(const MpscQueue&) = delete;
  MpscQueue& operator=(const MpscQueue&) = delete;

  // Any thread.
  void Push(QueueNode* n) {
    n->next.store(nullptr, std::memory_order_relaxed);
    QueueNode* prev = head_.exchange(n, std::memory_order_seq_cst);
    prev->next.store(n, std::memory_order_release);
  }

  // Consumer thread only.
  QueueNode* Pop() {
    QueueNode* tail = tail_;
    QueueNode* next = tail->next.load(std::memory_order_acquire);
    if (tail == &stub_) {
      if (next == nullptr) return nullptr;
      tail_ = next;
      tail = next;
      next = next->next.load(std::memory_order_acquire);
    }
    if (next != nullptr) {
      tail_ = next;
      return tail;
    }
    if (tail != head_.load(std::memory_order_acquire)) return nullptr;  // a push is in progress
    Push(&stub_);
    next = tail->next.load(std::memory_order_acquire);
    if (next != nullptr) {
      tail_ = next;
      return tail;
    }
    return nullptr;
  }

  // Consumer thread only: true if nothing was pushed since the queue was last
  // drained. Sequentially consistent, for the sleep/wake handshake.
  bool Empty() const { return tail_ == &stub_ && head_.load(std::memory_order_seq_cst) == &stub_; }

 private:
  alignas(64) std::atomic<QueueNode*> head_;
  alignas(64) QueueNode* tail_;
  QueueNode stub_;
};

}  // namespace worlddb
