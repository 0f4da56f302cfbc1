// Encoders and parsers of the companion, checked against protocol.h with a strict local decoder.
#include <gtest/gtest.h>

#include <random>

#include "beacon/companion/proc.h"
#include "beacon/companion/records.h"
#include "beacon/companion/testing/area_reader.h"
#include "haywire/beacon/companion.h"

namespace haywire::beacon {
namespace {

using companion::ContentBuffer;

constexpr std::uint64_t kPresent = 1ULL << 63;
constexpr std::uint64_t kSwappedBit = 1ULL << 62;

std::uint64_t present(std::uint64_t pfn) { return kPresent | pfn; }
std::uint64_t swapped(std::uint64_t type, std::uint64_t offset) { return kSwappedBit | (offset << 5) | type; }

// Expands raw entries the way the encoder must: the expected decoded pages.
std::vector<DecodedPage> expected_pages(std::uint64_t base, const std::vector<std::uint64_t>& e, bool frames) {
  std::vector<DecodedPage> out;
  for (std::size_t i = 0; i < e.size(); ++i) {
    if (e[i] & kPresent) out.push_back({base + i, RunType::kPresent, frames ? (e[i] & ((1ULL << 55) - 1)) : 0});
    else if (e[i] & kSwappedBit) out.push_back({base + i, RunType::kSwapped, ((e[i] & 0x1f) << 50) | ((e[i] & ((1ULL << 55) - 1)) >> 5)});
    else out.push_back({base + i, RunType::kEmpty, 0});
  }
  return out;
}

struct Encoded {
  std::vector<RleChunk> chunks;
  std::vector<DecodedPage> decoded;
};

Encoded encode(std::uint64_t base, const std::vector<std::uint64_t>& entries, bool frames = true) {
  Encoded out;
  RleEncoder rle(out.chunks, frames);
  // Feed in uneven batches: runs must continue across add() calls.
  std::size_t at = 0, step = 1000;
  while (at < entries.size()) {
    std::size_t n = std::min(step, entries.size() - at);
    rle.add(base + at, std::span(entries).subspan(at, n));
    at += n;
    step = step * 3 / 2 + 7;
  }
  rle.finish();
  EXPECT_TRUE(decode_rle_chunks(out.chunks, out.decoded));
  return out;
}

void expect_same(const std::vector<DecodedPage>& a, const std::vector<DecodedPage>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].page, b[i].page) << i;
    ASSERT_EQ(a[i].type, b[i].type) << i;
    ASSERT_EQ(a[i].value, b[i].value) << i;
  }
}

double ratio(std::size_t pages, const std::vector<RleChunk>& chunks) {
  return static_cast<double>(pages * 8) / static_cast<double>(chunks.size() * sizeof(RleChunk));
}

TEST(Rle, SparseTwoOfEvery256PagesCompressesAtLeast40x) {
  // 2 adjacent pages of every 256, frames unrelated (the spec's 42x case): 3 runs per group.
  std::mt19937_64 rng(1);
  std::vector<std::uint64_t> e(256 * 4096, 0);
  for (std::size_t g = 0; g < e.size(); g += 256) {
    e[g + 100] = present(rng() & 0xffffff);
    e[g + 101] = present(rng() & 0xffffff);
  }
  auto enc = encode(0x7f0000000ULL, e);
  expect_same(enc.decoded, expected_pages(0x7f0000000ULL, e, true));
  EXPECT_GE(ratio(e.size(), enc.chunks), 40.0);
}

TEST(Rle, DenseContiguousFramesIsOneRunPerChunk) {
  std::vector<std::uint64_t> e(100000);
  for (std::size_t i = 0; i < e.size(); ++i) e[i] = present(0x1000 + i);
  auto enc = encode(0x400, e);
  ASSERT_EQ(enc.chunks.size(), 1u);
  EXPECT_EQ(enc.chunks[0].num_runs, 1u);
  expect_same(enc.decoded, expected_pages(0x400, e, true));
}

