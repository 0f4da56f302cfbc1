#include "haywire/arch/paging.h"

#include <gtest/gtest.h>

namespace haywire::arch {
namespace {

TEST(PagingMode, CanonicalAddressesFollowTheNumberOfLevels) {
  const PagingMode four = PagingMode::four_level();
  const PagingMode five = PagingMode::five_level();
  EXPECT_TRUE(four.is_canonical(VirtAddr(0x0000'7fff'ffff'ffffull)));
  EXPECT_FALSE(four.is_canonical(VirtAddr(0x0000'8000'0000'0000ull)));
  EXPECT_TRUE(four.is_canonical(VirtAddr(0xffff'8000'0000'0000ull)));
  EXPECT_FALSE(four.is_canonical(VirtAddr(0xff11'0000'0000'0000ull)));  // a 5-level direct map
  EXPECT_TRUE(five.is_canonical(VirtAddr(0xff11'0000'0000'0000ull)));
  EXPECT_TRUE(five.is_canonical(VirtAddr(0x00ff'ffff'ffff'ffffull)));
  EXPECT_FALSE(five.is_canonical(VirtAddr(0x0100'0000'0000'0000ull)));
  EXPECT_FALSE(five.is_canonical(VirtAddr(0xfe00'0000'0000'0000ull)));
  EXPECT_EQ(four.canonical(0x8000'0000'0000ull).value(), 0xffff'8000'0000'0000ull);
  EXPECT_EQ(five.canonical(0x0100'0000'0000'0000ull).value(), 0xff00'0000'0000'0000ull);
  EXPECT_EQ(five.canonical(0x00ff'ffff'ffff'f000ull).value(), 0x00ff'ffff'ffff'f000ull);
}

TEST(PagingMode, KernelHalfStartsAtTheSignBit) {
  EXPECT_EQ(PagingMode::four_level().kernel_half_start().value(), 0xffff'8000'0000'0000ull);
  EXPECT_EQ(PagingMode::five_level().kernel_half_start().value(), 0xff00'0000'0000'0000ull);
}

TEST(PagingMode, AddressMaskAndReservedBitsFollowMaxPhyAddr) {
  const PagingMode m = PagingMode::make(4, 40, true);
  EXPECT_EQ(m.address_mask(), 0x0000'00ff'ffff'f000ull);
  EXPECT_EQ(m.reserved_mask(1, false), 0x000f'ff00'0000'0000ull);  // bits 40..51
  EXPECT_EQ(m.reserved_mask(4, false) & pte::kPageSize, pte::kPageSize);
  EXPECT_EQ(m.reserved_mask(2, true) & 0x1f'e000ull, 0x1f'e000ull);            // 13..20
  EXPECT_EQ(m.reserved_mask(3, true) & 0x3fff'e000ull, 0x3fff'e000ull);        // 13..29
  EXPECT_EQ(m.reserved_mask(2, true) & 0x1000ull, 0u);                         // PAT is not reserved
  EXPECT_EQ(m.reserved_mask(1, false) & 0x7ff0'0000'0000'0000ull, 0u);         // 52..62 ignored
  EXPECT_EQ(m.reserved_mask(1, false) & pte::kNoExecute, 0u);
  EXPECT_EQ(PagingMode::make(4, 40, false).reserved_mask(1, false) & pte::kNoExecute, pte::kNoExecute);
  EXPECT_EQ(PagingMode::make(4, 52).reserved_mask(1, false), 0u);
  EXPECT_EQ(PagingMode::make(4, 99).phys_bits(), 52u);  // clamped
}

TEST(PagingMode, RootIgnoresPcidAndFlagBitsOfCr3) {
  const PagingMode m = PagingMode::make(4, 46);
  EXPECT_EQ(m.root(Cr3(0x8000'0000'0123'4fffull)).value(), 0x1234000ull);
}

TEST(PageFlags, NamesAndLettersListTheSetBitsInOrder) {
  const PageFlags f(PageFlags::kPresent | PageFlags::kUser | PageFlags::kNoExecute | PageFlags::kGlobal);
  const std::vector<std::string_view> expected{"present", "user", "nx", "global"};
  EXPECT_EQ(f.names(), expected);
  EXPECT_EQ(f.letters(), "P-UX--G");
}

TEST(Fault, DescriptionsNameTheLevelAndTheEntry) {
  Fault f{.kind = FaultKind::kNotPresent, .level = 2, .entry_addr = PhysAddr(0x1234018), .entry = 0};
  EXPECT_EQ(f.describe(), "not present at PD level (entry 0x0 at 0x1234018)");
  f.kind = FaultKind::kReservedBit;
  f.level = 5;
  f.entry = 0x8000000000000083ull;
  EXPECT_EQ(f.describe(), "reserved bit set in PML5 entry 0x8000000000000083 at 0x1234018");
  EXPECT_NE(Fault{.kind = FaultKind::kNonCanonical}.describe().find("non-canonical"), std::string::npos);
  const Fault outside{.kind = FaultKind::kTableOutsideRam, .level = 3, .entry_addr = PhysAddr(0x4000'0000)};
  EXPECT_NE(outside.describe().find("PDPT table at 0x40000000 is outside guest RAM"), std::string::npos);
}

}  // namespace
}  // namespace haywire::arch
