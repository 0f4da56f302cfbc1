#include "haywire/guest/search.h"

#include <cstring>
#include <string_view>

#include <gtest/gtest.h>

#include "guest/testing/fake_ram_file.h"

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
