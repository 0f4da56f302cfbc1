// The walk against synthetic page tables: every page size, 4 and 5 levels, every way an
// address can fail to be mapped, and hostile tables.
#include "haywire/arch/walker.h"

#include <gtest/gtest.h>

#include <random>

#include "arch/testing/fake_guest.h"

namespace haywire::arch {
namespace {

using testing::FakeGuest;
constexpr std::uint64_t kMiB = 1 << 20;
constexpr std::uint64_t kTableBits = testing::PageTableBuilder::kDefaultTableBits;

class WalkerTest : public ::testing::TestWithParam<int> {
 protected:
  int levels() const { return GetParam(); }
  PagingMode mode() const { return PagingMode::make(levels()); }
  // A kernel-half address valid in both modes.
  static constexpr std::uint64_t kKernel = 0xffff'ffff'8000'0000ull;
};

INSTANTIATE_TEST_SUITE_P(Levels, WalkerTest, ::testing::Values(4, 5),
                         [](const ::testing::TestParamInfo<int>& param) { return std::to_string(param.param) + "level"; });

TEST_P(WalkerTest, EveryPageSizeTranslatesWithItsOffset) {
  FakeGuest g(16 * kMiB, levels());
  g.pt().map(VirtAddr(kKernel), PhysAddr(0x40'0000), kPage4K);
  g.pt().map(VirtAddr(kKernel + kPage2M), PhysAddr(0x60'0000), kPage2M);
  g.pt().map(VirtAddr(0xffff'8880'0000'0000ull), PhysAddr(0x4000'0000), kPage1G);
  g.pt().map(VirtAddr(0x7fff'f000), PhysAddr(0x50'0000), kPage4K, pte::kUser);  // user half

  Translation t = walk(g.ram(), mode(), g.cr3(), VirtAddr(kKernel + 0x123));
  ASSERT_TRUE(t.mapped()) << t.fault->describe();
  EXPECT_EQ(t.pa.value(), 0x40'0123u);
  EXPECT_EQ(t.page_size, kPage4K);
  EXPECT_EQ(t.va.value(), kKernel + 0x123);

  t = walk(g.ram(), mode(), g.cr3(), VirtAddr(kKernel + kPage2M + 0x1f'fff8));
  ASSERT_TRUE(t.mapped());
  EXPECT_EQ(t.pa.value(), 0x60'0000u + 0x1f'fff8u);
  EXPECT_EQ(t.page_size, kPage2M);

  t = walk(g.ram(), mode(), g.cr3(), VirtAddr(0xffff'8880'3fff'ffffull));
  ASSERT_TRUE(t.mapped());
  EXPECT_EQ(t.pa.value(), 0x7fff'ffffu);  // mapped but past RAM: a translation, not a fault
  EXPECT_EQ(t.page_size, kPage1G);

  t = walk(g.ram(), mode(), g.cr3(), VirtAddr(0x7fff'f00f));
  ASSERT_TRUE(t.mapped());
  EXPECT_EQ(t.pa.value(), 0x50'000fu);
  EXPECT_TRUE(t.flags.has(PageFlags::kUser));
}

TEST_P(WalkerTest, NotPresentAtEachLevelSaysWhichLevelAndEntry) {
  FakeGuest g(16 * kMiB, levels());
  const VirtAddr va(kKernel);
  g.pt().map(va, PhysAddr(0x40'0000), kPage4K);
  for (int level = 1; level <= levels(); ++level) {
    FakeGuest h(16 * kMiB, levels());
    h.pt().map(va, PhysAddr(0x40'0000), kPage4K);
    const PhysAddr entry = h.pt().entry_addr(va, level);
    const std::uint64_t old = h.pt().entry(entry);
    h.pt().set_entry(entry, old & ~pte::kPresent);
    const Translation t = walk(h.ram(), mode(), h.cr3(), va);
    ASSERT_FALSE(t.mapped()) << "level " << level;
    EXPECT_EQ(t.fault->kind, FaultKind::kNotPresent);
    EXPECT_EQ(t.fault->level, level);
    EXPECT_EQ(t.fault->entry_addr, entry);
    EXPECT_EQ(t.fault->entry, old & ~pte::kPresent);
    EXPECT_NE(t.fault->describe().find(std::string(level_name(level)) + " level"), std::string::npos);
  }
  // An address nobody mapped stops at the top level.
  const Translation t = walk(g.ram(), mode(), g.cr3(), VirtAddr(0x1000));
  ASSERT_FALSE(t.mapped());
  EXPECT_EQ(t.fault->level, levels());
}

TEST_P(WalkerTest, PermissionsCombineAcrossLevelsAndAccessedDirtyGlobalComeFromTheLeaf) {
  FakeGuest g(16 * kMiB, levels());
  const std::uint64_t leaf_bits[] = {
      0,
      pte::kWritable,
      pte::kUser,
      pte::kNoExecute,
      pte::kWritable | pte::kUser | pte::kNoExecute,
      pte::kAccessed | pte::kDirty | pte::kGlobal | pte::kWritable,
  };
  std::uint64_t va = kKernel;
  for (std::uint64_t bits : leaf_bits) {
    g.pt().map(VirtAddr(va), PhysAddr(0x40'0000), kPage4K, bits);
    const Translation t = walk(g.ram(), mode(), g.cr3(), VirtAddr(va));
    ASSERT_TRUE(t.mapped());
    EXPECT_TRUE(t.flags.has(PageFlags::kPresent));
    EXPECT_EQ(t.flags.has(PageFlags::kWritable), (bits & pte::kWritable) != 0);
    EXPECT_EQ(t.flags.has(PageFlags::kUser), (bits & pte::kUser) != 0);
    EXPECT_EQ(t.flags.has(PageFlags::kNoExecute), (bits & pte::kNoExecute) != 0);
    EXPECT_EQ(t.flags.has(PageFlags::kAccessed), (bits & pte::kAccessed) != 0);
    EXPECT_EQ(t.flags.has(PageFlags::kDirty), (bits & pte::kDirty) != 0);
    EXPECT_EQ(t.flags.has(PageFlags::kGlobal), (bits & pte::kGlobal) != 0);
    va += kPage4K;
  }
  // A read-only, supervisor-only, no-execute table above a permissive leaf restricts it.
  for (int level = 2; level <= levels(); ++level) {
    FakeGuest h(16 * kMiB, levels());
    const VirtAddr at(kKernel);
    h.pt().map(at, PhysAddr(0x40'0000), kPage4K, pte::kWritable | pte::kUser);
    const PhysAddr entry = h.pt().entry_addr(at, level);
    h.pt().set_entry(entry, (h.pt().entry(entry) & ~(pte::kWritable | pte::kUser)) | pte::kNoExecute);
    const Translation t = walk(h.ram(), mode(), h.cr3(), at);
    ASSERT_TRUE(t.mapped());
    EXPECT_FALSE(t.flags.has(PageFlags::kWritable)) << level;
    EXPECT_FALSE(t.flags.has(PageFlags::kUser)) << level;
    EXPECT_TRUE(t.flags.has(PageFlags::kNoExecute)) << level;
  }
}

TEST_P(WalkerTest, NonCanonicalAddressesFaultBeforeAnyRead) {
  FakeGuest g(16 * kMiB, levels());
  const std::uint64_t bad = levels() == 5 ? 0x0100'0000'0000'0000ull : 0x0000'8000'0000'0000ull;
  for (std::uint64_t va : std::vector<std::uint64_t>{bad, bad | 0x1234u, 0x8000'0000'0000'0000ull, 0x7fff'ffff'ffff'ffffull}) {
    const Translation t = walk(g.ram(), mode(), g.cr3(), VirtAddr(va));
    ASSERT_FALSE(t.mapped());
    EXPECT_EQ(t.fault->kind, FaultKind::kNonCanonical) << std::hex << va;
    EXPECT_EQ(t.fault->level, 0);
  }
  // 0xff11... is the 5-level direct map: canonical there, not with 4 levels.
  const Translation t = walk(g.ram(), mode(), g.cr3(), VirtAddr(0xff11'0000'0000'0000ull));
  EXPECT_EQ(t.fault->kind, levels() == 5 ? FaultKind::kNotPresent : FaultKind::kNonCanonical);
}

TEST_P(WalkerTest, ReservedBitsFaultAtTheirLevel) {
  const PagingMode m40 = PagingMode::make(levels(), 40, true);
  const VirtAddr va(kKernel);
  struct Case {
    int level;
    std::uint64_t page_size;
    std::uint64_t set;
  };
  const Case cases[] = {
      {1, kPage4K, 1ull << 45},                 // above MAXPHYADDR in a PTE
      {2, kPage4K, 1ull << 40},                 // ... in a PDE pointing to a table
      {2, kPage2M, 1ull << 13},                 // low bits of a 2 MiB page address
      {3, kPage1G, 1ull << 20},                 // low bits of a 1 GiB page address
      {4, kPage4K, pte::kPageSize},             // PS in a PML4E
      {levels(), kPage4K, 1ull << 51},
  };
  for (const Case& c : cases) {
    FakeGuest g(16 * kMiB, levels());
    g.pt().map(va, PhysAddr(c.page_size == kPage1G ? 0 : 0x40'0000), c.page_size);
    const PhysAddr entry = g.pt().entry_addr(va, c.level);
    g.pt().set_entry(entry, g.pt().entry(entry) | c.set);
    const Translation t = walk(g.ram(), m40, g.cr3(), va);
    ASSERT_FALSE(t.mapped()) << "level " << c.level;
    EXPECT_EQ(t.fault->kind, FaultKind::kReservedBit) << "level " << c.level;
    EXPECT_EQ(t.fault->level, c.level);
    EXPECT_EQ(t.fault->entry_addr, entry);
  }
  // Bits 52..62 are ignored, not reserved; NX is reserved only without EFER.NXE.
  FakeGuest g(16 * kMiB, levels());
  g.pt().map(va, PhysAddr(0x40'0000), kPage4K, pte::kNoExecute | (0x7ffull << 52));
  EXPECT_TRUE(walk(g.ram(), m40, g.cr3(), va).mapped());
  const Translation no_nxe = walk(g.ram(), PagingMode::make(levels(), 40, false), g.cr3(), va);
  ASSERT_FALSE(no_nxe.mapped());
  EXPECT_EQ(no_nxe.fault->kind, FaultKind::kReservedBit);
}

TEST_P(WalkerTest, PhysicalAddressesAreMaskedToMaxPhyAddrAndPcidBitsAreIgnored) {
  FakeGuest g(16 * kMiB, levels());
  g.pt().map(VirtAddr(kKernel), PhysAddr(0x40'0000), kPage4K, pte::kWritable | (0x7ffull << 52));
  const Cr3 with_pcid(g.cr3().value() | 0x5a5 | (1ull << 63));
  const Translation t = walk(g.ram(), PagingMode::make(levels(), 40), with_pcid, VirtAddr(kKernel + 8));
  ASSERT_TRUE(t.mapped());
  EXPECT_EQ(t.pa.value(), 0x40'0008u);  // bits 52..62 of the entry are not address bits
}

TEST_P(WalkerTest, TablesOutsideGuestRamEndTheWalkWithoutReadingThem) {
  FakeGuest g(16 * kMiB, levels());
  const VirtAddr va(kKernel);
  g.pt().map(va, PhysAddr(0x40'0000), kPage4K);
  const PhysAddr pd_entry = g.pt().entry_addr(va, 2);
  g.pt().set_entry(pd_entry, 0x7'0000'0000ull | kTableBits);  // PT "at" 28 GiB
  Translation t = walk(g.ram(), mode(), g.cr3(), va);
  ASSERT_FALSE(t.mapped());
  EXPECT_EQ(t.fault->kind, FaultKind::kTableOutsideRam);
  EXPECT_EQ(t.fault->level, 1);
  EXPECT_EQ(t.fault->entry_addr.value(), 0x7'0000'0000ull);
  // CR3 itself past RAM.
  t = walk(g.ram(), mode(), Cr3(0xff'ffff'f000ull), va);
  ASSERT_FALSE(t.mapped());
  EXPECT_EQ(t.fault->kind, FaultKind::kTableOutsideRam);
  EXPECT_EQ(t.fault->level, levels());
  // The last table page of RAM is still readable: the bound is exact.
  const PhysAddr last_page(16 * kMiB - kPage4K);
  g.pt().set_entry(pd_entry, last_page.value() | kTableBits);
  g.pt().set_entry(last_page + std::uint64_t{level_index(va.value(), 1)} * 8, 0x40'0000 | pte::kPresent);
  t = walk(g.ram(), mode(), g.cr3(), va);
  ASSERT_TRUE(t.mapped()) << t.fault->describe();
}

TEST_P(WalkerTest, ASelfReferencingTableEndsAfterOneReadPerLevel) {
  FakeGuest g(16 * kMiB, levels());
  // The root's entry 0 points at the root itself: every level of a walk of VA 0 reads the
  // root again, and the last level maps the root as a page (recursive mapping).
  g.pt().set_entry(g.pt().root(), g.pt().root().value() | kTableBits);
  const Translation t = walk(g.ram(), mode(), g.cr3(), VirtAddr(0x18));
  ASSERT_TRUE(t.mapped());
  EXPECT_EQ(t.pa, g.pt().root() + 0x18);
  EXPECT_EQ(t.page_size, kPage4K);
}

TEST_P(WalkerTest, BatchEqualsSingleWalks) {
  FakeGuest g(16 * kMiB, levels());
  g.pt().map_range(VirtAddr(kKernel), PhysAddr(0x40'0000), 64 * kPage4K, kPage4K);
  g.pt().map(VirtAddr(kKernel + kPage2M), PhysAddr(0x60'0000), kPage2M);
  std::mt19937_64 rng(7);
  std::vector<VirtAddr> vas;
  for (int i = 0; i < 2000; ++i) {
    std::uint64_t off = rng() % (2 * kPage2M + kPage4K);
    vas.emplace_back(kKernel + off);
    if (i % 3 == 0) vas.emplace_back(kKernel + off + 1);  // same page twice in a row
  }
  std::vector<Translation> out(vas.size());
  walk_batch(g.ram(), mode(), g.cr3(), vas, out);
  for (std::size_t i = 0; i < vas.size(); ++i) {
    const Translation single = walk(g.ram(), mode(), g.cr3(), vas[i]);
    ASSERT_EQ(out[i].mapped(), single.mapped()) << i;
    EXPECT_EQ(out[i].va, single.va);
    if (single.mapped()) {
      EXPECT_EQ(out[i].pa, single.pa) << std::hex << vas[i].value();
      EXPECT_EQ(out[i].page_size, single.page_size);
      EXPECT_EQ(out[i].flags, single.flags);
    } else {
      EXPECT_EQ(*out[i].fault, *single.fault);
    }
  }
}

}  // namespace
}  // namespace haywire::arch
