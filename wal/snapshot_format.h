// Snapshot file format, version 1 (also docs/snapshot_format.md).
//
// A snapshot holds the whole world at one LSN: the schema and every entity's
// id, position and columns (the spatial index is rebuilt on load). All
// integers and floats are little-endian; every section starts at a multiple
// of 8 bytes. XXH3 is XXH3-64 with seed 0.
//
//   offset 0    FileHeader (kFileHeaderBytes = 128)
//     magic "WDBSNAP\0" | u32 version | u32 header_bytes (128)
//     u64 lsn | u64 ticket | u64 timestamp_us (wall clock at the cut)
//     f64 world min_x, min_y, max_x, max_y
//     u32 shards_at_write | u32 kind_count
//     u64 schema_bytes | u64 schema_checksum (XXH3 of the schema section)
//     u64 entities | u64 blocks (repeated from the footer, for listing)
//     zero padding | u64 header_checksum (XXH3 of bytes 0..119)
//   offset 128  schema section (schema_bytes, a multiple of 8): per kind, in
//     kind-id order: u32 length | a SchemaChange FlatBuffer holding that
//     kind's CreateKind with its current columns (engine/schema_codec.h) |
//     zero padding to 8
//   then        blocks, each one kind's rows from one shard (a shard's rows
//     stream out in table order, so the writer never sorts):
//     BlockHeader (32 bytes): u64 checksum (XXH3 of everything after this
//       field up to the end of the payload) | u32 magic "BLK1" | u16 kind |
//       u16 column_count | u32 rows | u32 shard | u64 payload_bytes
//     column types: column_count x u8 (ColumnType), zero padding to 8
//     payload: ids u64[rows] | x f64[rows] | y f64[rows] | z f64[rows] |
//       per column, each padded to 8: bool u8[rows], i32 i32[rows],
//       i64 i64[rows], f32 f32[rows], f64 f64[rows], string u32 length[rows]
//       then the bytes of every row's string back to back
//   then        Footer (48 bytes): magic "WDBSEND\0" | u64 entities |
//     u64 blocks | u64 chain (XXH3 chained over every block checksum in
//     order: h = XXH3(checksum, seed h), starting at 0) | u64 footer_offset
//     | u64 footer_checksum (XXH3 of the preceding 40 footer bytes)
//
// File names: snapshot-<lsn, 20 digits>.wdb; written as <name>.tmp first,
// fsynced, renamed, directory fsynced. A .tmp file is a crash leftover.
#pragma once

#include <cstddef>
#include <cstdint>

#include "engine/constants.h"

namespace worlddb::wal {

inline constexpr char kSnapshotMagic[8] = {'W', 'D', 'B', 'S', 'N', 'A', 'P', '\0'};
inline constexpr char kSnapshotFooterMagic[8] = {'W', 'D', 'B', 'S', 'E', 'N', 'D', '\0'};
inline constexpr uint32_t kSnapshotBlockMagic = 0x314B4C42;  // "BLK1" little-endian
inline constexpr uint32_t kSnapshotVersion = 1;

inline constexpr size_t kFileHeaderBytes = 128;
inline constexpr size_t kHeaderChecksumOffset = kFileHeaderBytes - 8;
inline constexpr size_t kBlockHeaderBytes = 32;
inline constexpr size_t kFooterBytes = 48;

// Header field offsets.
inline constexpr size_t kOffVersion = 8, kOffHeaderBytes = 12, kOffLsn = 16, kOffTicket = 24,
                        kOffTimestamp = 32, kOffWorld = 40, kOffShards = 72, kOffKinds = 76,
                        kOffSchemaBytes = 80, kOffSchemaChecksum = 88, kOffEntities = 96,
                        kOffBlocks = 104;

// A block holds at most this many rows (one table chunk), and a writer's
// block buffer is at least kSnapshotBufferBytes (more when one row of a kind
// with long strings needs it).
inline constexpr uint32_t kSnapshotBlockRows = static_cast<uint32_t>(kChunkRows);
inline constexpr size_t kSnapshotBufferBytes = size_t{8} << 20;

inline constexpr size_t kSnapshotNameDigits = 20;  // snapshot-<20 digits>.wdb

static_assert(kOffBlocks + 8 <= kHeaderChecksumOffset, "header fields overlap the checksum");
static_assert(kFileHeaderBytes % 8 == 0 && kBlockHeaderBytes % 8 == 0 && kFooterBytes % 8 == 0,
              "sections stay 8-byte aligned");

inline constexpr size_t Pad8(size_t n) { return (n + 7) & ~size_t{7}; }

}  // namespace worlddb::wal
