#include "haywire/guest/search.h"

#include <sys/stat.h>

#include <cstring>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "guest/testing/fake_ram_file.h"
#include "haywire/guest/snapshot.h"

namespace haywire::guest {
namespace {

using testing::FakeRamFile;

std::span<const std::byte> bytes(std::string_view s) { return std::as_bytes(std::span(s.data(), s.size())); }

TEST(Search, FindsEveryOccurrenceInGuestPhysicalTerms) {
  FakeRamFile file(1 << 20);
  std::memcpy(file.guest().data() + 100, "needle", 6);
  std::memcpy(file.guest().data() + (512 << 10) + 8, "needle", 6);  // lands at 4 GiB + 8
  auto layout = RamLayout::make({{PhysAddr(0), 512 << 10, 0}, {PhysAddr(4ull << 30), 512 << 10, 512 << 10}}, 1 << 20);
  auto ram = GuestRam::open(file.path(), std::nullopt, *layout);
  ASSERT_TRUE(ram.has_value());
  auto hits = find_all(*ram, bytes("needle"));
  ASSERT_EQ(hits.size(), 2u);
  EXPECT_EQ(hits[0], PhysAddr(100));
  EXPECT_EQ(hits[1], PhysAddr((4ull << 30) + 8));
  EXPECT_EQ(find_all(*ram, bytes("needle"), 1).size(), 1u);
  EXPECT_TRUE(find_all(*ram, bytes("absent-thing")).empty());
  EXPECT_TRUE(find_all(*ram, {}).empty());
}

TEST(Search, KernelBannerSkipsLookalikesAndStopsAtNewline) {
  FakeRamFile file(1 << 20);
  std::memcpy(file.guest().data() + 0x1000, "Linux version %s (%s)\n", 22);  // a format string
  std::string_view banner = "Linux version 6.1.0-56-amd64 (debian-kernel@lists.debian.org) (gcc-12) #1 SMP\n";
  std::memcpy(file.guest().data() + 0x8000, banner.data(), banner.size());
  auto ram = GuestRam::open(file.path());
  auto found = find_kernel_banner(*ram);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->where, PhysAddr(0x8000));
  EXPECT_EQ(found->text, banner.substr(0, banner.size() - 1));
}

TEST(Search, KernelBannerIsBoundedOnHostileBytes) {
  FakeRamFile file(1 << 20);
  // A "banner" that never ends runs up to the end of RAM: it must be rejected, not followed.
  std::memset(file.guest().data(), 'A', file.size());
  std::memcpy(file.guest().data() + file.size() - 40, "Linux version 9.9 (x) AAAAAAAA", 30);
  auto ram = GuestRam::open(file.path());
  EXPECT_FALSE(find_kernel_banner(*ram).has_value());
}

}  // namespace
}  // namespace haywire::guest

namespace haywire::guest {
namespace {

std::uint64_t allocated_bytes(const std::string& path) {
  struct stat st {};
  ::stat(path.c_str(), &st);
  return static_cast<std::uint64_t>(st.st_blocks) * 512;
}

TEST(Holes, SearchAndSnapshotsDoNotAllocateTheFilesHoles) {
  testing::FakeRamFile file(64 << 20);  // sparse: nothing allocated yet
  std::memcpy(file.guest().data() + (40 << 20), "needle", 6);
  ASSERT_LE(allocated_bytes(file.path()), 64u << 10);
  auto ram = GuestRam::open(file.path());
  ASSERT_TRUE(ram.has_value());
  auto ranges = ram->data_ranges();
  ASSERT_EQ(ranges.size(), 1u);
  EXPECT_EQ(ranges[0].offset, 40u << 20);

  auto hits = find_all(*ram, bytes("needle"));
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0], PhysAddr(40 << 20));
  Snapshot snap;
  auto report = take_snapshot(*ram, snap);
  ASSERT_TRUE(report.has_value());
  EXPECT_EQ(std::memcmp(snap.bytes().data() + (40 << 20), "needle", 6), 0);
  EXPECT_EQ(snap.bytes()[0], std::byte{0});
  EXPECT_EQ(snap.page_hashes()[0], page_hash(std::vector<std::byte>(4096)));
  // Neither the search nor the snapshot read the 63.99 MiB of holes.
  EXPECT_LE(allocated_bytes(file.path()), 64u << 10);

  // A page that leaves the hole shows up as changed.
  file.guest()[8 << 20] = std::byte{1};
  Snapshot later;
  ASSERT_TRUE(take_snapshot(*ram, later).has_value());
  auto changed = changed_pages(snap, later);
  ASSERT_TRUE(changed.has_value());
  EXPECT_EQ(*changed, (std::vector<std::uint64_t>{(8 << 20) / 4096}));
}

TEST(Holes, MatchesReachingIntoAHoleWithZeroBytesAreFound) {
  testing::FakeRamFile file(1 << 20);
  // Data page 10 ends with "tail"; page 11 is a hole. Page 20 starts with "head"; 19 is a hole.
  std::memcpy(file.guest().data() + 11 * 4096 - 4, "tail", 4);
  std::memcpy(file.guest().data() + 20 * 4096, "head", 4);
  auto ram = GuestRam::open(file.path());
  ASSERT_TRUE(ram.has_value());
  const std::byte tail0[] = {std::byte{'t'}, std::byte{'a'}, std::byte{'i'}, std::byte{'l'}, std::byte{0}, std::byte{0}};
  const std::byte zero_head[] = {std::byte{0}, std::byte{0}, std::byte{'h'}, std::byte{'e'}, std::byte{'a'}, std::byte{'d'}};
  auto t = find_all(*ram, tail0);
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0], PhysAddr(11 * 4096 - 4));
  auto h = find_all(*ram, zero_head);
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0], PhysAddr(20 * 4096 - 2));
  const std::byte zeros[8] = {};
  EXPECT_TRUE(find_all(*ram, zeros).empty());
}

}  // namespace
}  // namespace haywire::guest
