#include "haywire/base/ram_layout.h"

#include <gtest/gtest.h>

namespace haywire {
namespace {

constexpr std::uint64_t kGiB = 1ull << 30;

RamLayout q35_4g() {
  // 2 GiB below the PCI hole, 2 GiB above 4 GiB stored right after it in the file.
  return RamLayout::make({{PhysAddr(4 * kGiB), 2 * kGiB, 2 * kGiB}, {PhysAddr(0), 2 * kGiB, 0}},
                         4 * kGiB)
      .value();
}

TEST(RamLayout, TranslatesBothSidesOfTheHole) {
  RamLayout l = q35_4g();
  ASSERT_EQ(l.regions().size(), 2u);
  EXPECT_EQ(l.file_offset(PhysAddr(0x1000), 16).value(), 0x1000u);
  EXPECT_EQ(l.file_offset(PhysAddr(4 * kGiB), 4096).value(), 2 * kGiB);
  EXPECT_EQ(l.file_offset(PhysAddr(6 * kGiB - 4096), 4096).value(), 4 * kGiB - 4096);
  EXPECT_EQ(l.end(), 6 * kGiB);
  EXPECT_EQ(l.total(), 4 * kGiB);
  EXPECT_EQ(l.phys_of_offset(2 * kGiB + 5).value(), PhysAddr(4 * kGiB + 5));
}

TEST(RamLayout, RejectsHoleAndPastEndAndCrossing) {
  RamLayout l = q35_4g();
  auto in_hole = l.file_offset(PhysAddr(3 * kGiB), 1);
  ASSERT_FALSE(in_hole.has_value());
  const auto* e = in_hole.error().as<InvalidAddress>();
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->addr, 3 * kGiB);
  EXPECT_EQ(e->max, 6 * kGiB);
  EXPECT_FALSE(l.file_offset(PhysAddr(2 * kGiB - 8), 16).has_value());  // crosses into the hole
  EXPECT_FALSE(l.file_offset(PhysAddr(6 * kGiB), 1).has_value());
  EXPECT_FALSE(l.file_offset(PhysAddr(6 * kGiB - 1), 2).has_value());
  EXPECT_FALSE(l.file_offset(PhysAddr(~0ull), 2).has_value());
  EXPECT_FALSE(l.file_offset(PhysAddr(0), ~0ull).has_value());
}

TEST(RamLayout, MergesContiguousPieces) {
  auto l = RamLayout::make({{PhysAddr(0), 0xc3000, 0}, {PhysAddr(0xc3000), 0x3d000, 0xc3000}},
                           0x100000);
  ASSERT_TRUE(l.has_value());
  ASSERT_EQ(l->regions().size(), 1u);
  EXPECT_EQ(l->regions()[0].size, 0x100000u);
}

TEST(RamLayout, RejectsInconsistentRegions) {
  EXPECT_FALSE(RamLayout::make({{PhysAddr(0), 0, 0}}, 4096).has_value());
  EXPECT_FALSE(RamLayout::make({{PhysAddr(0), 8192, 0}}, 4096).has_value());
  EXPECT_FALSE(RamLayout::make({{PhysAddr(0), 8192, 0}, {PhysAddr(4096), 4096, 8192}}, 1 << 20)
                   .has_value());
  EXPECT_FALSE(RamLayout::make({{PhysAddr(~0ull - 10), 4096, 0}}, 1 << 20).has_value());
  EXPECT_FALSE(RamLayout::make({{PhysAddr(0), 4096, ~0ull - 10}}, 1 << 20).has_value());
}

TEST(RamLayout, IdentityCoversTheFile) {
  RamLayout l = RamLayout::identity(1 << 20);
  EXPECT_EQ(l.file_offset(PhysAddr(0), 1 << 20).value(), 0u);
  EXPECT_FALSE(l.file_offset(PhysAddr(1 << 20), 1).has_value());
}

}  // namespace
}  // namespace haywire
