// Fuzz target: bytes from the network through frame decoding (PeekFrame),
// verification and dispatch (Dispatcher::Handle) against a small engine
// with one kind and a few entities. The input is a byte stream of frames, as
// a connection would deliver it; if it holds no whole frame it is also tried
// as one bare payload. Every response must itself pass the verifier.
// Seeds: tests/fuzz/corpus/net_request (written by NetRequestSeeds in
// tests/net_dispatch_test.cc).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "engine/batch_builder.h"
#include "engine/engine.h"
#include "net/dispatch.h"
#include "net/frame.h"

namespace {

using namespace worlddb;
using namespace worlddb::net;

struct World {
  std::unique_ptr<Engine> engine;
  std::unique_ptr<Dispatcher> dispatcher;
  std::unique_ptr<Dispatcher> auth_dispatcher;
  TokenTable tokens = TokenTable::Parse("reader read\nwriter write\nadmin admin\n", "fuzz").value();
  int runs = 0;

  void Reset() {
    dispatcher.reset();
    auth_dispatcher.reset();
    EngineOptions o;
    o.world = {-1000, -1000, 1000, 1000};
    o.shards = 2;
    o.max_batch_bytes = 1 << 20;
    engine = std::move(Engine::Open(o).value());
    (void)engine->CreateKind({"player",
                              {{"hp", ColumnType::kI32, int32_t{100}, 0},
                               {"name", ColumnType::kString, std::string("anon"), 16}}});
    BatchBuilder b;
    for (int i = 1; i <= 20; ++i) b.Upsert(i, "player", i, -i, 0, {{"hp", int32_t{i}}});
    auto bytes = b.Finish();
    (void)engine->Apply(bytes.data(), bytes.size());
    DispatchOptions d;
    d.max_result_rows = 1000;
    d.verifier_max_tables = 10000;
    dispatcher = std::make_unique<Dispatcher>(engine.get(), d);
    d.tokens = &tokens;
    auth_dispatcher = std::make_unique<Dispatcher>(engine.get(), d);
  }
};

void Check(const std::vector<uint8_t>& response) {
  std::vector<uint64_t> storage((response.size() + 7) / 8);
  if (!response.empty()) std::memcpy(storage.data(), response.data(), response.size());
  flatbuffers::Verifier v(reinterpret_cast<const uint8_t*>(storage.data()), response.size());
  if (response.size() < 4 || !v.VerifyBuffer<worlddb::net::fb::Response>(nullptr)) {
    std::fprintf(stderr, "the dispatcher produced an invalid Response\n");
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World* world = [] {
    auto* w = new World;
    w->Reset();
    return w;
  }();
  // Keep the world small: writes accumulate across runs.
  if (++world->runs % 2000 == 0) world->Reset();
  // The first byte picks auth on or off; the rest is the stream.
  if (size == 0) return 0;
  const Dispatcher& d = (data[0] & 1) ? *world->auth_dispatcher : *world->dispatcher;
  ++data;
  --size;
  Session session;
  std::vector<uint8_t> response;
  size_t at = 0;
  bool any = false;
  while (at < size) {
    const FrameView f = PeekFrame(data + at, size - at, 1 << 20);
    if (f.state != FrameView::State::kFrame) break;
    d.Handle(data + at + kFrameHeaderBytes, f.payload_bytes, &session, &response);
    Check(response);
    at += f.frame_bytes();
    any = true;
  }
  if (!any) {
    d.Handle(data, size, &session, &response);
    Check(response);
  }
  return 0;
}
