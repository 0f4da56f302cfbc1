// Pagemap RLE decoding: round trips, the spec's compression figure, hostile chunks.
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "beacon/testing/area_writer.h"
#include "haywire/beacon/decode.h"
#include "haywire/beacon/reader.h"

namespace haywire::beacon {
namespace {

using testing::RecordWriter;

RleChunk chunk(std::uint64_t base, std::initializer_list<Run> runs) {
  RleChunk c{};
  c.magic = kRleMagic;
  c.magic_end = kRleMagicEnd;
  c.base_page = base;
  for (const Run& r : runs) {
    c.runs[c.num_runs++] = r;
    c.pages += r.length;
  }
  return c;
}

std::span<const std::byte> bytes_of(const RleChunk& c) { return std::as_bytes(std::span(&c, 1)); }

TEST(Rle, DecodesAChunk) {
  auto c = chunk(0x400, {{1, 3, 0x1000}, {0, 10, 0}, {2, 2, (1ULL << 50) | 7}});
  std::vector<DecodedRun> runs;
  auto end = decode_rle_chunk(bytes_of(c), 0, runs);
  ASSERT_TRUE(end.has_value()) << describe(end.error());
  EXPECT_EQ(*end, 0x400u + 15);
  ASSERT_EQ(runs.size(), 3u);
  EXPECT_EQ(runs[1].first_page, 0x403u);
  EXPECT_EQ(runs[2].type, RunType::kSwapped);
  EXPECT_EQ(runs[0].value, 0x1000u);
}

TEST(Rle, HostileChunks) {
  std::vector<DecodedRun> runs;
  auto expect_bad = [&](RleChunk c, Invalid why, std::uint64_t min_page = 0) {
    runs.clear();
    auto r = decode_rle_chunk(bytes_of(c), min_page, runs);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error(), why);
    EXPECT_TRUE(runs.empty()) << "a rejected chunk adds no runs";
  };
  auto c = chunk(0, {{1, 1, 1}});
  c.magic = 0;
  expect_bad(c, Invalid::kRle);
  c = chunk(0, {{1, 1, 1}});
  c.magic_end = 0;
  expect_bad(c, Invalid::kRle);
  c = chunk(0, {{1, 1, 1}});
  c.num_runs = 63;
  expect_bad(c, Invalid::kRle);
  c.num_runs = 0xFFFFFFFF;
  expect_bad(c, Invalid::kRle);
  expect_bad(chunk(0, {{3, 1, 0}}), Invalid::kRle);         // unknown run type
  expect_bad(chunk(0, {{1, 0, 5}}), Invalid::kRle);         // empty run
  c = chunk(0, {{1, 4, 0}});
  c.pages = 5;                                              // totals disagree
  expect_bad(c, Invalid::kRle);
  c = chunk(0, {{1, 4, 0}});
  c.runs[10] = beacon::Run{1, 1, 1};                                // garbage past num_runs
  expect_bad(c, Invalid::kRle);
  // Runs past the 2^52-page address space, and values wrapping past 2^64.
  expect_bad(chunk(kVirtualPageLimit - 2, {{0, 3, 0}}), Invalid::kRle);
  expect_bad(chunk(kVirtualPageLimit, {{0, 1, 0}}), Invalid::kRleOrder);
  expect_bad(chunk(0, {{1, 2, ~0ULL}}), Invalid::kRle);
  // Lengths summing past 2^32 per chunk are fine arithmetic but must still match `pages`.
  c = chunk(0, {{0, 0xFFFFFFFF, 0}, {0, 0xFFFFFFFF, 0}});
  expect_bad(c, Invalid::kRle);  // pages (uint32) wrapped
  // Backwards / overlapping chunks.
  expect_bad(chunk(10, {{0, 1, 0}}), Invalid::kRleOrder, 11);
}

TEST(Rle, StreamOfChunksMustAscend) {
  std::vector<RleChunk> cs{chunk(0, {{1, 10, 100}}), chunk(5, {{1, 10, 100}})};
  auto r = decode_rle(std::as_bytes(std::span(cs)), 2);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), Invalid::kRleOrder);
  EXPECT_EQ(decode_rle(std::as_bytes(std::span(cs)), 3).error(), Invalid::kTooShort);
  EXPECT_EQ(decode_rle(std::as_bytes(std::span(cs)), 0xFFFFFFFF).error(), Invalid::kTooShort);
}

