// Page verification, seqlock block copies and the record stream, with hostile input.
#include "haywire/beacon/decode.h"

#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "beacon/testing/area_writer.h"

namespace haywire::beacon {
namespace {

using testing::RecordWriter;

std::vector<std::byte> make_page(PageHeader h, std::span<const std::byte> payload) {
  std::vector<std::byte> page(kPageSize);
  h.data_size = static_cast<std::uint32_t>(payload.size());
  h.checksum = page_checksum(h, payload);
  std::memcpy(page.data(), &h, sizeof(h));
  if (!payload.empty()) std::memcpy(page.data() + sizeof(h), payload.data(), payload.size());
  return page;
}

PageHeader header(BlockType type, std::uint32_t id, std::uint32_t index, std::uint32_t pages, std::uint32_t gen) {
  return PageHeader{kMagic, kProtocolVersion, static_cast<std::uint16_t>(type), id, index, pages, gen, 0, 0, 77};
}

TEST(VerifyPage, AcceptsAGoodPageAndChecksEveryField) {
  std::vector<std::byte> payload(100, std::byte{7});
  auto page = make_page(header(BlockType::kPids, 2, 0, 1, 5), payload);
  auto h = verify_page(page, {.type = BlockType::kPids, .block_id = 2, .page_index = 0});
  ASSERT_TRUE(h.has_value()) << describe(h.error());
  EXPECT_EQ(h->generation, 5u);
  EXPECT_EQ(verify_page(page, {.type = BlockType::kCamera}).error(), Invalid::kType);
  EXPECT_EQ(verify_page(page, {.block_id = 3}).error(), Invalid::kBlockId);
  EXPECT_EQ(verify_page(page, {.page_index = 1}).error(), Invalid::kPageIndex);
  EXPECT_EQ(verify_page(std::span(page).first(100)).error(), Invalid::kTooShort);
  auto flipped = page;
  flipped[sizeof(PageHeader) + 50] ^= std::byte{1};
  EXPECT_EQ(verify_page(flipped).error(), Invalid::kChecksum);
  auto bad_magic = page;
  bad_magic[0] ^= std::byte{1};
  EXPECT_EQ(verify_page(bad_magic).error(), Invalid::kBadMagic);
}

TEST(VerifyPage, HostileHeaderFields) {
  std::vector<std::byte> none;
  auto h = header(BlockType::kPids, 0, 0, 1, 1);
  auto page = make_page(h, none);
  PageHeader bad;
  // data_size past the page, with a checksum that would match whatever it covers.
  std::memcpy(&bad, page.data(), sizeof(bad));
  bad.data_size = 0xFFFFFFFF;
  std::memcpy(page.data(), &bad, sizeof(bad));
  EXPECT_EQ(verify_page(page).error(), Invalid::kDataSize);
  bad.data_size = kPagePayload + 1;
  std::memcpy(page.data(), &bad, sizeof(bad));
  EXPECT_EQ(verify_page(page).error(), Invalid::kDataSize);
  // page_index beyond block_pages, zero pages, too many pages, wrong version.
  EXPECT_EQ(verify_page(make_page(header(BlockType::kPids, 0, 3, 3, 1), none)).error(), Invalid::kBlockPages);
  EXPECT_EQ(verify_page(make_page(header(BlockType::kPids, 0, 0, 0, 1), none)).error(), Invalid::kBlockPages);
  EXPECT_EQ(verify_page(make_page(header(BlockType::kPids, 0, 0, kMaxBlockPages + 1, 1), none)).error(), Invalid::kBlockPages);
  auto v = header(BlockType::kPids, 0, 0, 1, 1);
  v.version = 99;
  EXPECT_EQ(verify_page(make_page(v, none)).error(), Invalid::kVersion);
}

struct TwoPages {
  std::vector<std::byte> a, b;
  std::vector<std::span<const std::byte>> spans() const { return {a, b}; }
};

TwoPages two_pages(std::uint32_t gen_a, std::uint32_t gen_b, std::uint32_t pages = 2) {
  std::vector<std::byte> pa(kPagePayload, std::byte{1}), pb(10, std::byte{2});
  return {make_page(header(BlockType::kRoundRobin, 3, 0, pages, gen_a), pa),
          make_page(header(BlockType::kRoundRobin, 3, 1, pages, gen_b), pb)};
}

TEST(CopyBlock, ConcatenatesPayloads) {
  auto p = two_pages(9, 9);
  BlockCopy copy;
  auto spans = p.spans();
  ASSERT_TRUE(copy_block(spans, {BlockType::kRoundRobin, 3, 0}, copy).has_value());
  EXPECT_EQ(copy.generation, 9u);
  EXPECT_EQ(copy.block_pages, 2u);
  ASSERT_EQ(copy.content.size(), kPagePayload + 10);
  EXPECT_EQ(copy.content[kPagePayload - 1], std::byte{1});
  EXPECT_EQ(copy.content[kPagePayload], std::byte{2});
}

TEST(CopyBlock, MixedGenerationsAreInProgress) {
  auto p = two_pages(9, 10);
  BlockCopy copy;
  auto spans = p.spans();
  EXPECT_EQ(copy_block(spans, {BlockType::kRoundRobin, 3, 0}, copy).error(), Invalid::kInProgress);
  EXPECT_TRUE(copy.content.empty() || true);
}

// A block that grew: page 0 of the new generation is written, page 1 was never written (a
// hole reads as zeros). The rewrite has not reached it yet: in progress, not bad magic.
TEST(CopyBlock, AGrowingBlockWhoseNextPageIsStillBlankIsInProgress) {
  auto p = two_pages(9, 9);
  std::fill(p.b.begin(), p.b.end(), std::byte{0});
  BlockCopy copy;
  auto spans = p.spans();
  EXPECT_EQ(copy_block(spans, {BlockType::kRoundRobin, 3, 0}, copy).error(), Invalid::kInProgress);
  // Page 0 itself blank is no beacon block at all.
  std::fill(p.a.begin(), p.a.end(), std::byte{0});
  EXPECT_EQ(copy_block(spans, {BlockType::kRoundRobin, 3, 0}, copy).error(), Invalid::kBadMagic);
}

TEST(CopyBlock, RejectsHostileShapes) {
  BlockCopy copy;
  auto p = two_pages(9, 9, 3);  // claims 3 pages, 2 allotted
  auto spans = p.spans();
  EXPECT_EQ(copy_block(spans, {BlockType::kRoundRobin, 3, 0}, copy).error(), Invalid::kBlockPages);
  auto q = two_pages(9, 9);
  auto qspans = q.spans();
  EXPECT_EQ(copy_block(qspans, {BlockType::kRoundRobin, 4, 0}, copy).error(), Invalid::kBlockId);
  EXPECT_EQ(copy_block(qspans, {BlockType::kRoundRobin, 3, 10}, copy).error(), Invalid::kGeneration);
  EXPECT_EQ(copy_block({}, {BlockType::kRoundRobin, 3, 0}, copy).error(), Invalid::kTooShort);
  // Page 1 claiming to be page 0 (a cycle in the page list).
  std::vector<std::span<const std::byte>> cycle{q.a, q.a};
  EXPECT_FALSE(copy_block(cycle, {BlockType::kRoundRobin, 3, 0}, copy).has_value());
}

TEST(Records, RoundTrip) {
  RecordWriter w;
  std::vector<std::uint32_t> pids{1, 2, 42};
  w.pid_list(pids, 7);
  w.process({.pid = 42, .ppid = 1, .uid = 1000, .threads = 3, .state = 'R', .rss_kb = 1234, .collected_ns = 5,
             .comm = "sleep", .cmdline = "sleep 1000", .section_count = 2});
  w.section(0x400000, 0x401000, "r-xp", 0, "/bin/sleep");
  w.section(0x7ffd0000, 0x7ffd1000, "rw-p", 0, "[stack]");
  auto c = parse_records(w.bytes());
  ASSERT_TRUE(c.has_value()) << describe(c.error());
  ASSERT_TRUE(c->pid_list.has_value());
  EXPECT_EQ(c->pid_list->pids, pids);
  ASSERT_EQ(c->processes.size(), 1u);
  const Process& p = c->processes[0];
  EXPECT_EQ(p.pid, 42u);
  EXPECT_EQ(p.comm, "sleep");
  EXPECT_EQ(p.cmdline, "sleep 1000");
  EXPECT_EQ(p.state, 'R');
  ASSERT_EQ(p.sections.size(), 2u);
  EXPECT_EQ(p.sections[0].perms, "r-xp");
  EXPECT_EQ(p.sections[1].path, "[stack]");
  EXPECT_EQ(p.sections[1].end, 0x7ffd1000u);
}

std::vector<std::byte> patch(std::vector<std::byte> bytes, std::size_t at, std::uint32_t value) {
  std::memcpy(bytes.data() + at, &value, 4);
  return bytes;
}

TEST(Records, HostileStreams) {
  RecordWriter w;
  std::vector<std::uint32_t> pids{1, 2, 3};
  w.pid_list(pids, 1);
  const auto good = w.bytes();
  EXPECT_EQ(parse_records(patch(good, 4, 0)).error(), Invalid::kRecord);           // size 0: no progress
  EXPECT_EQ(parse_records(patch(good, 4, 12)).error(), Invalid::kRecord);          // not a multiple of 8
  EXPECT_EQ(parse_records(patch(good, 4, 0xFFFFFFF8)).error(), Invalid::kRecord);  // past the end
  EXPECT_EQ(parse_records(patch(good, 8, 0xFFFFFFFF)).error(), Invalid::kRecord);  // count overflowing
  EXPECT_EQ(parse_records(patch(good, 0, 77)).error(), Invalid::kRecord);          // unknown type
  // Two PID lists.
  RecordWriter twice;
  twice.pid_list(pids, 1);
  twice.pid_list(pids, 1);
  EXPECT_EQ(parse_records(twice.bytes()).error(), Invalid::kRecord);

  RecordWriter proc;
  proc.process({.pid = 5, .comm = "x", .cmdline = "abc", .section_count = 1});
  auto pbytes = proc.bytes();
  EXPECT_EQ(parse_records(patch(pbytes, offsetof(ProcessRecord, cmdline_len), 0xFFFFFFF0)).error(), Invalid::kString);
  // Section without a process, and more sections than announced.
  RecordWriter orphan;
  orphan.section(0, 4096, "r--p", 0, "/x");
  EXPECT_EQ(parse_records(orphan.bytes()).error(), Invalid::kRecordOrder);
  RecordWriter extra;
  extra.process({.pid = 5, .section_count = 1});
  extra.section(0, 4096, "r--p", 0, "/a");
  extra.section(4096, 8192, "r--p", 0, "/b");
  EXPECT_EQ(parse_records(extra.bytes()).error(), Invalid::kRecordOrder);
  RecordWriter path;
  path.process({.pid = 5, .section_count = 1});
  path.section(0, 4096, "r--p", 0, "/a");
  auto bytes = path.bytes();
  EXPECT_EQ(parse_records(patch(bytes, sizeof(ProcessRecord) + offsetof(SectionRecord, path_len), 1u << 31)).error(),
            Invalid::kString);
  // Truncated mid-record.
  EXPECT_FALSE(parse_records(std::span(good).first(good.size() - 8)).has_value());
}

TEST(Records, StringsAreSanitised) {
  RecordWriter w;
  w.process({.pid = 5, .comm = std::string("a\x01\xff", 3), .cmdline = std::string("x\0y\x1b[2J", 7)});
  auto c = parse_records(w.bytes());
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->processes[0].comm, "a??");
  EXPECT_EQ(c->processes[0].cmdline, "x?y?[2J");
}

TEST(Records, EndRecordStopsTheStream) {
  RecordWriter w;
  std::vector<std::uint32_t> pids{1};
  w.pid_list(pids, 1);
  auto bytes = w.bytes();
  bytes.resize(bytes.size() + 64, std::byte{0xEE});
  std::memset(bytes.data() + w.bytes().size(), 0, 8);  // kEnd
  EXPECT_TRUE(parse_records(bytes).has_value());
}

TEST(Table, EntriesMustBePageAddresses) {
  std::vector<std::uint64_t> ok{0x1000, 0, 0x7000};
  EXPECT_TRUE(decode_table_page(std::as_bytes(std::span(ok))).has_value());
  std::vector<std::uint64_t> bad{0x1000, 0x1234};
  EXPECT_EQ(decode_table_page(std::as_bytes(std::span(bad))).error(), Invalid::kTable);
}

}  // namespace
}  // namespace haywire::beacon