TEST(Rle, DenseScatteredFramesRoundTrips) {
  std::mt19937_64 rng(2);
  std::vector<std::uint64_t> e(5000);
  for (auto& v : e) v = present(rng() & 0xfffffff);
  auto enc = encode(0x10, e);
  expect_same(enc.decoded, expected_pages(0x10, e, true));
  EXPECT_EQ(enc.chunks.size(), (e.size() + kRunsPerChunk - 1) / kRunsPerChunk);
}

TEST(Rle, SwappedRunsKeepTypeAndConsecutiveOffsets) {
  std::vector<std::uint64_t> e(3000, 0);
  for (std::size_t i = 0; i < 1000; ++i) e[i] = swapped(1, 500 + i);  // one run
  for (std::size_t i = 1000; i < 1010; ++i) e[i] = swapped(2, 7);      // same offset: 10 runs
  for (std::size_t i = 2000; i < 2100; ++i) e[i] = present(9000 + i);
  auto enc = encode(0, e);
  expect_same(enc.decoded, expected_pages(0, e, true));
  EXPECT_EQ(enc.chunks[0].runs[0].type, static_cast<std::uint32_t>(RunType::kSwapped));
  EXPECT_EQ(enc.chunks[0].runs[0].length, 1000u);
  EXPECT_EQ(enc.chunks[0].runs[0].value, (1ULL << 50) | 500);
}

TEST(Rle, UnknownFramesMergePresentPages) {
  std::vector<std::uint64_t> e(512, present(0));  // what an unprivileged reader sees
  for (std::size_t i = 0; i < e.size(); i += 2) e[i] = present(0);
  auto enc = encode(0, e, false);
  ASSERT_EQ(enc.chunks.size(), 1u);
  EXPECT_EQ(enc.chunks[0].num_runs, 1u);
  EXPECT_EQ(enc.chunks[0].runs[0].value, 0u);
}

TEST(Rle, LargeGapStartsANewChunkAtItsBasePage) {
  std::vector<RleChunk> chunks;
  RleEncoder rle(chunks, true);
  std::vector<std::uint64_t> a(10, present(5)), b(20, 0);
  const std::uint64_t far = 130 + kBridgeGapPages + 1;
  rle.add(100, a);
  rle.add(110, b);  // continues
  rle.add(far, a);  // a gap too large to bridge
  rle.finish();
  ASSERT_EQ(chunks.size(), 2u);
  EXPECT_EQ(chunks[0].base_page, 100u);
  EXPECT_EQ(chunks[0].pages, 30u);
  EXPECT_EQ(chunks[1].base_page, far);
  EXPECT_EQ(chunks[1].pages, 10u);
}

TEST(Rle, SmallGapIsBridgedByAnEmptyRunInTheSameChunk) {
  std::vector<RleChunk> chunks;
  RleEncoder rle(chunks, true);
  std::vector<std::uint64_t> a(10, present(5)), b(20, 0);
  rle.add(100, a);
  rle.add(120, b);  // 10 unmapped pages between, then empty pages: one EMPTY run of 30
  rle.add(200, a);  // 60 unmapped pages: merged into that EMPTY run
  rle.finish();
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0].base_page, 100u);
  EXPECT_EQ(chunks[0].pages, 110u);
  // 10 present pages with the same PFN are 10 runs; then one EMPTY run of 10 + 20 + 60 pages.
  ASSERT_EQ(chunks[0].num_runs, 21u);
  EXPECT_EQ(chunks[0].runs[10].type, static_cast<std::uint32_t>(RunType::kEmpty));
  EXPECT_EQ(chunks[0].runs[10].length, 90u);
  std::vector<DecodedPage> out;
  ASSERT_TRUE(decode_rle_chunks(chunks, out));
  ASSERT_EQ(out.size(), 110u);
  EXPECT_EQ(out[100].page, 200u);
  EXPECT_EQ(out[100].type, RunType::kPresent);
}