// The spec: a process touching 2 of every 256 pages compresses at least 40x.
TEST(Rle, SparseProcessCompressesFortyTimes) {
  std::vector<DecodedRun> runs;
  const std::uint64_t base = 0x7f0000000ULL;
  for (std::uint64_t i = 0; i < 4096; ++i) {
    runs.push_back({RunType::kPresent, base + i * 256, 2, 0x10000 + i * 2});
    runs.push_back({RunType::kEmpty, base + i * 256 + 2, 254, 0});
  }
  RecordWriter w;
  w.process({.pid = 9, .comm = "sparse"});
  w.pagemap(runs, 4096 * 256);
  auto c = parse_records(w.bytes());
  ASSERT_TRUE(c.has_value()) << describe(c.error());
  ASSERT_TRUE(c->processes[0].pagemap.has_value());
  auto s = summarize(*c->processes[0].pagemap);
  EXPECT_EQ(s.present_pages, 4096u * 2);
  EXPECT_EQ(s.present_runs, 4096u);
  EXPECT_EQ(s.empty_pages, 4096u * 254);
  EXPECT_GE(s.compression_ratio, 40.0) << s.raw_bytes << " raw bytes, " << s.encoded_bytes << " encoded";
  ASSERT_EQ(s.present.size(), 4096u);
  EXPECT_EQ(s.present[1].value, 0x10002u);
}

TEST(Rle, PagemapTotalsMustMatchRuns) {
  std::vector<DecodedRun> runs{{RunType::kPresent, 100, 5, 1}, {RunType::kSwapped, 105, 2, 9}};
  RecordWriter w;
  w.process({.pid = 9});
  w.pagemap(runs, 7);
  auto bytes = w.bytes();
  const std::size_t rec = w.bytes().size() - (sizeof(PagemapRecord) + sizeof(RleChunk));
  std::uint64_t lie = 6;
  std::memcpy(bytes.data() + rec + offsetof(PagemapRecord, present_pages), &lie, 8);
  EXPECT_EQ(parse_records(bytes).error(), Invalid::kPagemapTotals);
  std::uint32_t huge = 0xFFFFFFFF;
  std::memcpy(bytes.data() + rec + offsetof(PagemapRecord, chunk_count), &huge, 4);
  EXPECT_EQ(parse_records(bytes).error(), Invalid::kRecord);
}


// EMPTY runs that bridge unmapped gaps between sections are neither "empty pages" of the
// process nor pagemap bytes saved: with the sections given, only pages inside them count.
TEST(Rle, SummaryWithSectionsCountsOnlyMappedPages) {
  const std::uint64_t base = 0x400000 / kPageSize;
  std::vector<DecodedRun> runs{{RunType::kPresent, base, 4, 0x100},
                               {RunType::kEmpty, base + 4, 100, 0},  // 4 mapped + 96 gap
                               {RunType::kPresent, base + 104, 2, 0x200}};
  RecordWriter w;
  w.process({.pid = 9, .comm = "gappy"});
  w.pagemap(runs, 10);
  auto c = parse_records(w.bytes());
  ASSERT_TRUE(c.has_value()) << describe(c.error());
  std::vector<Section> sections(2);
  sections[0].start = base * kPageSize;
  sections[0].end = (base + 8) * kPageSize;
  sections[1].start = (base + 104) * kPageSize;
  sections[1].end = (base + 106) * kPageSize;
  auto plain = summarize(*c->processes[0].pagemap);
  auto mapped = summarize(*c->processes[0].pagemap, sections);
  EXPECT_EQ(plain.raw_bytes, 106u * 8);
  EXPECT_EQ(mapped.raw_bytes, 10u * 8);
  EXPECT_EQ(mapped.empty_pages, 4u);
  EXPECT_EQ(mapped.present_pages, 6u);
  EXPECT_LT(mapped.compression_ratio, plain.compression_ratio);
}

}  // namespace
}  // namespace haywire::beacon
