// MpscQueue: FIFO per producer, nothing lost or duplicated with many
// producers, and the Empty()/sleep handshake the engine relies on. Runs under
// TSan in CI (label "stress").
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "engine/completion.h"
#include "engine/mpsc_queue.h"

namespace worlddb {
namespace {

struct Item : QueueNode {
  uint32_t producer = 0;
  uint32_t seq = 0;
};

TEST(MpscQueueTest, EmptyQueuePopsNothing) {
  MpscQueue q;
  EXPECT_TRUE(q.Empty());
  EXPECT_EQ(q.Pop(), nullptr);
}

TEST(MpscQueueTest, SingleProducerIsFifo) {
  MpscQueue q;
  std::vector<Item> items(100);
  for (uint32_t i = 0; i < items.size(); ++i) {
    items[i].seq = i;
    q.Push(&items[i]);
  }
  EXPECT_FALSE(q.Empty());
  for (uint32_t i = 0; i < items.size(); ++i) {
    auto* it = static_cast<Item*>(q.Pop());
    ASSERT_NE(it, nullptr);
    EXPECT_EQ(it->seq, i);
  }
  EXPECT_EQ(q.Pop(), nullptr);
  EXPECT_TRUE(q.Empty());
  // The queue is reusable after draining (the stub node was recycled).
  q.Push(&items[0]);
  EXPECT_EQ(q.Pop(), &items[0]);
}

TEST(MpscQueueTest, ManyProducersLoseNothingAndKeepPerProducerOrder) {
  constexpr uint32_t kProducers = 4, kPerProducer = 20000;
  MpscQueue q;
  std::vector<std::unique_ptr<Item[]>> items;  // Item holds an atomic: not copyable
  for (uint32_t p = 0; p < kProducers; ++p) items.push_back(std::make_unique<Item[]>(kPerProducer));
  std::vector<std::thread> producers;
  for (uint32_t p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (uint32_t i = 0; i < kPerProducer; ++i) {
        items[p][i].producer = p;
        items[p][i].seq = i;
        q.Push(&items[p][i]);
      }
    });
  }
  std::vector<uint32_t> next(kProducers, 0);
  uint32_t received = 0;
  while (received < kProducers * kPerProducer) {
    auto* it = static_cast<Item*>(q.Pop());
    if (!it) {
      CpuRelax();
      continue;
    }
    ASSERT_EQ(it->seq, next[it->producer]) << "producer " << it->producer;
    ++next[it->producer];
    ++received;
  }
  for (auto& t : producers) t.join();
  EXPECT_EQ(q.Pop(), nullptr);
}

TEST(CompletionTest, WaitReturnsAfterEveryDone) {
  for (int round = 0; round < 200; ++round) {
    Completion c(3);
    std::atomic<int> work{0};
    std::vector<std::thread> workers;
    for (int w = 0; w < 3; ++w) {
      workers.emplace_back([&] {
        work.fetch_add(1, std::memory_order_relaxed);
        c.Done();
      });
    }
    c.Wait();
    EXPECT_EQ(work.load(std::memory_order_relaxed), 3);
    for (auto& t : workers) t.join();
  }
}

// The waiter outlasts its spin and sleeps (workers finish ~200 us later), so
// Done() must see the sleeper bit and wake it; and with workers at varied
// delays the last Done() races the waiter's announcement of its sleep.
TEST(CompletionTest, ASleepingWaiterIsWokenByTheLastDone) {
  for (int round = 0; round < 300; ++round) {
    Completion c(2);
    std::atomic<int> work{0};
    std::vector<std::thread> workers;
    for (int w = 0; w < 2; ++w) {
      workers.emplace_back([&, w] {
        std::this_thread::sleep_for(
            std::chrono::microseconds(round % 3 == 0 ? 200 : w * (round % 7)));
        work.fetch_add(1, std::memory_order_relaxed);
        c.Done();
      });
    }
    c.Wait();
    EXPECT_EQ(work.load(std::memory_order_relaxed), 2);
    for (auto& t : workers) t.join();
  }
}

// Many completions done before anyone waits (the server's pipelined writes:
// one wait on the last), then waited in order: no Done() may be lost or
// leave a waiter asleep.
TEST(CompletionTest, CompletionsDoneBeforeTheirWaitReturnAtOnce) {
  constexpr int kN = 64;
  std::vector<std::unique_ptr<Completion>> cs;
  for (int i = 0; i < kN; ++i) cs.push_back(std::make_unique<Completion>(1));
  std::thread worker([&] {
    for (auto& c : cs) c->Done();
  });
  cs.back()->Wait();
  for (auto& c : cs) c->Wait();
  worker.join();
}

}  // namespace
}  // namespace worlddb