TEST(Rle, DecoderRejectsBrokenChunks) {
  std::vector<RleChunk> chunks;
  RleEncoder rle(chunks, true);
  std::vector<std::uint64_t> e(10, present(5));
  rle.add(0, e);
  rle.finish();
  std::vector<DecodedPage> out;
  auto bad = chunks;
  bad[0].magic_end = 0;
  EXPECT_FALSE(decode_rle_chunks(bad, out));
  bad = chunks;
  bad[0].pages += 1;
  EXPECT_FALSE(decode_rle_chunks(bad, out));
  bad = chunks;
  bad[0].num_runs = kRunsPerChunk + 1;
  EXPECT_FALSE(decode_rle_chunks(bad, out));
}

TEST(ProcParsers, StatWithHostileComm) {
  companion::ProcessInfo info;
  ASSERT_TRUE(companion::parse_stat(
      "42 (a) b) (c) S 7 1 1 0 -1 2097152 1 2 3 4 5 6 7 8 20 0 3 0 99 8192000 250 18446744073709551615", info));
  EXPECT_STREQ(info.comm, "a) b) (c");
  EXPECT_EQ(info.state, 'S');
  EXPECT_EQ(info.ppid, 7u);
  EXPECT_TRUE(info.kernel_thread);
  EXPECT_EQ(info.threads, 3u);
  EXPECT_EQ(info.vsize_kb, 8000u);
  EXPECT_EQ(info.rss_kb, 1000u);
  EXPECT_FALSE(companion::parse_stat("", info));
  EXPECT_FALSE(companion::parse_stat("1 (x", info));
  EXPECT_FALSE(companion::parse_stat("1 (x) S 1 2", info));
  EXPECT_FALSE(companion::parse_stat(")(", info));
}

TEST(ProcParsers, StatusIdsAndCmdline) {
  companion::ProcessInfo info;
  EXPECT_TRUE(companion::parse_status_ids("Name:\tx\nUid:\t1000\t1000\t1000\t1000\nGid:\t50\t50\t50\t50\n", info));
  EXPECT_EQ(info.uid, 1000u);
  EXPECT_EQ(info.gid, 50u);
  EXPECT_FALSE(companion::parse_status_ids("Uid:\tnope\n", info));
  std::string cmd;
  companion::parse_cmdline(std::string_view("sleep\0" "100\0", 10), cmd);
  EXPECT_EQ(cmd, "sleep 100");
  companion::parse_cmdline(std::string(5000, 'x'), cmd);
  EXPECT_EQ(cmd.size(), companion::kMaxCmdline);
}

TEST(ProcParsers, MapsSkipsGarbageAndBoundsCount) {
  std::vector<companion::Section> s;
  EXPECT_TRUE(companion::parse_maps(
      "7f0000000000-7f0000002000 rw-p 00001000 fe:01 1234   /lib/x.so\n"
      "garbage\n20-10 r--p 0 0:0 0\n"
      "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n",
      s, 10));
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].start, 0x7f0000000000u);
  EXPECT_EQ(s[0].offset, 0x1000u);
  EXPECT_EQ(s[0].dev_major, 0xfeu);
  EXPECT_EQ(s[0].inode, 1234u);
  EXPECT_EQ(s[0].path, "/lib/x.so");
  EXPECT_EQ(std::string(s[0].perms, 4), "rw-p");
  EXPECT_EQ(s[1].path, "[vsyscall]");
  std::string many;
  for (int i = 0; i < 50; ++i) many += "1000-2000 r--p 0 0:0 0\n";
  EXPECT_FALSE(companion::parse_maps(many, s, 10));
  EXPECT_EQ(s.size(), 10u);
}

