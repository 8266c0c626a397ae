// Limits and defaults of the network server (docs/protocol.md "Limits").
// Each is the default of a daemon flag; the static_asserts keep the defaults
// consistent with the 4-byte frame length and with one another.
#pragma once

#include <cstddef>
#include <cstdint>

namespace worlddb::net {

inline constexpr uint32_t kProtocolVersion = 1;
inline constexpr uint16_t kDefaultPort = 7878;
inline constexpr size_t kFrameHeaderBytes = 4;  // little-endian payload length
inline constexpr size_t kDefaultMaxFrameBytes = size_t{16} << 20;
inline constexpr size_t kDefaultMaxConnections = 1024;
inline constexpr uint64_t kDefaultMaxResultRows = 1'000'000;
inline constexpr size_t kDefaultMaxOutputBufferBytes = size_t{64} << 20;
inline constexpr uint32_t kDefaultIdleTimeoutSeconds = 300;  // 0 = never
// Threads that run blocking requests (writes, schema changes, snapshots) so
// that the event loop never waits for the log; concurrent writes from
// different connections share one group commit.
inline constexpr uint32_t kDefaultWriterThreads = 4;
inline constexpr uint32_t kMaxWriterThreads = 64;
// Write batches of one connection that one writer-thread job takes at most
// (pipelined back to back: applied in order, then one wait for the log), and
// the payload bytes after which it stops adding more (it copies them). A
// busy connection's input is read ahead up to these bytes (and one whole
// frame), so that its next batches are there to join.
inline constexpr size_t kMaxGroupedWrites = 64;
inline constexpr size_t kMaxGroupedWriteBytes = size_t{1} << 20;
// Queries gathered from all connections into one round (one hand-off to the
// shards), at most. Small enough that a burst of pipelined queries makes
// several rounds, so the event loop encodes one round while the shards run
// the next (net/server.cc, Process); large enough that the hand-off's cost
// (a futex wake, a few cache misses) is spread over many queries.
inline constexpr size_t kMaxQueriesPerRound = 256;
// Queries in one QueryBatch request, at most. A batch goes to the shards in
// one round, whatever kMaxQueriesPerRound says, so this bounds a round too.
// A zone server with more players than this sends several batches.
inline constexpr size_t kMaxBatchQueries = 4096;
// Between rounds, a connection's responses are sent once this many bytes wait
// (the rest go out when the loop iteration ends).
inline constexpr size_t kEarlyFlushBytes = size_t{64} << 10;
// Bytes read from a socket per read() call, at least.
inline constexpr size_t kReadChunkBytes = size_t{64} << 10;
// On shutdown, how long in-flight requests and unsent responses may take.
inline constexpr uint32_t kShutdownDrainMillis = 10'000;
// FlatBuffers verifier limits for one inbound message.
inline constexpr uint32_t kVerifierMaxDepth = 64;
inline constexpr uint32_t kVerifierMaxTables = 1'000'000;

static_assert(kDefaultMaxFrameBytes <= UINT32_MAX, "frame length must fit the 4-byte header");
static_assert(kDefaultMaxFrameBytes < (size_t{1} << 31),
              "FlatBuffers buffers are limited to 2 GiB");
static_assert(kDefaultMaxOutputBufferBytes >= kDefaultMaxFrameBytes,
              "the output cap must hold at least one maximal response");
static_assert(kDefaultMaxConnections > 0 && kDefaultMaxResultRows > 0);
static_assert(kMaxGroupedWriteBytes <= kDefaultMaxFrameBytes,
              "a busy connection reads ahead no more than one frame could take");
static_assert(kDefaultWriterThreads >= 1 && kDefaultWriterThreads <= kMaxWriterThreads);
static_assert(kMaxBatchQueries >= kMaxQueriesPerRound,
              "a batch must be able to fill a round on its own");
static_assert(kReadChunkBytes % 8 == 0, "read buffers keep payloads 8-byte aligned");

}  // namespace worlddb::net