TEST(Records, ProcessSectionsAndPidListRoundTrip) {
  ContentBuffer buf(8192);
  std::vector<std::uint32_t> pids = {1, 2, 300, 4000};
  EXPECT_EQ(companion::encode_pid_list(buf, pids, 9), 4u);
  companion::ProcessInfo info;
  info.pid = 300;
  info.ppid = 1;
  info.uid = 5;
  info.threads = 2;
  info.state = 'R';
  info.rss_kb = 1234;
  std::memcpy(info.comm, "worker", 6);
  info.cmdline = "worker --flag";
  std::vector<companion::Section> sections(2);
  sections[0] = {.start = 0x1000, .end = 0x3000, .perms = {'r', '-', 'x', 'p'}, .path = "/bin/worker"};
  sections[1] = {.start = 0x5000, .end = 0x6000, .perms = {'r', 'w', '-', 'p'}, .path = ""};
  ASSERT_TRUE(companion::encode_process(buf, info, sections, 0, 77, 9));
  buf.finish();
  ASSERT_EQ(buf.size() % 8, 0u);
  std::string why;
  auto parsed = testing::parse_records(buf.bytes(), &why);
  ASSERT_TRUE(parsed) << why;
  EXPECT_TRUE(parsed->ended);
  EXPECT_EQ(parsed->pids, pids);
  ASSERT_EQ(parsed->processes.size(), 1u);
  const auto& p = parsed->processes[0];
  EXPECT_EQ(p.record.pid, 300u);
  EXPECT_EQ(p.record.rss_kb, 1234u);
  EXPECT_EQ(p.record.collected_ns, 77u);
  EXPECT_EQ(p.cmdline, "worker --flag");
  EXPECT_STREQ(p.record.comm, "worker");
  ASSERT_EQ(p.sections.size(), 2u);
  EXPECT_EQ(p.record.section_count, 2u);
  EXPECT_EQ(p.sections[0].second, "/bin/worker");
  EXPECT_EQ(p.sections[1].first.start, 0x5000u);
}

TEST(Records, TooSmallBufferTruncatesSectionsAndSaysSo) {
  ContentBuffer buf(sizeof(ProcessRecord) + 8 + 64 + sizeof(RecordHeader));
  companion::ProcessInfo info;
  info.pid = 1;
  std::vector<companion::Section> sections(5, companion::Section{.start = 0, .end = 4096, .path = "/x"});
  ASSERT_TRUE(companion::encode_process(buf, info, sections, 0, 0, 0));
  buf.finish();
  auto parsed = testing::parse_records(buf.bytes());
  ASSERT_TRUE(parsed);
  ASSERT_EQ(parsed->processes.size(), 1u);
  EXPECT_EQ(parsed->processes[0].sections.size(), 1u);
  EXPECT_TRUE(parsed->processes[0].record.header.flags & kProcessSectionsTruncated);
}

TEST(Records, PagemapTruncationIsFlagged) {
  std::vector<RleChunk> chunks;
  RleEncoder rle(chunks, true);
  std::vector<std::uint64_t> e(1000);
  for (std::size_t i = 0; i < e.size(); ++i) e[i] = present(i * 7);
  rle.add(0, e);
  rle.finish();
  ASSERT_GT(chunks.size(), 3u);
  ContentBuffer buf(sizeof(PagemapRecord) + 3 * sizeof(RleChunk) + 8);
  companion::encode_pagemap(buf, {.mapped_pages = 1000, .present_pages = 1000}, chunks);
  buf.finish();
  auto parsed = testing::parse_records(buf.bytes());
  ASSERT_TRUE(parsed && parsed->pagemap);
  EXPECT_EQ(parsed->pagemap->chunk_count, 3u);
  EXPECT_TRUE(parsed->pagemap->header.flags & kPagemapTruncated);
  EXPECT_EQ(parsed->pagemap->present_pages, 3u * kRunsPerChunk);
}

}  // namespace
}  // namespace haywire::beacon
